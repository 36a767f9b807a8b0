//go:build !linux

package iptables

// genReader has no generation to read off Linux.
type genReader struct{ netns string }

func (g *genReader) read() (uint32, error) { return 0, ErrUnsupported }
