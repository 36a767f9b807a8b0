package rules

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Parse, Load and Compile wraps one
// of them; test with errors.Is.
var (
	// ErrSyntax: the file is not well-formed YAML.
	ErrSyntax = errors.New("yaml syntax error")
	// ErrUnknownField: a key that the schema does not have (often a typo).
	ErrUnknownField = errors.New("unknown field")
	// ErrBadType: a value of the wrong YAML kind, e.g. a list where a
	// number belongs, or a string where a boolean belongs.
	ErrBadType = errors.New("wrong type")
	// ErrBadValue: a value of the right kind that is not acceptable, e.g. a
	// port out of range, a malformed CIDR or an unknown ICMP type name.
	ErrBadValue = errors.New("bad value")
	// ErrMissing: a required field is absent.
	ErrMissing = errors.New("missing field")
	// ErrDuplicate: a key or name given twice where it must be unique.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnknownRef: a name that refers to nothing declared (recent list,
	// guard, knock, zone).
	ErrUnknownRef = errors.New("unknown reference")
	// ErrConflict: fields that cannot go together, e.g. tcp-reset on a UDP
	// rule, icmp_type on a TCP rule, family ipv4 with an IPv6 source.
	ErrConflict = errors.New("conflicting fields")
	// ErrNoInterface: an interface name that no interface of the host
	// carries and that interfaces.dynamic does not declare
	// (Config.UnknownInterfaces).
	ErrNoInterface = errors.New("no such interface")
)

// Error is a configuration error at a place in a file. Its message reads
// "file:line: field.path: what is wrong", e.g.
//
//	server.yaml:14: input.rules[2].dport: port 70000 out of range (1-65535)
//
// Err is one of the sentinel errors above.
type Error struct {
	File string // file name as given to Parse
	Line int    // 1-based line, 0 when unknown
	Path string // field path, e.g. "input.rules[2].dport"; "" for the top level
	Msg  string // what is wrong, naming the bad value
	Err  error  // sentinel
}

// Error formats the error as "file:line: path: message".
func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }
