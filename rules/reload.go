package rules

import (
	"reflect"
	"strings"
)

// ReloadClass says what a reload does with a change of a config field.
type ReloadClass uint8

// Reload classes.
const (
	// AppliedOnReload: a reload puts the new value in force (kernel
	// ruleset, policy, stateful matchers, logging, flow timeouts).
	AppliedOnReload ReloadClass = iota + 1
	// NeedsRestart: the value is bound to something opened once at start
	// (a queue, a socket, a listener, a directory, the flow table's size);
	// a reload that changes it is refused, naming the field.
	NeedsRestart
)

// String returns "applied on reload" or "needs restart".
func (c ReloadClass) String() string {
	switch c {
	case AppliedOnReload:
		return "applied on reload"
	case NeedsRestart:
		return "needs restart"
	}
	return "unclassified"
}

// FieldClass is the reload class of one config field. Path is the Go
// field path in Config ("Queue.MaxLen"); a path naming a struct classifies
// every field inside it. Key is the YAML key ("queue.max_len").
type FieldClass struct {
	Path  string
	Key   string
	Class ReloadClass
}

// FieldClasses classifies every field of Config. A test walks Config by
// reflection and fails when a field has no entry here: a new field must
// say whether a reload applies it.
var FieldClasses = []FieldClass{
	{"File", "", AppliedOnReload}, // where the config came from; not a setting
	{"Backend", "backend", NeedsRestart},
	{"IPv6", "ipv6", AppliedOnReload},
	{"Queue.Number", "queue.number", NeedsRestart},
	{"Queue.Count", "queue.count", NeedsRestart},
	{"Queue.MaxLen", "queue.max_len", NeedsRestart},
	{"Queue.Batch", "queue.batch", NeedsRestart},
	{"Queue.Bypass", "queue.bypass", AppliedOnReload},
	{"Queue.FailOpen", "queue.fail_open", NeedsRestart},
	{"Queue.FailureVerdict", "queue.failure_verdict", AppliedOnReload},
	{"Queue.MarkMask", "queue.mark_mask", AppliedOnReload},
	{"Flows.Max", "flows.max", NeedsRestart},
	{"Flows.Timeouts", "flows.timeouts", AppliedOnReload},
	{"Flows.KernelEvents", "flows.kernel_events", AppliedOnReload},
	{"Flows.TCPPickup", "flows.tcp_pickup", AppliedOnReload},
	{"Zones", "zones", AppliedOnReload},
	{"Trusted", "trusted", AppliedOnReload},
	{"Interfaces", "interfaces", AppliedOnReload},
	{"RPFilter", "rpfilter", AppliedOnReload},
	{"Input", "input", AppliedOnReload},
	{"Forward", "forward", AppliedOnReload},
	{"Output", "output", AppliedOnReload},
	{"NAT", "nat", AppliedOnReload},
	{"Recent", "recent", AppliedOnReload},
	{"Guards", "guards", AppliedOnReload},
	{"Knocks", "knocks", AppliedOnReload},
	{"FTP", "ftp", AppliedOnReload},
	{"Allowlist", "allowlist", AppliedOnReload},
	{"Log.Format", "log.format", AppliedOnReload},
	{"Log.Level", "log.level", AppliedOnReload},
	{"Log.Rate", "log.rate", AppliedOnReload},
	{"Metrics.Listen", "metrics.listen", NeedsRestart},
	{"Control.Socket", "control.socket", NeedsRestart},
	{"State.Dir", "state.dir", NeedsRestart},
	{"Fleet", "fleet", NeedsRestart}, // the link connects once, with these servers, credentials and stream
}

// RestartChanges returns the YAML keys of the restart-only fields whose
// value differs between old and cur, in FieldClasses order; nil when a
// reload can apply cur whole.
func RestartChanges(old, cur *Config) []string {
	var keys []string
	ov, cv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	for _, f := range FieldClasses {
		if f.Class != NeedsRestart {
			continue
		}
		if !reflect.DeepEqual(field(ov, f.Path).Interface(), field(cv, f.Path).Interface()) {
			keys = append(keys, f.Key)
		}
	}
	return keys
}

// field returns the field of v at the dotted path.
func field(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	return v
}
