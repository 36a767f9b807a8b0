package engine

import (
	"fmt"
	"strings"

	"github.com/nfqfw/nfqfw/rules"
)

// FlowInfo is a readable copy of one tracked flow, for the state view.
type FlowInfo struct {
	Key      FlowKey
	Proto    uint8 // IANA protocol number
	Family   rules.Family
	TCPState TCPState // valid when Proto is TCP
	Timeout  int64    // whole seconds left when the flow was copied
	Expires  int64    // unix nanoseconds at which the flow is gone
	Orig     Tuple    // the direction of the first packet
	Reply    Tuple    // the direction of replies
	ICMPID   uint16   // echo id of an ICMP/ICMPv6 echo flow
	Echo     bool     // the flow is an ICMP/ICMPv6 echo flow
	Replied  bool     // a reply was seen ([UNREPLIED] when false)
	Assured  bool     // the flow is assured ([ASSURED])
	Rule     int      // index of the rule that admitted the flow, -1 for none

	Related     bool  // admitted as RELATED to Parent (helper-expected)
	ParentProto uint8 // valid when Related
	Parent      Tuple // the parent flow's original direction; valid when Related
}

// Walk calls fn with a copy of every tracked flow that has not expired,
// shard by shard, until fn returns false. fn runs without the table's locks
// held and may call the table. Not for the packet path: it allocates.
func (t *Table) Walk(fn func(FlowInfo) bool) {
	type item struct {
		k   FlowKey
		e   entry
		rel relation
	}
	now := t.clock()
	var buf []item
	for i := range t.shards {
		s := &t.shards[i]
		buf = buf[:0]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires <= now {
				continue
			}
			it := item{k: k, e: e}
			if e.flags&flagRelated != 0 {
				it.rel = s.rel[k]
			}
			buf = append(buf, it)
		}
		s.mu.Unlock()
		for j := range buf {
			if !fn(flowInfo(buf[j].k, &buf[j].e, buf[j].rel, now)) {
				return
			}
		}
	}
}

func flowInfo(k FlowKey, e *entry, rel relation, now int64) FlowInfo {
	o := e.origDir()
	fi := FlowInfo{
		Key:     k,
		Proto:   k.proto,
		Family:  k.family,
		Timeout: (e.expires - now) / 1e9,
		Expires: e.expires,
		Orig:    k.Tuple(o),
		Reply:   k.Tuple(o ^ 1),
		Echo:    k.kind == keyEcho,
		Replied: e.flags&flagReplied != 0,
		Assured: e.flags&flagAssured != 0,
		Rule:    int(e.rule),
		Related: e.flags&flagRelated != 0,
	}
	if k.proto == ctTCP {
		fi.TCPState = e.state
	}
	if fi.Echo {
		fi.ICMPID = k.aPort
	}
	if fi.Related {
		fi.ParentProto = rel.parent.proto
		fi.Parent = rel.parent.Tuple(rel.orig)
	}
	return fi
}

// String formats the flow as conntrack -L prints one, followed by the rule
// that admitted it and, for a RELATED flow, its parent:
//
//	tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=22 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=22 dport=40000 rule=3
func (fi FlowInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %d %d ", ProtoName(fi.Proto), fi.Proto, max(fi.Timeout, 0))
	if fi.Proto == ctTCP {
		b.WriteString(fi.TCPState.String())
		b.WriteByte(' ')
	}
	fi.writeTuple(&b, fi.Orig, true)
	if !fi.Replied {
		b.WriteString(" [UNREPLIED]")
	}
	b.WriteByte(' ')
	fi.writeTuple(&b, fi.Reply, false)
	if fi.Assured {
		b.WriteString(" [ASSURED]")
	}
	if fi.Rule >= 0 {
		fmt.Fprintf(&b, " rule=%d", fi.Rule)
	}
	if fi.Related {
		fmt.Fprintf(&b, " related-to=%s src=%s dst=%s", ProtoName(fi.ParentProto), fi.Parent.Src.Addr(), fi.Parent.Dst.Addr())
		if fi.Parent.Src.Port() != 0 || fi.Parent.Dst.Port() != 0 {
			fmt.Fprintf(&b, " sport=%d dport=%d", fi.Parent.Src.Port(), fi.Parent.Dst.Port())
		}
	}
	return b.String()
}

func (fi *FlowInfo) writeTuple(b *strings.Builder, t Tuple, orig bool) {
	fmt.Fprintf(b, "src=%s dst=%s", t.Src.Addr(), t.Dst.Addr())
	switch {
	case fi.Echo:
		// echo request in the original tuple, echo reply in the reply tuple
		typ := map[bool]int{true: 8, false: 0}[orig]
		if fi.Proto == ctICMPv6 {
			typ = map[bool]int{true: 128, false: 129}[orig]
		}
		fmt.Fprintf(b, " type=%d code=0 id=%d", typ, fi.ICMPID)
	case fi.Proto == ctICMP || fi.Proto == ctICMPv6:
	default:
		if t.Src.Port() != 0 || t.Dst.Port() != 0 {
			fmt.Fprintf(b, " sport=%d dport=%d", t.Src.Port(), t.Dst.Port())
		}
	}
}
