package sandbox

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends count ICMP echo requests (v4 or v6 by dst) from inside the
// namespace, one at a time, waiting at most timeout for each reply. It
// returns nil when every request was answered. It needs no ping binary.
func (n *Netns) Ping(dst netip.Addr, count int, timeout time.Duration) error {
	return n.Do(func() error { return ping(dst, count, timeout) })
}

func ping(dst netip.Addr, count int, timeout time.Duration) error {
	network, proto := "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, "")
	if err != nil {
		return fmt.Errorf("ping %s: listen: %w", dst, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	to := &net.IPAddr{IP: dst.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nfqfw-sandbox")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return fmt.Errorf("ping %s: marshal: %w", dst, err)
		}
		if _, err := c.WriteTo(wb, to); err != nil {
			return fmt.Errorf("ping %s: send: %w", dst, err)
		}
		if err := awaitEcho(c, buf, proto, replyType, dst, id, seq, timeout); err != nil {
			return err
		}
	}
	return nil
}

// awaitEcho reads until the reply to (id, seq) from dst arrives or timeout
// passes; other ICMP traffic on the raw socket is skipped.
func awaitEcho(c *icmp.PacketConn, buf []byte, proto int, replyType icmp.Type, dst netip.Addr, id, seq int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		nr, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s seq %d: %w", dst, seq, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:nr])
		if err != nil || m.Type != replyType {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		fa, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if ok && e.ID == id && e.Seq == seq && fa.Unmap() == dst {
			return nil
		}
	}
	return fmt.Errorf("ping %s seq %d: no reply within %v", dst, seq, timeout)
}
