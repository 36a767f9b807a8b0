package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/guard"
	"github.com/nfqfw/nfqfw/engine/knock"
	"github.com/nfqfw/nfqfw/rules"
)

// udpPacket decodes a UDP packet from src to dst as a queue reader would
// hand it to the engine.
func udpPacket(t *testing.T, src, dst string) *engine.Parsed {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload("q")); err != nil {
		t.Fatal(err)
	}
	var p engine.Parsed
	engine.NewDecoder().Decode(buf.Bytes(), &p)
	if p.Kind != engine.KindOK {
		t.Fatalf("fixture does not decode: kind %d", p.Kind)
	}
	return &p
}

// TestWallClockStepsMoveNoDeadline: a ban, a knock window and a flow are
// made, the wall clock is stepped by +1 h or -1 h (NTP, date(1)), and
// each still ends exactly when its duration has passed on the monotonic
// clock: not an instant early, not an instant late. The times the CLI shows
// and the state file saves follow the stepped wall clock, so a restart
// still ends them on time.
func TestWallClockStepsMoveNoDeadline(t *testing.T) {
	for _, step := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(step.String(), func(t *testing.T) {
			fake := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			defer clock.Set(fake)()
			tcp, udp := uint8(6), uint8(17)
			src := netip.MustParseAddr("192.0.2.7").As16()
			host := netip.MustParseAddr("192.0.2.1").As16()

			bans := guard.NewBans(guard.BanOptions{})
			if _, err := bans.Add(netip.MustParsePrefix("192.0.2.7/32"), 10*time.Minute, "test", clock.Now()); err != nil {
				t.Fatal(err)
			}
			seq := rules.Knock{Name: "ssh",
				Steps:      []rules.KnockStep{{Proto: tcp, Port: 7000}, {Proto: udp, Port: 8000}},
				StepWindow: 5 * time.Second,
				Open:       []rules.Open{{Proto: tcp, Ports: []rules.PortRange{{First: 22, Last: 22}}}},
				OpenFor:    30 * time.Second}
			k := knock.New([]rules.Knock{seq})
			k.Observe(src, host, true, tcp, 7000, clock.Now())
			k.Observe(src, host, true, udp, 8000, clock.Now())
			flows := engine.NewTable(16, rules.Timeouts{UDP: 30 * time.Second})
			p := udpPacket(t, "192.0.2.7", "192.0.2.1")
			if !flows.Admit(p, -1, clock.Now()) {
				t.Fatal("flow not admitted")
			}
			banUntil := bans.List(clock.Now())[0].Until

			fake.StepWall(step)
			if got := bans.List(clock.Now())[0].Until; !got.Equal(banUntil.Add(step)) {
				t.Errorf("after the step the ban is shown until %v, want %v (10 min from the stepped wall clock)", got, banUntil.Add(step))
			}

			fake.Advance(30*time.Second - time.Nanosecond)
			flows.Expire(clock.Now())
			if !k.Allowed(0, src, host, tcp, 22, clock.Now()) || flows.Len() != 1 {
				t.Errorf("1 ns before 30 s: knock window open %v, flows %d; want open, 1", k.Allowed(0, src, host, tcp, 22, clock.Now()), flows.Len())
			}
			fake.Advance(time.Nanosecond)
			flows.Expire(clock.Now())
			if k.Allowed(0, src, host, tcp, 22, clock.Now()) || flows.Len() != 0 {
				t.Errorf("at 30 s: knock window open %v, flows %d; want closed, 0", k.Allowed(0, src, host, tcp, 22, clock.Now()), flows.Len())
			}

			// A restart after the step: the saved wall times restore the
			// same deadlines.
			restored := guard.NewBans(guard.BanOptions{})
			restored.Restore(bans.Snapshot(), clock.Now())
			fake.Advance(10*time.Minute - 30*time.Second - time.Nanosecond)
			if !bans.IsBanned(src, clock.Now()) || !restored.IsBanned(src, clock.Now()) {
				t.Error("the ban (or the restored ban) ended before its 10 min")
			}
			fake.Advance(time.Nanosecond)
			if bans.IsBanned(src, clock.Now()) || restored.IsBanned(src, clock.Now()) {
				t.Error("the ban (or the restored ban) outlasted its 10 min")
			}
		})
	}
}
