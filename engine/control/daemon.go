package control

import (
	"time"

	"github.com/nfqfw/nfqfw/engine"
)

// The requests and answers of the daemon's own commands (status, reload,
// state); the matchers' commands define theirs next to their handlers.

// ReloadRequest asks for a reload; with Confirm (a duration) the new
// config is rolled back unless confirmed in time.
type ReloadRequest struct {
	Confirm string `json:"confirm,omitempty"`
	// SSHConnection is the invoking shell's SSH_CONNECTION ("client-ip
	// client-port server-ip server-port"): the reload is refused when the
	// new policy would refuse a new connection from that client.
	SSHConnection string `json:"ssh_connection,omitempty"`
	// Force applies a config that would lock a management connection out.
	Force bool `json:"force,omitempty"`
}

// StateRequest filters the flows "state" returns. Empty fields match all.
type StateRequest struct {
	Proto string `json:"proto,omitempty"` // tcp, udp, icmp, icmpv6, or a number
	Addr  string `json:"addr,omitempty"`  // an address on either side of either tuple
	Port  uint16 `json:"port,omitempty"`  // a port on either side of either tuple
	State string `json:"state,omitempty"` // a TCP state (ESTABLISHED), UNREPLIED, ASSURED or RELATED
	Limit int    `json:"limit,omitempty"` // at most this many flows (0: all)
}

// StateFlow is one flow of the state view.
type StateFlow struct {
	Proto    string `json:"proto"`
	ProtoNum uint8  `json:"proto_num"`
	State    string `json:"state,omitempty"`
	Timeout  int64  `json:"timeout"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	SPort    uint16 `json:"sport,omitempty"`
	DPort    uint16 `json:"dport,omitempty"`
	RSrc     string `json:"reply_src"`
	RDst     string `json:"reply_dst"`
	RSPort   uint16 `json:"reply_sport,omitempty"`
	RDPort   uint16 `json:"reply_dport,omitempty"`
	Replied  bool   `json:"replied"`
	Assured  bool   `json:"assured"`
	Rule     string `json:"rule,omitempty"`
	Related  bool   `json:"related,omitempty"`
	Parent   string `json:"parent,omitempty"`
	Line     string `json:"line"` // as conntrack -L prints it
}

// StateResponse is the answer to "state".
type StateResponse struct {
	Flows   []StateFlow    `json:"flows"`
	Total   int            `json:"total"`   // flows in the table
	Matched int            `json:"matched"` // flows that matched the filter
	ByState map[string]int `json:"by_state"`
	Max     int            `json:"max"`
}

// StatusResponse is the answer to "status".
type StatusResponse struct {
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	Config     string    `json:"config"`
	ConfigHash string    `json:"config_hash"`
	Started    time.Time `json:"started"`
	Queues     []uint16  `json:"queues"`
	Flows      int       `json:"flows"`
	// StateSaveError is the error of the last state save; empty when it
	// succeeded (or none was due yet).
	StateSaveError string `json:"state_save_error,omitempty"`
	// Problems lists what is wrong, one line per subsystem (a failed
	// auxiliary subsystem being retried, the kernel ruleset changed by
	// another tool and not yet repaired); empty when all is well.
	Problems []string `json:"problems,omitempty"`
	// Warnings lists what an operator must know but does not stop the
	// firewall working as before: the config file on disk is not the
	// running config (a reload was refused or rolled back), both hashes.
	Warnings []string `json:"warnings,omitempty"`
	// Fleet describes the fleet link (gateway, link state, backlog,
	// stream position, counts); empty without a fleet.
	Fleet string `json:"fleet,omitempty"`
	// HARole is the role "nfqfw ha" last set in a gateway pair
	// ("primary", "backup"); empty when no hook has told the daemon.
	HARole string `json:"ha_role,omitempty"`
}

// CmdExplain explains a flow against the running policy and the live state
// of its matchers; CmdTrace streams the explanations of the packets the
// daemon decides.
const (
	CmdExplain = "explain"
	CmdTrace   = "trace"
)

// ExplainRequest is the flow to explain.
type ExplainRequest struct {
	Flow engine.Flow `json:"flow"`
}

// TraceRequest asks for the explanations of the packets the daemon decides
// that Filter selects, at most Rate a second, for up to Wait (Go duration).
// The answer comes once an explanation has arrived and a short while
// passed, or Wait ended: "nfqfw trace" asks again for a live stream.
type TraceRequest struct {
	Filter engine.TraceFilter `json:"filter"`
	Rate   int                `json:"rate,omitempty"` // per second (default 10, at most 1000)
	Wait   string             `json:"wait,omitempty"` // default 5s, at most 20s
}

// TraceResponse is the explanations of one trace request, in order.
type TraceResponse struct {
	Events  []engine.Explanation `json:"events"`
	Dropped uint64               `json:"dropped,omitempty"` // over the rate, or not read in time
}
