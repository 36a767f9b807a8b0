package ftp

import "errors"

// ErrMalformed is returned by Parse for a line that names an announcement
// (227, 229, PORT, EPRT) whose arguments do not parse. It is returned as
// is, not wrapped, so that the packet path does not allocate.
var ErrMalformed = errors.New("ftp: malformed announcement")
