package sandbox

import "errors"

// ErrUnknownRole is returned when a role names no namespace of the sandbox.
var ErrUnknownRole = errors.New("unknown sandbox role")

// ErrBadLAN is returned when Options describe an unusable LAN.
var ErrBadLAN = errors.New("bad sandbox LAN")

// ErrStillRunning is returned by Proc.Wait when the process outlives the wait.
var ErrStillRunning = errors.New("process still running")
