package fleet

import "testing"

// TestAckSequence: the stream sequence and the pending count are read from
// both shapes of a JetStream reply subject, as jetstream's Metadata reads
// them; anything else is refused.
func TestAckSequence(t *testing.T) {
	for _, c := range []struct {
		name         string
		reply        string
		seq, pending uint64
		ok           bool
	}{
		{"v1", "$JS.ACK.NFQFW.c1.1.4711.42.1733400000000000000.99", 4711, 99, true},
		{"v2", "$JS.ACK._.hash.NFQFW.c1.1.4711.42.1733400000000000000.0.r4nd", 4711, 0, true},
		{"v2 without its last token", "$JS.ACK.dom.hash.NFQFW.c1.1.7.7.1733400000000000000.12", 7, 12, true},
		{"v2 with a token more", "$JS.ACK.dom.hash.NFQFW.c1.1.7.7.1733400000000000000.12.r.x", 7, 12, true},
		{"not an ack subject", "_INBOX.gw-a.abc", 0, 0, false},
		{"empty", "", 0, 0, false},
		{"8 tokens", "$JS.ACK.NFQFW.c1.1.4711.42.1733400000000000000", 0, 0, false},
		{"sequence not a number", "$JS.ACK.NFQFW.c1.1.x.42.1733400000000000000.99", 0, 0, false},
		{"pending empty", "$JS.ACK.NFQFW.c1.1.4711.42.1733400000000000000.", 0, 0, false},
		{"sequence beyond 64 bits", "$JS.ACK.NFQFW.c1.1.99999999999999999999.42.1.99", 0, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq, pending, ok := ackSequence(c.reply)
			if seq != c.seq || pending != c.pending || ok != c.ok {
				t.Errorf("ackSequence(%q) = %d, %d, %v; want %d, %d, %v", c.reply, seq, pending, ok, c.seq, c.pending, c.ok)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { ackSequence("$JS.ACK._.hash.NFQFW.c1.1.4711.42.1733400000000000000.0.r4nd") }); n != 0 {
		t.Errorf("ackSequence allocates %v times", n)
	}
}
