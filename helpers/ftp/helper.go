package ftp

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfqfw/nfqfw/engine"
	"github.com/nfqfw/nfqfw/rules"

	"github.com/nfqfw/nfqfw/engine/clock"
)

// Defaults of Options.
const (
	DefaultExpiry          = 30 * time.Second
	DefaultMaxPerControl   = 8
	DefaultMaxControls     = 4096
	DefaultMaxExpectations = 16384
	DefaultLogRate         = 10
)

// Options configure a Helper.
type Options struct {
	Config          rules.FTP    // ports, expiry, expectations per control connection
	MaxControls     int          // control connections tracked; the least recently seen is evicted (0: DefaultMaxControls)
	MaxExpectations int          // expectations held in total (0: DefaultMaxExpectations)
	Logger          *slog.Logger // refusals and evictions; nil discards
	LogRate         int          // log lines per second at most (0: DefaultLogRate)
}

// params are the reloadable settings, swapped as one.
type params struct {
	ports     []uint16
	expiry    int64
	maxPerCtl int
}

func paramsOf(c rules.FTP) *params {
	p := &params{ports: c.Ports, expiry: int64(c.Expiry), maxPerCtl: c.MaxPerControl}
	if len(p.ports) == 0 {
		p.ports = []uint16{21}
	}
	if p.expiry <= 0 {
		p.expiry = int64(DefaultExpiry)
	}
	if p.maxPerCtl <= 0 {
		p.maxPerCtl = DefaultMaxPerControl
	}
	return p
}

// Helper reads FTP control connections and holds the expectations they
// announce. It is safe for concurrent use.
type Helper struct {
	par      atomic.Pointer[params]
	maxCtl   int
	maxExp   int
	log      *slog.Logger
	logLimit *engine.LogLimiter // at most Options.LogRate lines per second

	live atomic.Int64 // expectations held; Take skips the lock at 0

	mu       sync.Mutex
	controls map[engine.FlowKey]*control
	lru      control // sentinel of the list of controls, most recently seen first
	expect   map[expectKey]expectation

	created, used, expired, malformed, evicted atomic.Uint64
	refused                                    [NumRefusals]atomic.Uint64
}

// control is the state of one control connection.
type control struct {
	key            engine.FlowKey
	client, server [16]byte // addresses as the engine sees them (IPv4 mapped)
	family         rules.Family
	seen           int64     // last packet, unix nanoseconds
	nexp           int       // live expectations announced here
	dir            [2]stream // fromClient, fromServer
	prev, next     *control  // in Helper.lru
}

const (
	fromClient = 0
	fromServer = 1
)

// expectKey is what an expected data connection's first packet carries:
// source address, destination address, destination port. The source port
// is never known in advance.
type expectKey struct {
	src, dst [16]byte
	dport    uint16
}

// expectation is a data connection one control connection announced.
type expectation struct {
	parent  engine.FlowKey
	expires int64
	kind    Kind
}

// New returns a helper configured by opts.
func New(opts Options) *Helper {
	h := &Helper{
		maxCtl:   opts.MaxControls,
		maxExp:   opts.MaxExpectations,
		log:      opts.Logger,
		controls: make(map[engine.FlowKey]*control),
		expect:   make(map[expectKey]expectation),
	}
	if h.maxCtl <= 0 {
		h.maxCtl = DefaultMaxControls
	}
	if h.maxExp <= 0 {
		h.maxExp = DefaultMaxExpectations
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	rate := opts.LogRate
	if rate <= 0 {
		rate = DefaultLogRate
	}
	h.logLimit = engine.NewLogLimiter(rate, time.Second)
	h.lru.prev, h.lru.next = &h.lru, &h.lru
	h.par.Store(paramsOf(opts.Config))
	return h
}

// SetLogRate applies a reloaded log.rate: at most n log lines per second
// (n <= 0: DefaultLogRate). Safe from any goroutine.
func (h *Helper) SetLogRate(n int) {
	if n <= 0 {
		n = DefaultLogRate
	}
	h.logLimit.SetN(n)
}

// LogRate returns the log lines allowed per second.
func (h *Helper) LogRate() int { return h.logLimit.N() }

// SetConfig applies a reloaded configuration: control ports, expiry and
// expectations per control connection. Control connections and
// expectations are kept; a new expiry applies to new expectations.
func (h *Helper) SetConfig(c rules.FTP) { h.par.Store(paramsOf(c)) }

// Inspect reads one packet of an FTP control connection (b is the whole
// packet, p its decode). Packets that are not TCP to or from a control
// port, or carry no payload, are ignored. It does not allocate unless the
// packet completes an announcement, or is the first with payload of a
// control connection.
func (h *Helper) Inspect(p *engine.Parsed, b []byte, now int64) {
	if p.Proto != 6 {
		return
	}
	par := h.par.Load()
	var d int
	switch {
	case isPort(par.ports, p.DstPort):
		d = fromClient
	case isPort(par.ports, p.SrcPort):
		d = fromServer
	default:
		return
	}
	const rst = 0x04
	if p.PayloadLen <= 0 && p.TCPFlags&rst == 0 {
		return
	}
	end := p.PayloadStart + p.PayloadLen
	if p.PayloadStart < 0 || end > len(b) {
		return
	}
	payload := b[p.PayloadStart:end]
	k, _ := engine.KeyOf(p)

	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.controls[k]
	if p.TCPFlags&rst != 0 {
		if c != nil {
			h.removeControl(c)
		}
		return
	}
	if c == nil {
		c = h.newControl(k, p, d)
	} else {
		c.unlink()
	}
	c.seen = now
	h.lru.pushFront(c)

	s := &c.dir[d]
	payload = s.segment(p.TCPSeq, payload)
	if len(payload) == 0 {
		return
	}
	bad := s.lines(payload, func(line []byte) {
		if d == fromServer && !s.reply(line) {
			return
		}
		a, err := Parse(line, d == fromServer)
		switch {
		case err != nil:
			h.malformed.Add(1)
		case a.Kind != KindNone:
			h.announce(c, a, par, now)
		}
	})
	if bad > 0 {
		h.malformed.Add(uint64(bad))
	}
}

func isPort(ports []uint16, p uint16) bool {
	for _, x := range ports {
		if x == p {
			return true
		}
	}
	return false
}

// newControl starts tracking control connection k, whose packet p travels
// in direction d, evicting the least recently seen one when full. Caller
// holds h.mu.
func (h *Helper) newControl(k engine.FlowKey, p *engine.Parsed, d int) *control {
	if len(h.controls) >= h.maxCtl {
		old := h.lru.prev
		h.removeControl(old)
		h.evicted.Add(1)
		if h.logAllowed(time.Now()) {
			h.log.Warn("ftp control connection evicted: too many tracked", "evicted", old.key.String(), "max", h.maxCtl)
		}
	}
	c := &control{key: k, family: p.Family, client: p.Src, server: p.Dst}
	if d == fromServer {
		c.client, c.server = p.Dst, p.Src
	}
	h.controls[k] = c
	return c
}

// removeControl forgets c. Its expectations stay until used or expired.
// Caller holds h.mu.
func (h *Helper) removeControl(c *control) {
	c.unlink()
	delete(h.controls, c.key)
}

func (l *control) pushFront(c *control) {
	c.prev, c.next = l, l.next
	l.next.prev = c
	l.next = c
}

func (c *control) unlink() {
	if c.prev != nil {
		c.prev.next = c.next
		c.next.prev = c.prev
		c.prev, c.next = nil, nil
	}
}

// announce turns announcement a on control connection c into an
// expectation, or refuses it. Caller holds h.mu.
func (h *Helper) announce(c *control, a Announcement, par *params, now int64) {
	var k expectKey
	addr := a.Addr.As16()
	switch a.Kind {
	case KindPASV, KindEPSV:
		if a.Kind == KindEPSV {
			addr = c.server
		}
		k = expectKey{src: c.client, dst: c.server, dport: a.Port}
		if addr != c.server || (a.Kind == KindPASV && c.family != rules.FamilyIPv4) {
			h.refuse(RefusedBounce, c, a)
			return
		}
	case KindPORT, KindEPRT:
		k = expectKey{src: c.server, dst: c.client, dport: a.Port}
		if addr != c.client || (a.Kind == KindPORT && c.family != rules.FamilyIPv4) {
			h.refuse(RefusedBounce, c, a)
			return
		}
	default:
		return
	}
	if a.Port < 1024 {
		h.refuse(RefusedLowPort, c, a)
		return
	}
	old, dup := h.expect[k]
	if dup && old.parent == c.key {
		// Announced again (a repeated PASV answer): renew it.
		old.expires = now + par.expiry
		h.expect[k] = old
		return
	}
	if c.nexp >= par.maxPerCtl {
		h.refuse(RefusedTooMany, c, a)
		return
	}
	if !dup && len(h.expect) >= h.maxExp {
		h.refuse(RefusedTableFull, c, a)
		return
	}
	if dup {
		h.release(old.parent)
	}
	h.expect[k] = expectation{parent: c.key, expires: now + par.expiry, kind: a.Kind}
	c.nexp++
	if !dup {
		h.live.Add(1)
	}
	h.created.Add(1)
}

// release gives back an expectation of control connection parent. Caller
// holds h.mu.
func (h *Helper) release(parent engine.FlowKey) {
	if c := h.controls[parent]; c != nil && c.nexp > 0 {
		c.nexp--
	}
}

// refuse counts and logs a refused announcement. Caller holds h.mu.
func (h *Helper) refuse(r Refusal, c *control, a Announcement) {
	h.refused[r].Add(1)
	if !h.logAllowed(time.Now()) {
		return
	}
	ann := netip.AddrPortFrom(a.Addr, a.Port).String()
	if a.Kind == KindEPSV {
		ann = netip.AddrPortFrom(addrOf(c.server, c.family), a.Port).String()
	}
	h.log.Warn("ftp expectation refused", "reason", r.String(), "kind", a.Kind.String(),
		"client", addrOf(c.client, c.family), "server", addrOf(c.server, c.family), "announced", ann)
}

// logAllowed rate-limits log lines to Options.LogRate per second.
func (h *Helper) logAllowed(now time.Time) bool {
	ok, _ := h.logLimit.Allow(now)
	return ok
}

func addrOf(b [16]byte, fam rules.Family) netip.Addr {
	a := netip.AddrFrom16(b)
	if fam == rules.FamilyIPv4 {
		return a.Unmap()
	}
	return a
}

// Take reports whether p, a NEW packet, is an expected data connection,
// and if so consumes the expectation (one use) and returns the control
// connection it is RELATED to. Only a TCP SYN can be expected. It does not
// allocate, and does not lock while no expectation is held.
func (h *Helper) Take(p *engine.Parsed, now int64) (parent engine.FlowKey, ok bool) {
	const syn, ack = 0x02, 0x10
	if p.Proto != 6 || p.TCPFlags&(syn|ack) != syn || h.live.Load() == 0 {
		return engine.FlowKey{}, false
	}
	k := expectKey{src: p.Src, dst: p.Dst, dport: p.DstPort}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, found := h.expect[k]
	if !found {
		return engine.FlowKey{}, false
	}
	delete(h.expect, k)
	h.live.Add(-1)
	h.release(e.parent)
	if e.expires <= now {
		h.expired.Add(1)
		return engine.FlowKey{}, false
	}
	h.used.Add(1)
	return e.parent, true
}

// Expected tells whether Take would admit p, without taking the
// expectation. For "nfqfw explain".
func (h *Helper) Expected(p *engine.Parsed, now int64) bool {
	const syn, ack = 0x02, 0x10
	if p.Proto != 6 || p.TCPFlags&(syn|ack) != syn || h.live.Load() == 0 {
		return false
	}
	k := expectKey{src: p.Src, dst: p.Dst, dport: p.DstPort}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, found := h.expect[k]
	return found && e.expires > now
}

// Expire removes the expectations whose time passed and the control
// connections that are gone: alive (may be nil) reports whether the engine
// still tracks a control connection; one that it does not, or that was not
// seen for the expiry and holds no expectation, is forgotten. Call it from a
// ticker, not per packet.
func (h *Helper) Expire(now int64, alive func(engine.FlowKey) bool) {
	par := h.par.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, e := range h.expect {
		if e.expires <= now {
			delete(h.expect, k)
			h.live.Add(-1)
			h.release(e.parent)
			h.expired.Add(1)
		}
	}
	for k, c := range h.controls {
		idle := now-c.seen > par.expiry && c.nexp == 0
		if idle || (alive != nil && !alive(k)) {
			h.removeControl(c)
		}
	}
}

// Stats are the helper's totals and current sizes.
type Stats struct {
	Created   uint64 // expectations created
	Used      uint64 // expectations that admitted a data connection
	Expired   uint64 // expectations that timed out unused
	Malformed uint64 // control lines that could not be read (bad announcement, overlong line)
	Evicted   uint64 // control connections forgotten to make room for a new one
	Refused   [NumRefusals]uint64

	Controls     int // control connections tracked now
	Expectations int // expectations held now
}

// Stats returns the helper's counters.
func (h *Helper) Stats() Stats {
	st := Stats{
		Created: h.created.Load(), Used: h.used.Load(), Expired: h.expired.Load(),
		Malformed: h.malformed.Load(), Evicted: h.evicted.Load(),
	}
	for i := range st.Refused {
		st.Refused[i] = h.refused[i].Load()
	}
	h.mu.Lock()
	st.Controls, st.Expectations = len(h.controls), len(h.expect)
	h.mu.Unlock()
	return st
}

// Expectation describes one held expectation, for tests and state views.
type Expectation struct {
	Kind    Kind
	Src     netip.Addr
	Dst     netip.AddrPort
	Parent  engine.FlowKey
	Expires time.Time
}

// Expectations returns the held expectations, in no particular order.
func (h *Helper) Expectations() []Expectation {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Expectation, 0, len(h.expect))
	for k, e := range h.expect {
		fam := e.parent.Family()
		out = append(out, Expectation{Kind: e.kind, Src: addrOf(k.src, fam),
			Dst: netip.AddrPortFrom(addrOf(k.dst, fam), k.dport), Parent: e.parent, Expires: clock.Wall(e.expires)})
	}
	return out
}
