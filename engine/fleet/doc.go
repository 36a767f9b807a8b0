// Package fleet is the fleet link: it shares this gateway's firewall
// decisions (bans and their lifting, knock windows, one-shot knock uses)
// with the other gateways of a fleet through a NATS JetStream stream, and
// hands theirs to the daemon to enforce.
//
// The link is never in the packet path and never a single point of
// failure. Publish only appends to a bounded outbox and returns; a
// publisher goroutine sends the outbox in order, holding a decision until
// the stream acknowledged it, across disconnects (the daemon persists the
// outbox in its state file, so a restart loses nothing unpublished).
// Decisions of the other gateways arrive on the consumer's goroutine,
// which hands them in batches to the link's apply goroutine: it passes
// them to Options.Apply while the consumer reads the next batch. While the servers are unreachable the
// gateway goes on deciding and enforcing alone; on reconnect it publishes
// its backlog and reads the stream from the sequence after the last one it
// applied (Cursor, persisted by the daemon): a full read only when the
// stream no longer holds that sequence.
//
// Subjects are nfqfw.<stream>.<kind>.<gateway>: a gateway reads the whole
// stream and skips its own. Each message is one decision in the wire
// encoding of engine/decision, whose strict decoder is fuzzed. A message
// that does not decode, is larger than decision.MaxSize, or whose origin is
// not the gateway its subject names is dropped and counted; a decision
// that can block (decision.Kind.Blocks: not an unban, an allow or its end)
// whose scope overlaps
// a protected prefix (the allowlist, the management sessions' sources, the
// live allows) is refused and counted, so no gateway of the fleet can
// lock another's operators out. Decisions carry absolute expiries: applying
// one twice, or after a restart, never extends it.
//
// Goroutines: Run owns the connection; Publish, Stats, Cursor, Outbox and
// SetProtected may be called from any goroutine.
package fleet
