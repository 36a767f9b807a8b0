package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse parses, validates and defaults a YAML configuration. file names the
// source in error messages and is recorded in Config.File. The returned
// error is an *Error that wraps one of the package's sentinel errors.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	if root == nil || (root.Kind == yaml.MappingNode && len(root.Content) == 0) {
		// With no section every default applies: input and forward drop
		// every new flow. Nobody means that by an empty file; a file
		// truncated by a failed copy or an editor looks like this.
		line := 1
		if root != nil {
			line = root.Line
		}
		return nil, &Error{File: file, Line: line, Msg: "the file is empty: refusing to install a policy that drops everything", Err: ErrMissing}
	}
	c := defaultConfig()
	c.File = file
	if err := p.config(root, c); err != nil {
		return nil, err
	}
	c.ifaceRefs = p.ifaceRefs
	c.fleetFiles = p.fleetFiles
	return c, nil
}

// Maxima that Parse enforces: every size and duration in a config is
// bounded, so that no config can make the daemon allocate without limit or
// compute a deadline past the end of time.
const (
	MaxQueues         = 256                   // queue.count: readers, each with an 8 MiB socket buffer and queue.batch 68 KiB packet buffers (about 12 MiB)
	MaxQueueLen       = 1 << 20               // queue.max_len: packets the kernel holds per queue
	MaxFlows          = 1 << 24               // flows.max: about 2.2 GB of flow table
	MaxRecentSize     = 1 << 20               // recent[].size: about 170 MB per list
	MaxRecentHitCount = 20                    // recent hitcount: the timestamps an entry keeps (xt_recent's ip_pkt_list_tot)
	MaxGuardCount     = 1000                  // guards[].limits[].count: timestamps kept per source
	MaxDuration       = 3650 * 24 * time.Hour // every duration: ten years

	// MinSecretBits is the least entropy of a rotating knock's secret:
	// 80 bits, 16 base32 characters (RFC 4226 asks at least 128 and
	// recommends 160: 26 and 32 characters).
	MinSecretBits = 80
)

// Defaults that Parse fills in.
const (
	defaultLogPrefixFormat = "nfqfw %s: "
	maxLogPrefix           = 29 // iptables LOG --log-prefix limit
	maxNodes               = 1 << 20
)

// DefaultTimeouts returns conntrack's default flow timeouts, the values a
// config gets for every timeout it does not set.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     2 * time.Minute,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 5 * 24 * time.Hour,
		TCPFinWait:     2 * time.Minute,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    2 * time.Minute,
		TCPClose:       10 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      180 * time.Second,
		ICMP:           30 * time.Second,
		Generic:        600 * time.Second,
	}
}

func defaultConfig() *Config {
	return &Config{
		Backend: BackendAuto,
		IPv6:    true,
		Queue: Queue{
			Count:          1,
			MaxLen:         4096,
			Batch:          64,
			FailureVerdict: ActionDrop,
			MarkMask:       0x00ff0000,
		},
		Flows: Flows{
			Max:          262144,
			Timeouts:     DefaultTimeouts(),
			KernelEvents: KernelEventsAll,
			TCPPickup:    TCPPickupPolicy,
		},
		Trusted: []string{"lo"},
		Input:   Chain{Policy: ActionDrop, Invalid: ActionDrop},
		Forward: Chain{Policy: ActionDrop, Invalid: ActionDrop},
		Output:  Chain{Policy: ActionAccept, Invalid: ActionDrop},
		FTP: FTP{
			Ports:         []uint16{21},
			Expiry:        30 * time.Second,
			MaxPerControl: 8,
		},
		Log:     Log{Format: "text", Level: "info", Rate: 10},
		Metrics: Metrics{Listen: "127.0.0.1:9469"},
		Control: Control{Socket: "/run/nfqfw/nfqfw.sock"},
		State:   State{Dir: "/var/lib/nfqfw"},
	}
}

// parser walks a yaml.Node tree. It holds what later sections need from
// earlier ones (zones, declared names) and a node budget that bounds the
// work an alias-heavy document can cause.
type parser struct {
	file    string
	visited int

	zones  map[string][]string
	recent map[string]bool
	guards map[string]bool
	knocks map[string]bool
	ruleAt map[string]int // rule name -> line of first use

	ifaceRefs  []ifaceRef    // every interface name written, for UnknownInterfaces
	knockSteps []knockStepAt // static knock steps, checked against the input chain
	fleetFiles []fleetFile   // fleet credential files, checked on the host
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into a node tree and returns the top-level mapping
// (nil for an empty document).
func (p *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, p.syntax(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: p.file, Line: extra.Line, Msg: "more than one YAML document", Err: ErrSyntax}
	} else if !errors.Is(err, io.EOF) {
		return nil, p.syntax(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

func (p *parser) syntax(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: p.file, Line: line, Msg: "invalid YAML: " + msg, Err: ErrSyntax}
}

// errf builds an *Error at node n.
func (p *parser) errf(n *yaml.Node, path string, sentinel error, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// deref follows aliases and counts visited nodes.
func (p *parser) deref(n *yaml.Node, path string) (*yaml.Node, error) {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			return nil, p.errf(n, path, ErrBadValue, "unresolvable alias")
		}
		n = n.Alias
	}
	p.visited++
	if p.visited > maxNodes {
		return nil, p.errf(n, path, ErrBadValue, "document too large (more than %d nodes after expanding aliases)", maxNodes)
	}
	return n, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// handler parses the value of one key.
type handler func(v *yaml.Node, path string) error

// mapping checks that n is a mapping with known, unique, scalar keys and
// calls the handler of each key in file order.
func (p *parser) mapping(n *yaml.Node, path string, hs map[string]handler) error {
	n, err := p.deref(n, path)
	if err != nil {
		return err
	}
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return nil // an empty section: all defaults
		}
		return p.errf(n, path, ErrBadType, "want a mapping of keys, got %s", describe(n))
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := p.deref(n.Content[i], path)
		if err != nil {
			return err
		}
		if k.Kind != yaml.ScalarNode {
			return p.errf(k, path, ErrBadType, "keys must be plain names, got %s", describe(k))
		}
		if k.Value == "<<" {
			return p.errf(k, path, ErrUnknownField, "merge keys (<<) are not supported")
		}
		if first, dup := seen[k.Value]; dup {
			return p.errf(k, join(path, k.Value), ErrDuplicate, "key given twice (first on line %d)", first)
		}
		seen[k.Value] = k.Line
		h, ok := hs[k.Value]
		if !ok {
			return p.errf(k, path, ErrUnknownField, "unknown field %q%s", k.Value, suggest(k.Value, hs))
		}
		if err := h(n.Content[i+1], join(path, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

// suggest returns ` (did you mean "x"?)` for the closest known key.
func suggest(key string, hs map[string]handler) string {
	keys := slices.Sorted(maps.Keys(hs))
	if best := closest(key, keys); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list calls fn for each element of a sequence. With scalarOK, a single
// scalar stands for a one-element list (and keeps the path without index).
func (p *parser) list(n *yaml.Node, path string, scalarOK bool, fn func(el *yaml.Node, path string) error) error {
	n, err := p.deref(n, path)
	if err != nil {
		return err
	}
	switch {
	case n.Kind == yaml.SequenceNode:
		for i, el := range n.Content {
			if err := fn(el, index(path, i)); err != nil {
				return err
			}
		}
		return nil
	case isNull(n):
		return nil
	case scalarOK && n.Kind == yaml.ScalarNode:
		return fn(n, path)
	}
	return p.errf(n, path, ErrBadType, "want a list, got %s", describe(n))
}

// strList parses a list of strings (a scalar allowed) and calls fn with
// each string, its node and its path.
func (p *parser) strList(n *yaml.Node, path string, fn func(s string, sn *yaml.Node, path string) error) error {
	return p.list(n, path, true, func(el *yaml.Node, path string) error {
		s, sn, err := p.str(el, path)
		if err != nil {
			return err
		}
		return fn(s, sn, path)
	})
}

// listOf parses a list (a scalar allowed) with parse for each element.
func listOf[T any](p *parser, n *yaml.Node, path string, parse func(*yaml.Node, string) (T, error)) ([]T, error) {
	var out []T
	err := p.list(n, path, true, func(el *yaml.Node, path string) error {
		v, err := parse(el, path)
		out = append(out, v)
		return err
	})
	return out, err
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

// scalar returns the scalar node behind n.
func (p *parser) scalar(n *yaml.Node, path, want string) (*yaml.Node, error) {
	n, err := p.deref(n, path)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return nil, p.errf(n, path, ErrBadType, "want %s, got %s", want, describe(n))
	}
	return n, nil
}

// str parses a string. Any non-null scalar is accepted as its text.
func (p *parser) str(n *yaml.Node, path string) (string, *yaml.Node, error) {
	s, err := p.scalar(n, path, "a string")
	if err != nil {
		return "", n, err
	}
	return s.Value, s, nil
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, error) {
	s, err := p.scalar(n, path, "true or false")
	if err != nil {
		return false, err
	}
	if s.ShortTag() != "!!bool" {
		return false, p.errf(s, path, ErrBadType, "want true or false, got %s", describe(s))
	}
	var b bool
	if err := s.Decode(&b); err != nil {
		return false, p.errf(s, path, ErrBadType, "want true or false, got %s", describe(s))
	}
	return b, nil
}

// integer parses an integer in [lo, hi]; 0x, 0o and 0b prefixes are allowed.
func (p *parser) integer(n *yaml.Node, path string, lo, hi int64) (int64, error) {
	s, err := p.scalar(n, path, "an integer")
	if err != nil {
		return 0, err
	}
	if s.ShortTag() != "!!int" {
		return 0, p.errf(s, path, ErrBadType, "want an integer, got %s", describe(s))
	}
	v, err := strconv.ParseInt(s.Value, 0, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(s.Value, 0, 64)
		if uerr != nil || u > uint64(hi) {
			return 0, p.errf(s, path, ErrBadValue, "%s out of range (%d-%d)", s.Value, lo, hi)
		}
		v = int64(u)
	}
	if v < lo || v > hi {
		return 0, p.errf(s, path, ErrBadValue, "%s out of range (%d-%d)", s.Value, lo, hi)
	}
	return v, nil
}

func (p *parser) float(n *yaml.Node, path string, lo, hi float64) (float64, error) {
	s, err := p.scalar(n, path, "a number")
	if err != nil {
		return 0, err
	}
	if t := s.ShortTag(); t != "!!float" && t != "!!int" {
		return 0, p.errf(s, path, ErrBadType, "want a number, got %s", describe(s))
	}
	var f float64
	if err := s.Decode(&f); err != nil {
		return 0, p.errf(s, path, ErrBadType, "want a number, got %s", describe(s))
	}
	if !(f >= lo && f <= hi) {
		return 0, p.errf(s, path, ErrBadValue, "%s out of range (%g-%g)", s.Value, lo, hi)
	}
	return f, nil
}

// duration parses Go duration syntax with an optional leading day count
// ("5d", "1d12h", "90s"). min is the smallest acceptable value.
func (p *parser) duration(n *yaml.Node, path string, min time.Duration) (time.Duration, error) {
	s, err := p.scalar(n, path, "a duration")
	if err != nil {
		return 0, err
	}
	d, err := parseDuration(s.Value)
	if err != nil && strings.HasPrefix(s.Value, "-") {
		return 0, p.errf(s, path, ErrBadValue, "duration %s must be positive", s.Value)
	}
	if err != nil {
		return 0, p.errf(s, path, ErrBadValue, "%q is not a duration (want e.g. 30s, 10m, 5d, 1d12h)", s.Value)
	}
	if d > MaxDuration {
		return 0, p.errf(s, path, ErrBadValue, "duration %s is above the maximum %dd", s.Value, MaxDuration/(24*time.Hour))
	}
	if d < min {
		if min == 1 {
			return 0, p.errf(s, path, ErrBadValue, "duration %s must be positive", s.Value)
		}
		return 0, p.errf(s, path, ErrBadValue, "duration %s is below the minimum %s", s.Value, min)
	}
	return d, nil
}

const maxDays = int64(1<<63-1) / int64(24*time.Hour)

func parseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 63)
		if err != nil || int64(n) > maxDays {
			return 0, errors.New("bad day count")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > 1<<63-1-days {
		return 0, errors.New("out of range")
	}
	return days + d, nil
}

// oneOf parses a string that must be one of names.
func (p *parser) oneOf(n *yaml.Node, path string, names ...string) (string, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if s == name {
			return s, nil
		}
	}
	return "", p.errf(sn, path, ErrBadValue, "%q is not one of %s", s, strings.Join(names, ", "))
}

func (p *parser) action(n *yaml.Node, path string, names ...string) (Action, error) {
	s, err := p.oneOf(n, path, names...)
	if err != nil {
		return ActionNone, err
	}
	switch s {
	case "accept":
		return ActionAccept, nil
	case "drop":
		return ActionDrop, nil
	}
	return ActionReject, nil
}

// config parses the top level. Sections are handled in dependency order
// (zones and stateful declarations before the chains that refer to them),
// so a reference may appear before its declaration in the file.
func (p *parser) config(root *yaml.Node, c *Config) error {
	if root == nil {
		return nil
	}
	sections := map[string]*yaml.Node{}
	order := []string{"zones", "interfaces", "recent", "guards", "knocks", "backend", "ipv6", "rpfilter", "queue", "flows",
		"trusted", "allowlist", "input", "forward", "output", "nat", "ftp", "log", "metrics", "control", "state", "fleet"}
	hs := make(map[string]handler, len(order))
	for _, name := range order {
		hs[name] = func(v *yaml.Node, _ string) error { sections[name] = v; return nil }
	}
	if err := p.mapping(root, "", hs); err != nil {
		return err
	}
	p.zones = map[string][]string{}
	p.recent = map[string]bool{}
	p.guards = map[string]bool{}
	p.knocks = map[string]bool{}
	p.ruleAt = map[string]int{}
	for _, name := range order {
		v, ok := sections[name]
		if !ok {
			continue
		}
		if err := p.section(name, v, c); err != nil {
			return err
		}
	}
	return p.knockPortsClosed(c)
}

func (p *parser) section(name string, v *yaml.Node, c *Config) error {
	var err error
	switch name {
	case "backend":
		var s string
		s, err = p.oneOf(v, name, "auto", "legacy", "nft")
		c.Backend = Backend(s)
	case "ipv6":
		c.IPv6, err = p.boolean(v, name)
	case "rpfilter":
		c.RPFilter, err = p.boolean(v, name)
	case "queue":
		err = p.queue(v, name, &c.Queue)
	case "flows":
		err = p.flows(v, name, &c.Flows)
	case "zones":
		c.Zones, err = p.zoneMap(v, name)
	case "interfaces":
		err = p.mapping(v, name, map[string]handler{
			"dynamic": func(v *yaml.Node, path string) (err error) {
				c.Interfaces.Dynamic, err = p.dynamicIfaces(v, path)
				return err
			},
		})
	case "trusted":
		if n, derr := p.deref(v, name); derr != nil || isNull(n) {
			return derr // trusted: with no value keeps the default, [lo]
		}
		c.Trusted, err = p.kernelIfaces(v, name)
		if c.Trusted == nil {
			c.Trusted = []string{} // trusted: []: loopback is filtered too
		}
	case "allowlist":
		c.Allowlist, err = p.prefixes(v, name)
	case "input":
		err = p.chain(v, name, HookInput, &c.Input)
	case "forward":
		err = p.chain(v, name, HookForward, &c.Forward)
	case "output":
		err = p.chain(v, name, HookOutput, &c.Output)
	case "nat":
		err = p.nat(v, name, &c.NAT)
	case "recent":
		c.Recent, err = p.recentLists(v, name)
	case "guards":
		c.Guards, err = p.guardList(v, name)
	case "knocks":
		c.Knocks, err = p.knockList(v, name)
	case "ftp":
		err = p.ftp(v, name, &c.FTP)
	case "log":
		err = p.logSection(v, name, &c.Log)
	case "metrics":
		err = p.mapping(v, name, map[string]handler{
			"listen": func(v *yaml.Node, path string) error {
				var err error
				c.Metrics.Listen, err = p.listenAddr(v, path)
				return err
			},
		})
	case "control":
		err = p.mapping(v, name, map[string]handler{
			"socket": func(v *yaml.Node, path string) error {
				var err error
				c.Control.Socket, err = p.absPath(v, path)
				return err
			},
		})
	case "fleet":
		err = p.fleet(v, name, &c.Fleet)
	case "state":
		err = p.mapping(v, name, map[string]handler{
			"dir": func(v *yaml.Node, path string) error {
				var err error
				c.State.Dir, err = p.absPath(v, path)
				return err
			},
		})
	}
	return err
}

func (p *parser) queue(n *yaml.Node, path string, q *Queue) error {
	var countNode *yaml.Node
	err := p.mapping(n, path, map[string]handler{
		"number": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 0, 65535)
			q.Number = uint16(x)
			return err
		},
		"count": func(v *yaml.Node, path string) error {
			countNode = v
			x, err := p.integer(v, path, 1, MaxQueues)
			q.Count = uint16(x)
			return err
		},
		"max_len": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, MaxQueueLen)
			q.MaxLen = uint32(x)
			return err
		},
		"batch": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 256)
			q.Batch = int(x)
			return err
		},
		"bypass": func(v *yaml.Node, path string) (err error) {
			q.Bypass, err = p.boolean(v, path)
			return err
		},
		"fail_open": func(v *yaml.Node, path string) (err error) {
			q.FailOpen, err = p.boolean(v, path)
			return err
		},
		"failure_verdict": func(v *yaml.Node, path string) (err error) {
			q.FailureVerdict, err = p.action(v, path, "accept", "drop")
			return err
		},
		"mark_mask": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 1<<32-1)
			if err != nil {
				return err
			}
			q.MarkMask = uint32(x)
			if q.MarkBits() == 0 {
				return p.errf(v, path, ErrBadValue, "mask %#08x cannot carry a reject kind (needs %d contiguous bits at its low end)", x, rejectKindBits)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	if int(q.Number)+int(q.Count)-1 > 65535 {
		return p.errf(countNode, join(path, "count"), ErrBadValue, "queues %d-%d go past 65535", q.Number, int(q.Number)+int(q.Count)-1)
	}
	return nil
}

func (p *parser) flows(n *yaml.Node, path string, f *Flows) error {
	t := &f.Timeouts
	timeout := func(d *time.Duration) handler {
		return func(v *yaml.Node, path string) (err error) {
			*d, err = p.duration(v, path, time.Second)
			return err
		}
	}
	return p.mapping(n, path, map[string]handler{
		"max": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, MaxFlows)
			f.Max = int(x)
			return err
		},
		"kernel_events": func(v *yaml.Node, path string) error {
			var err error
			f.KernelEvents, err = p.oneOf(v, path, KernelEventsMinimal, KernelEventsAll)
			return err
		},
		"tcp_pickup": func(v *yaml.Node, path string) error {
			var err error
			f.TCPPickup, err = p.oneOf(v, path, TCPPickupPolicy, TCPPickupDrop)
			return err
		},
		"timeouts": func(v *yaml.Node, path string) error {
			return p.mapping(v, path, map[string]handler{
				"tcp_syn_sent":    timeout(&t.TCPSynSent),
				"tcp_syn_recv":    timeout(&t.TCPSynRecv),
				"tcp_established": timeout(&t.TCPEstablished),
				"tcp_fin_wait":    timeout(&t.TCPFinWait),
				"tcp_close_wait":  timeout(&t.TCPCloseWait),
				"tcp_last_ack":    timeout(&t.TCPLastAck),
				"tcp_time_wait":   timeout(&t.TCPTimeWait),
				"tcp_close":       timeout(&t.TCPClose),
				"udp":             timeout(&t.UDP),
				"udp_stream":      timeout(&t.UDPStream),
				"icmp":            timeout(&t.ICMP),
				"generic":         timeout(&t.Generic),
			})
		},
	})
}

func (p *parser) zoneMap(n *yaml.Node, path string) ([]Zone, error) {
	n, err := p.deref(n, path)
	if err != nil {
		return nil, err
	}
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, path, ErrBadType, "want a mapping of zone name to interfaces, got %s", describe(n))
	}
	var zones []Zone
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, kn, err := p.str(n.Content[i], path)
		if err != nil {
			return nil, err
		}
		zpath := join(path, name)
		if first, dup := seen[name]; dup {
			return nil, p.errf(kn, zpath, ErrDuplicate, "zone declared twice (first on line %d)", first)
		}
		seen[name] = kn.Line
		if err := checkName(name); err != nil {
			return nil, p.errf(kn, path, ErrBadValue, "zone name %q: %v", name, err)
		}
		z := Zone{Name: name}
		err = p.strList(n.Content[i+1], zpath, func(s string, sn *yaml.Node, path string) error {
			if err := checkIfName(strings.TrimPrefix(s, "!")); err != nil {
				return p.errf(sn, path, ErrBadValue, "interface %q: %v", s, err)
			}
			p.ifaceRefs = append(p.ifaceRefs, ifaceRef{Name: strings.TrimPrefix(s, "!"), Line: sn.Line, Path: path, InZone: true})
			z.Interfaces = appendUnique(z.Interfaces, s)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(z.Interfaces) == 0 {
			return nil, p.errf(kn, zpath, ErrMissing, "zone has no interfaces")
		}
		zones = append(zones, z)
		p.zones[name] = z.Interfaces
	}
	return zones, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// ifaces parses an interface list (scalar allowed); zone names expand to
// their interfaces. A name written "!name" (an interface or a zone) is
// negated: the list matches an interface that is none of the negated ones
// and, when the list names any others, one of those (see Rule.In).
func (p *parser) ifaces(n *yaml.Node, path string) ([]string, error) {
	var out []string
	err := p.strList(n, path, func(s string, sn *yaml.Node, path string) error {
		name, neg := strings.CutPrefix(s, "!")
		if z, ok := p.zones[name]; ok {
			for _, i := range z {
				if neg {
					if strings.HasPrefix(i, "!") {
						return p.errf(sn, path, ErrConflict, "zone %q holds the negated interface %q: it cannot be negated as a whole", name, i)
					}
					i = "!" + i
				}
				out = appendUnique(out, i)
			}
			return nil
		}
		if err := checkIfName(name); err != nil {
			return p.errf(sn, path, ErrUnknownRef, "%q is neither a zone nor a valid interface name (%v)", s, err)
		}
		p.ifaceRefs = append(p.ifaceRefs, ifaceRef{Name: name, Line: sn.Line, Path: path})
		out = appendUnique(out, s)
		return nil
	})
	return out, err
}

// kernelIfaces checks an interface list the kernel ruleset matches (trusted,
// NAT): iptables matches one interface per rule, so a negated interface
// must stand alone.
func (p *parser) kernelIfaces(n *yaml.Node, path string) ([]string, error) {
	ifs, err := p.ifaces(n, path)
	if err != nil {
		return nil, err
	}
	if len(ifs) > 1 && slices.ContainsFunc(ifs, func(s string) bool { return strings.HasPrefix(s, "!") }) {
		return nil, p.errf(n, path, ErrConflict, "a negated interface must stand alone here (%s): iptables matches one interface per rule", strings.Join(ifs, ", "))
	}
	return ifs, nil
}

// checkIfName applies the kernel's dev_valid_name rules (IFNAMSIZ 16: at
// most 15 bytes; not "." or ".."; no '/', ':' or white space), to which
// iptables adds a trailing "+" wildcard.
func checkIfName(s string) error {
	switch {
	case s == "":
		return errors.New("empty interface name")
	case len(s) > 15:
		return fmt.Errorf("longer than 15 bytes")
	case s == "." || s == "..":
		return errors.New("not an interface name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		// The kernel refuses '/', ':' and white space; quotes and
		// backslashes cannot be written into iptables-restore input.
		if c == '/' || c == ':' || c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return fmt.Errorf("contains %q", c)
		}
	}
	return nil
}

// checkName accepts names of rules, zones, lists, guards, knocks: 1-64
// bytes of letters, digits and "-_.:".
func checkName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return fmt.Errorf("contains %q (use letters, digits and -_.:)", c)
		}
	}
	return nil
}

func (p *parser) absPath(n *yaml.Node, path string) (string, error) {
	s, sn, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(s, "/") {
		return "", p.errf(sn, path, ErrBadValue, "%q is not an absolute path", s)
	}
	return s, nil
}

func (p *parser) logSection(n *yaml.Node, path string, l *Log) error {
	return p.mapping(n, path, map[string]handler{
		"format": func(v *yaml.Node, path string) (err error) {
			l.Format, err = p.oneOf(v, path, "text", "json")
			return err
		},
		"level": func(v *yaml.Node, path string) (err error) {
			l.Level, err = p.oneOf(v, path, "debug", "info", "warn", "error")
			return err
		},
		"rate": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, 1000000)
			l.Rate = int(x)
			return err
		},
	})
}

// logSpec parses `log: true`, `log: false` or `log: {prefix: "..."}`.
func (p *parser) logSpec(n *yaml.Node, path, defPrefix string) (*LogSpec, error) {
	n, err := p.deref(n, path)
	if err != nil {
		return nil, err
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		on, err := p.boolean(n, path)
		if err != nil || !on {
			return nil, err
		}
		return &LogSpec{Prefix: defPrefix}, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, path, ErrBadType, "want true, false or {prefix: ...}, got %s", describe(n))
	}
	ls := &LogSpec{Prefix: defPrefix}
	err = p.mapping(n, path, map[string]handler{
		"prefix": func(v *yaml.Node, path string) error {
			s, sn, err := p.str(v, path)
			if err != nil {
				return err
			}
			if len(s) > maxLogPrefix {
				return p.errf(sn, path, ErrBadValue, "prefix %q is longer than %d bytes", s, maxLogPrefix)
			}
			for _, c := range []byte(s) {
				if c < ' ' || c == 0x7f || c == '"' || c == '\\' {
					return p.errf(sn, path, ErrBadValue, "prefix %q contains %q", s, c)
				}
			}
			ls.Prefix = s
			return nil
		},
	})
	return ls, err
}

func defaultPrefix(what string) string {
	s := fmt.Sprintf(defaultLogPrefixFormat, what)
	if len(s) > maxLogPrefix {
		s = s[:maxLogPrefix-2] + ": "
	}
	return s
}
