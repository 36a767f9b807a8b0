package knock

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// Ports of a rotating sequence are derived into [RotatingPortLow,
// RotatingPortHigh].
const (
	RotatingPortLow  = 10000
	RotatingPortHigh = 60000
)

// Defaults applied by New to zero fields of a rules.Knock.
const (
	DefaultStepWindow = 10 * time.Second
	DefaultOpenFor    = 30 * time.Second
	DefaultPeriod     = 30 * time.Second
)

// maxUsed bounds the one-shot replay memory of one sequence.
const maxUsed = 64

// step is one knock: protocol and destination port.
type step struct {
	proto uint8
	port  uint16
}

// sequence is a compiled rules.Knock. Its configuration fields are immutable
// after New; cache, used and the counters are safe for concurrent use.
type sequence struct {
	name        string
	steps       []step // static ports; for a rotating sequence only the protocols count
	stepWindow  int64  // ns
	window      int64  // ns
	openFor     int64  // ns
	keepOpen    bool
	oneShot     bool
	opens       []openSpec
	target      []netip.Prefix // empty: the host itself
	resetAny    bool           // any packet but the next step resets progress
	opensText   string
	fingerprint string

	// Rotating sequences.
	secret  []byte
	period  int64 // ns
	skew    int64
	back    int64 // counters behind the current one a progress may still refer to
	cache   atomic.Pointer[portCache]
	cacheMu sync.Mutex

	// One-shot replay memory.
	usedMu sync.Mutex
	used   []usedRec

	successes atomic.Uint64
	failures  [NumFailReasons]atomic.Uint64
}

// usedRec remembers a completed sequence (the time-step counter it was
// completed with, 0 for a static sequence) until the replay refusal ends.
type usedRec struct {
	ctr   int64
	until int64
}

// portCache holds the derived steps of counters first..first+len(steps)-1.
type portCache struct {
	first int64
	steps [][]step
}

// openSpec is a compiled rules.Open.
type openSpec struct {
	proto uint8 // 0: TCP and UDP
	ports []rules.PortRange
	dst   []netip.Prefix // empty: any destination
}

func compile(k rules.Knock) *sequence {
	s := &sequence{
		name:       k.Name,
		stepWindow: int64(k.StepWindow),
		window:     int64(k.Window),
		openFor:    int64(k.OpenFor),
		keepOpen:   k.KeepOpen,
		oneShot:    k.OneShot,
		target:     k.Dst,
		resetAny:   k.ResetOnAnyPort,
	}
	if s.stepWindow <= 0 {
		s.stepWindow = int64(DefaultStepWindow)
	}
	if s.window <= 0 {
		s.window = s.stepWindow * int64(len(k.Steps))
	}
	if s.openFor <= 0 {
		s.openFor = int64(DefaultOpenFor)
	}
	for _, st := range k.Steps {
		s.steps = append(s.steps, step{st.Proto, st.Port})
	}
	for _, o := range k.Open {
		s.opens = append(s.opens, openSpec{proto: o.Proto, ports: o.Ports, dst: o.Dst})
	}
	s.opensText = opensText(k.Open)
	if k.Secret != "" {
		s.secret = []byte(k.Secret)
		s.period = int64(k.Period)
		if s.period <= 0 {
			s.period = int64(DefaultPeriod)
		}
		s.skew = int64(max(k.Skew, 0))
		s.back = s.skew + s.window/s.period + 1
	}
	s.fingerprint = fingerprint(k)
	return s
}

// rotating reports whether the ports change with time.
func (s *sequence) rotating() bool { return s.secret != nil }

// counter returns the time-step counter of now (0 for a static sequence).
func (s *sequence) counter(now int64) int64 {
	if !s.rotating() {
		return 0
	}
	return floorDiv(clock.Wall(now).UnixNano(), s.period) // shared with the client: wall time
}

// stepAt returns step i of the sequence for counter ctr.
func (s *sequence) stepAt(ctr int64, i int) step {
	if !s.rotating() {
		return s.steps[i]
	}
	if c := s.cache.Load(); c != nil && ctr >= c.first && ctr < c.first+int64(len(c.steps)) {
		return c.steps[ctr-c.first][i]
	}
	return derive(s.secret, ctr, s.steps)[i] // outside the cached range: rare
}

// refresh makes sure the port cache covers the counters a packet at now may
// need: from back behind to skew ahead of the current one, plus ahead more
// time steps. It allocates only when the cache does not cover them; the
// range it builds reaches one step further back, so that callers whose
// clocks straddle a step boundary do not rebuild it in turn.
func (s *sequence) refresh(now, ahead int64) {
	if !s.rotating() {
		return
	}
	cur := s.counter(now)
	first, last := cur-s.back, cur+s.skew+ahead
	if s.covers(s.cache.Load(), first, last) {
		return
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	old := s.cache.Load()
	if s.covers(old, first, last) {
		return
	}
	first--
	c := &portCache{first: first, steps: make([][]step, last-first+1)}
	for i := range c.steps {
		ctr := first + int64(i)
		if s.covers(old, ctr, ctr) {
			c.steps[i] = old.steps[ctr-old.first]
			continue
		}
		c.steps[i] = derive(s.secret, ctr, s.steps)
	}
	s.cache.Store(c)
}

func (s *sequence) covers(c *portCache, first, last int64) bool {
	return c != nil && c.first <= first && c.first+int64(len(c.steps))-1 >= last
}

// startCounter reports whether pk is the first step of the sequence at now,
// and for which counter: the current one first, then alternately behind and
// ahead up to the skew.
func (s *sequence) startCounter(pk step, now int64) (int64, bool) {
	if !s.rotating() {
		return 0, s.steps[0] == pk
	}
	cur := floorDiv(now, s.period)
	if s.stepAt(cur, 0) == pk {
		return cur, true
	}
	for d := int64(1); d <= s.skew; d++ {
		if s.stepAt(cur-d, 0) == pk {
			return cur - d, true
		}
		if s.stepAt(cur+d, 0) == pk {
			return cur + d, true
		}
	}
	return 0, false
}

// replayUntil is when the replay refusal of a completion at now with
// counter ctr ends: when the window it opens closes, and for a rotating
// sequence not before the counter stops being accepted.
func (s *sequence) replayUntil(ctr, now int64) int64 {
	until := now + s.openFor
	if s.rotating() {
		until = max(until, (ctr+s.skew+1)*s.period)
	}
	return until
}

// claim records a completion with counter ctr for a one-shot sequence and
// returns until when a replay is refused. It returns false when the same
// steps were already completed and their refusal has not ended (a replay).
func (s *sequence) claim(ctr, now int64) (int64, bool) {
	s.usedMu.Lock()
	defer s.usedMu.Unlock()
	kept := s.used[:0]
	replay := false
	for _, u := range s.used {
		if u.until <= now {
			continue
		}
		if u.ctr == ctr {
			replay = true
		}
		kept = append(kept, u)
	}
	s.used = kept
	if replay {
		return 0, false
	}
	until := s.replayUntil(ctr, now)
	s.remember(usedRec{ctr: ctr, until: until})
	return until, true
}

// remember adds u to the one-shot memory, forgetting the oldest when
// full. usedMu is held.
func (s *sequence) remember(u usedRec) {
	if len(s.used) == maxUsed {
		copy(s.used, s.used[1:])
		s.used = s.used[:maxUsed-1]
	}
	s.used = append(s.used, u)
}

// refuse records a completion with counter ctr made elsewhere, refused
// for replay until until, and reports whether that changed anything.
func (s *sequence) refuse(ctr, until, now int64) bool {
	s.usedMu.Lock()
	defer s.usedMu.Unlock()
	for i, u := range s.used {
		if u.ctr == ctr && u.until > now {
			if u.until >= until {
				return false
			}
			s.used[i].until = until
			return true
		}
	}
	s.remember(usedRec{ctr: ctr, until: until})
	return true
}

// admits reports whether the sequence's open spec covers dst proto/port.
func (s *sequence) admits(dst [16]byte, proto uint8, dport uint16) bool {
	for i := range s.opens {
		o := &s.opens[i]
		if o.proto != 0 && o.proto != proto {
			continue
		}
		if !rules.PortIn(dport, o.ports) {
			continue
		}
		if len(o.dst) > 0 && !inPrefixes(o.dst, netip.AddrFrom16(dst).Unmap()) {
			continue
		}
		return true
	}
	return false
}

// targets reports whether a packet to dst (local: addressed to the host
// itself) is addressed to the sequence's target.
func (s *sequence) targets(dst [16]byte, local bool) bool {
	if len(s.target) == 0 {
		return local
	}
	return inPrefixes(s.target, netip.AddrFrom16(dst).Unmap())
}

// isStep reports whether pk is any step of the sequence with counter ctr.
func (s *sequence) isStep(pk step, ctr int64) bool {
	for i := range s.steps {
		if pk == s.stepAt(ctr, i) {
			return true
		}
	}
	return false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Sequence returns the steps a client must knock at time at: the
// configured steps of a static sequence, or for a rotating one (Secret set)
// the ports derived for the time step of at, with the configured protocols.
//
// A rotating sequence's port for step i and time-step counter
// c = floor(unix time / Period) is taken from
// HMAC-SHA256(Secret, c as 8 bytes big endian || i as 4 bytes big endian) by
// RFC 4226 dynamic truncation (31 bits at the offset named by the low
// nibble of the last byte), mapped into RotatingPortLow..RotatingPortHigh.
// A port equal to an earlier step's port with the same protocol is moved
// to the next port of the range, so that the steps are distinct.
func Sequence(k rules.Knock, at time.Time) []rules.KnockStep {
	out := make([]rules.KnockStep, len(k.Steps))
	if k.Secret == "" {
		copy(out, k.Steps)
		return out
	}
	s := compile(k)
	for i, st := range derive(s.secret, s.counter(clock.Mono(at)), s.steps) {
		out[i] = rules.KnockStep{Proto: st.proto, Port: st.port}
	}
	return out
}

// derive computes the steps of counter ctr, taking the protocols from protos.
func derive(secret []byte, ctr int64, protos []step) []step {
	const span = RotatingPortHigh - RotatingPortLow + 1
	out := make([]step, len(protos))
	mac := hmac.New(sha256.New, secret)
	var msg [12]byte
	var sum [sha256.Size]byte
	binary.BigEndian.PutUint64(msg[:8], uint64(ctr))
	for i := range protos {
		binary.BigEndian.PutUint32(msg[8:], uint32(i))
		mac.Reset()
		mac.Write(msg[:])
		mac.Sum(sum[:0])
		off := sum[len(sum)-1] & 0x0f
		code := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
		st := step{proto: protos[i].proto, port: uint16(RotatingPortLow + code%span)}
		for j := 0; j < i; j++ {
			if out[j] == st {
				st.port = uint16(RotatingPortLow + (uint32(st.port)-RotatingPortLow+1)%span)
				j = -1
			}
		}
		out[i] = st
	}
	return out
}

// fingerprint names what a progress depends on (steps, secret, period), so
// that Restore drops progress made against a sequence that has changed.
func fingerprint(k rules.Knock) string {
	h := fnv.New64a()
	for _, st := range k.Steps {
		fmt.Fprintf(h, "%d/%d,", st.Proto, st.Port)
	}
	fmt.Fprintf(h, "|%d|%d|", k.Period, k.Skew)
	h.Write([]byte(k.Secret))
	return strconv.FormatUint(h.Sum64(), 16)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// protoName names a protocol number as the knock client and iptables do.
func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 0:
		return "tcp+udp"
	}
	return strconv.Itoa(int(p))
}

// opensText renders what a sequence opens, e.g.
// "tcp/22 udp/1194 tcp/8000-8010 to 10.0.0.0/24".
func opensText(os []rules.Open) string {
	var parts []string
	for _, o := range os {
		var b strings.Builder
		b.WriteString(protoName(o.Proto))
		b.WriteByte('/')
		if len(o.Ports) == 0 {
			b.WriteString("*")
		}
		for i, r := range o.Ports {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(r.First)))
			if r.Last != r.First {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(r.Last)))
			}
		}
		if len(o.Dst) > 0 {
			b.WriteString(" to ")
			for i, p := range o.Dst {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(p.String())
			}
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, " ")
}

// Find returns the knock named name.
func Find(knocks []rules.Knock, name string) (rules.Knock, error) {
	for _, k := range knocks {
		if k.Name == name {
			return k, nil
		}
	}
	return rules.Knock{}, fmt.Errorf("find knock %q: %w", name, ErrUnknownKnock)
}
