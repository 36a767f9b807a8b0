package iptables

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions wrap them with %w and the operation; test with
// errors.Is.
var (
	// ErrFamily is returned for a family other than IPv4 or IPv6.
	ErrFamily = errors.New("address family must be ipv4 or ipv6")
	// ErrMarkMask is returned when the queue's mark mask cannot name the
	// reject kinds (rules.Queue.MarkBits is 0) but a chain needs them.
	ErrMarkMask = errors.New("mark mask has too few low contiguous bits for the reject kinds")
	// ErrConfig is returned for a config value the generator cannot express
	// (it slipped past validation, or the Config was built by hand).
	ErrConfig = errors.New("config cannot be expressed as iptables rules")
	// ErrSave is returned when iptables-save output cannot be understood.
	ErrSave = errors.New("malformed iptables-save output")
	// ErrBackend is returned when no usable iptables backend is found, for
	// example when a binary is missing.
	ErrBackend = errors.New("iptables backend unavailable")
	// ErrRestore is returned when iptables-restore refuses the ruleset; the
	// *RestoreError carries its message and the offending line.
	ErrRestore = errors.New("iptables-restore failed")
	// ErrUnsupported is returned by Installer methods on systems other
	// than Linux.
	ErrUnsupported = errors.New("kernel rules are only supported on linux")
)

// RestoreError is iptables-restore refusing a ruleset. It matches
// ErrRestore with errors.Is.
type RestoreError struct {
	Command string // the restore binary, e.g. iptables-nft-restore
	Line    int    // the input line it reported, 0 when it named none
	Text    string // that line of the input, "" when Line is 0
	Stderr  string // its message, trimmed
	Err     error  // the exec error (exit status)
}

// Error returns the restore binary's message and the input line it blamed.
func (e *RestoreError) Error() string {
	msg := e.Command + ": " + e.Stderr
	if e.Stderr == "" && e.Err != nil {
		msg = e.Command + ": " + e.Err.Error()
	}
	if e.Line > 0 {
		msg += fmt.Sprintf(" (input line %d: %s)", e.Line, e.Text)
	}
	return msg
}

// Is reports whether target is ErrRestore.
func (e *RestoreError) Is(target error) bool { return target == ErrRestore }

// Unwrap returns the exec error.
func (e *RestoreError) Unwrap() error { return e.Err }
