// Package knock implements port knocking: a source that sends the first
// packets of NEW flows (TCP SYNs, UDP datagrams) to an ordered sequence of
// ports gets a window in which it may open new connections to what the
// sequence opens. It replaces knockd, and fixes what knockd's users miss:
// sequences that rotate with time so a sniffed one is soon useless, one-shot
// sequences that cannot be replayed, and a live view of every source's
// progress (nfqfw knock-status).
//
// The package holds no packets and parses no bytes. The engine calls
// Knocker.Observe for every NEW TCP/UDP packet before its policy and drops
// the knocks (they look like packets to a closed port, so a scanner sees
// nothing), and asks Knocker.Allowed when a rule names a knock sequence.
// Both are allocation-free and safe to call from every queue reader at once.
//
// # Semantics
//
// Progress is kept per source and per sequence; sequences coexist and may be
// interleaved. A wrong port (a NEW packet from a source with progress that
// is neither the next step, nor a repeat of the step just taken, nor a step
// of another sequence) resets the progress; so do StepWindow between two
// steps and Window for the whole sequence. The last step opens the window
// for OpenFor. With KeepOpen every admitted connection extends the window to
// OpenFor after it; without, it closes OpenFor after the knock.
//
// # Rotating sequences and the threat model
//
// A static sequence travels in clear text: anyone on the path who sees it
// can replay it. With Secret set, the ports are derived from
// HMAC-SHA256(Secret, time step) as TOTP derives codes (see Sequence); the
// configured steps then give only the protocols and the number of steps,
// and their ports are ignored. A knock is accepted for the current time
// step and Skew steps either side. A sniffed rotating sequence therefore
// works only until its time step leaves the skew.
//
// OneShot refuses a second completion of the same steps (of any source)
// until the window opened by the first one closes, and for a rotating
// sequence until its time step is no longer accepted. Combined with a
// secret, a sniffed sequence can never be replayed: while it is valid it is
// refused, afterwards it is no longer the sequence. Alone, OneShot only
// limits a static sequence to one window at a time; the sequence can be
// replayed once the window closes. Neither protects against an attacker on
// the path who sees the knocks of the legitimate client and races it to the
// last step, nor against one who shares the client's source address (NAT):
// the window belongs to the address.
//
// Rotating ports fall in 10000-60000: a service listening in that range may
// have the first packet of a connection taken as a knock while its port is
// a current step. Keep such services out of the range, or use static
// sequences.
//
// # Memory
//
// Sources are tracked in shards, each a fixed-size table allocated by New;
// when a shard is full its least recently active source is evicted and
// counted (Stats). Open windows live in separate tables, so a flood of
// spoofed first knocks cannot evict the window of a source that completed
// a sequence.
package knock
