package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/rules"
)

// TestAdopt takes kernel flows under the server policy: those whose first
// packet the policy admits are tracked as the kernel has them, so their
// next queued segment is ESTABLISHED; the others are left alone.
func TestAdopt(t *testing.T) {
	e := newServerEngine(t, 0)
	ap := netip.MustParseAddrPort
	ssh := KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 6, Src: ap("198.51.100.7:40000"), Dst: ap("10.99.2.2:22"),
		TCPState: TCPEstablished, Replied: true, Assured: true, Timeout: time.Hour}
	for _, tt := range []struct {
		name string
		f    KernelFlow
		want AdoptResult
	}{
		{"ssh on the uplink is admitted", ssh, AdoptAdmitted},
		{"the same flow again is tracked already", ssh, AdoptTracked},
		{"a closed port is refused", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 6,
			Src: ap("198.51.100.7:40001"), Dst: ap("10.99.2.2:23"), TCPState: TCPEstablished}, AdoptRefused},
		{"ssh from another interface is refused (closed-tcp)", KernelFlow{Hook: rules.HookInput, InIf: 99, Proto: 6,
			Src: ap("198.51.100.7:40002"), Dst: ap("10.99.2.2:22"), TCPState: TCPEstablished}, AdoptRefused},
		{"dns over udp is admitted", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 17,
			Src: ap("198.51.100.7:5353"), Dst: ap("10.99.2.2:53"), Replied: true}, AdoptAdmitted},
		{"a ping in progress is admitted (ping)", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 1,
			Src: ap("198.51.100.7:4660"), Dst: ap("10.99.2.2:0"), ICMPType: 8, Replied: true, Timeout: 30 * time.Second}, AdoptAdmitted},
		{"a ping6 in progress is admitted (ping6)", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 58,
			Src: ap("[2001:db8::7]:4661"), Dst: ap("[fd99:2::2]:0"), ICMPType: 128, Replied: true}, AdoptAdmitted},
		{"the ping again is tracked already", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 1,
			Src: ap("198.51.100.7:4660"), Dst: ap("10.99.2.2:0"), ICMPType: 8}, AdoptTracked},
		{"a ping the policy refuses is left alone", KernelFlow{Hook: rules.HookForward, InIf: uplinkIndex, OutIf: 99, Proto: 1,
			Src: ap("198.51.100.7:4662"), Dst: ap("10.99.9.9:0"), ICMPType: 8}, AdoptRefused},
		{"an icmp timestamp request is left to the kernel", KernelFlow{Hook: rules.HookInput, InIf: uplinkIndex, Proto: 1,
			Src: ap("198.51.100.7:4663"), Dst: ap("10.99.2.2:0"), ICMPType: 13}, AdoptSkipped},
	} {
		if got := e.Adopt(tt.f, flowNow); got != tt.want {
			t.Errorf("%s: Adopt = %d, want %d", tt.name, got, tt.want)
		}
	}
	w := e.NewWorker()
	v := w.Decide(flowTCP(t, "198.51.100.7:40000", "10.99.2.2:22", "PA").b, rules.HookInput, uplinkIndex, 0, 0, flowNow+sec)
	if v.Reason != ReasonEstablished {
		t.Errorf("next segment of the adopted ssh flow: reason %v, want established", v.Reason)
	}
	for _, echo := range []flowPacket{flowEcho(t, "10.99.2.2", "198.51.100.7", 4660, false), flowEcho(t, "fd99:2::2", "2001:db8::7", 4661, false)} {
		if v := w.Decide(echo.b, rules.HookOutput, 0, uplinkIndex, 0, flowNow+sec); v.Reason != ReasonEstablished {
			t.Errorf("echo reply of an adopted ping: reason %v, want established", v.Reason)
		}
	}
	e.Flows().clock = func() int64 { return flowNow + 2*sec }
	pings := 0
	e.Flows().Walk(func(f FlowInfo) bool {
		if f.Echo && f.Replied && (f.ICMPID == 4660 || f.ICMPID == 4661) {
			pings++
		}
		return true
	})
	if pings != 2 {
		t.Errorf("%d adopted replied ping flows listed, want 2", pings)
	}
	var fi FlowInfo
	e.Flows().Walk(func(f FlowInfo) bool {
		if f.Orig.Dst.Port() == 22 {
			fi = f
		}
		return true
	})
	if fi.TCPState != TCPEstablished || !fi.Assured || fi.Rule != 0 || fi.Orig.Src != ssh.Src {
		t.Errorf("adopted ssh flow: %+v, want ESTABLISHED, assured, rule 0 (ssh), from the client", fi)
	}
}
