package control

// CmdHA tells the daemon its role in a gateway pair: keepalived's notify
// hooks run "nfqfw ha promote" when this gateway takes the virtual
// addresses and "nfqfw ha demote" when it hands them over.
const CmdHA = "ha"

// HA actions.
const (
	HAPromote = "promote" // take the kernel's flows as admitted where the policy agrees; role primary
	HADemote  = "demote"  // role backup; every flow, ban, knock window and recent list is kept
	HAStatus  = "status"  // report the role only
)

// HARequest is one HA action.
type HARequest struct {
	Action string `json:"action"`
}

// HAResponse is the role after the action and, for a promotion, what the
// adoption of the kernel's flows did with them.
type HAResponse struct {
	Role     string `json:"role"`               // "primary", "backup", or "standalone" (never told)
	Flows    int    `json:"flows,omitempty"`    // kernel flows read (promote)
	Admitted int    `json:"admitted,omitempty"` // taken as admitted: the policy admits their first packet
	Tracked  int    `json:"tracked,omitempty"`  // the engine tracked them already
	Refused  int    `json:"refused,omitempty"`  // the policy would refuse their first packet: left to the kernel's state alone
	Skipped  int    `json:"skipped,omitempty"`  // not adopted (ICMP, no route, table full)
}
