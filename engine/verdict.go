package engine

import "github.com/nfqfw/nfqfw/rules"

// Reason says why a verdict was given. Reasons are constants and double as
// the "reason" label value of metrics and the reason field of log lines.
type Reason uint8

// Reasons. Keep reasonNames in step.
const (
	ReasonRule        Reason = iota // a policy rule matched (Verdict.Rule names it)
	ReasonPolicy                    // no rule matched: the chain's default policy
	ReasonEstablished               // packet of a flow the engine already admitted
	ReasonRelated                   // ICMP error quoting a known flow, or an expected (helper) connection
	ReasonInvalid                   // state machine says INVALID (e.g. TCP non-SYN without a flow)
	ReasonMalformed                 // truncated or garbage packet
	ReasonFragment                  // non-first fragment: no transport header to decide on
	ReasonUnsupported               // neither IPv4 nor IPv6
	ReasonTableFull                 // flow table full and nothing could be evicted
	ReasonPanic                     // a recovered panic: the configured failure verdict
	ReasonOverload                  // internal overload: the configured failure verdict
	ReasonRecent                    // a recent-list condition decided (port-scan trick)
	ReasonRateLimit                 // a rate guard was exceeded
	ReasonBanned                    // the source is banned
	ReasonKnock                     // a knock step (the knock packet itself is not admitted)
	ReasonKnockOpen                 // admitted through a window opened by a knock sequence
	ReasonAllowlist                 // management allowlist: never overridden
	NumReasons
)

var reasonNames = [NumReasons + 1]string{
	ReasonRule:        "rule",
	ReasonPolicy:      "policy",
	ReasonEstablished: "established",
	ReasonRelated:     "related",
	ReasonInvalid:     "invalid",
	ReasonMalformed:   "malformed",
	ReasonFragment:    "fragment",
	ReasonUnsupported: "unsupported",
	ReasonTableFull:   "table_full",
	ReasonPanic:       "panic",
	ReasonOverload:    "overload",
	ReasonRecent:      "recent",
	ReasonRateLimit:   "rate_limit",
	ReasonBanned:      "banned",
	ReasonKnock:       "knock",
	ReasonKnockOpen:   "knock_open",
	ReasonAllowlist:   "allowlist",
	NumReasons:        "unknown", // any value out of range
}

func (r Reason) String() string { return reasonNames[min(r, NumReasons)] }

// Verdict is the engine's answer for one packet.
type Verdict struct {
	Action rules.Action     // accept, drop or reject
	Reject rules.RejectKind // valid when Action is ActionReject
	Log    bool             // the deciding rule asks for a log line
	Rule   int              // index of the deciding rule in Policy.Rules, -1 when none
	Reason Reason
}
