package ftp

// Refusal says why an announcement did not become an expectation. Refusals
// are constants and double as the "reason" label value of
// nfqfw_ftp_refused_total and the reason field of log lines.
type Refusal uint8

// Refusal reasons. Keep refusalNames in step.
const (
	RefusedBounce    Refusal = iota // the announced address is not the control connection's client (PORT/EPRT) or server (227)
	RefusedLowPort                  // the announced port is below 1024
	RefusedTooMany                  // the control connection has max_per_control expectations already
	RefusedTableFull                // the helper holds its maximum of expectations
	NumRefusals
)

var refusalNames = [NumRefusals + 1]string{
	RefusedBounce:    "bounce",
	RefusedLowPort:   "low_port",
	RefusedTooMany:   "too_many",
	RefusedTableFull: "table_full",
	NumRefusals:      "unknown", // any value out of range
}

func (r Refusal) String() string { return refusalNames[min(r, NumRefusals)] }
