package nfq

// Decider decides one queued packet. The engine implements it, one per
// Reader: Decide is called from the Reader's receive goroutine only, one
// packet at a time, so a Decider needs no locking of its own per-reader
// state. It must not block and must not keep pkt after returning (the
// buffer is the reader's).
type Decider interface {
	Decide(pkt []byte, m Meta) Verdict
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(pkt []byte, m Meta) Verdict

// Decide calls f.
func (f DeciderFunc) Decide(pkt []byte, m Meta) Verdict { return f(pkt, m) }

// Netfilter hook numbers, as found in Meta.Hook.
const (
	HookPrerouting  uint8 = 0
	HookInput       uint8 = 1
	HookForward     uint8 = 2
	HookOutput      uint8 = 3
	HookPostrouting uint8 = 4
)

// Meta is what the kernel tells about a queued packet besides its bytes.
type Meta struct {
	// Hook is the netfilter hook the packet was queued from (HookInput, ...).
	Hook uint8
	// InDev and OutDev are interface indexes; 0 when the hook has none
	// (no InDev on OUTPUT, no OutDev on INPUT).
	InDev, OutDev uint32
	// Mark is the packet mark when queued.
	Mark uint32
}

// Verdict is the answer for one packet. Neither Accept nor Repeat means drop.
type Verdict struct {
	// Accept lets the packet continue.
	Accept bool
	// Repeat sends the packet through the hook again with Mark set, so
	// rules placed before the NFQUEUE rule act on the mark.
	Repeat bool
	// Mark is the packet mark to set; valid with Repeat.
	Mark uint32
}

// Common verdicts.
var (
	Accept = Verdict{Accept: true}
	Drop   = Verdict{}
)

// RepeatWithMark returns the verdict that re-injects the packet with mark.
func RepeatWithMark(mark uint32) Verdict { return Verdict{Repeat: true, Mark: mark} }
