package rules

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ifaceRef is one interface name as the file wrote it: a zone member, or a
// name in trusted, in, out or a nat section that is not a zone.
type ifaceRef struct {
	Name   string
	Line   int
	Path   string
	InZone bool // a zone's member; otherwise the name could have meant a zone
}

// dynamicIfaces parses interfaces.dynamic: interface names, "+" wildcards
// allowed, zones not (a zone is a group of these names, not one).
func (p *parser) dynamicIfaces(n *yaml.Node, path string) ([]string, error) {
	var out []string
	err := p.strList(n, path, func(s string, sn *yaml.Node, path string) error {
		if err := checkIfName(s); err != nil {
			return p.errf(sn, path, ErrBadValue, "interface %q: %v", s, err)
		}
		out = appendUnique(out, s)
		return nil
	})
	return out, err
}

// HostInterfaces returns the names of the interfaces present in the
// calling thread's network namespace.
func HostInterfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := make([]string, len(ifs))
	for i, ifc := range ifs {
		names[i] = ifc.Name
	}
	slices.Sort(names)
	return names, nil
}

// UnknownInterfaces returns an error for every interface name of the
// config that is absent from present (the host's interfaces, see
// HostInterfaces) and not declared in interfaces.dynamic: a name no packet
// will ever carry, most often a typo of a zone or an interface ("uplnk"
// for the zone "uplink"), or an example's interface left unchanged. A "+"
// wildcard is absent when no present interface has its prefix. Each name
// is reported once, at its first use, naming the closest zone or
// interface; every error is an *Error wrapping ErrNoInterface.
func (c *Config) UnknownInterfaces(present []string) []*Error {
	var unknown []ifaceRef
	also := map[string][]string{} // name -> the lines of its later uses
	for _, r := range c.ifaceRefs {
		switch {
		case hostHas(present, r.Name) || c.dynamic(r.Name):
		case also[r.Name] != nil:
			also[r.Name] = append(also[r.Name], fmt.Sprint(r.Line))
		default:
			unknown = append(unknown, r)
			also[r.Name] = []string{}
		}
	}
	out := make([]*Error, 0, len(unknown))
	for _, r := range unknown {
		what := fmt.Sprintf("%q is neither a zone nor an interface present on this host", r.Name)
		switch {
		case strings.HasSuffix(r.Name, "+"):
			what = fmt.Sprintf("%q matches no interface present on this host", r.Name)
		case r.InZone:
			what = fmt.Sprintf("interface %q is not present on this host", r.Name)
		}
		if lines := also[r.Name]; len(lines) > 0 {
			what += " (also used on line " + strings.Join(lines, ", ") + ")"
		}
		out = append(out, &Error{File: c.File, Line: r.Line, Path: r.Path, Err: ErrNoInterface,
			Msg: fmt.Sprintf("%s%s; present: %s; declare one that appears later (ppp0, wg0, hotplug) in interfaces.dynamic",
				what, c.closestName(r, present), listNames(present))})
	}
	return out
}

// listNames joins names for a message, the first 16 of a long list.
func listNames(names []string) string {
	const most = 16
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// CheckHost is UnknownInterfaces against this host's interfaces, joined
// into one error (nil when every name is present or dynamic). Run and
// reload refuse a config it fails.
func (c *Config) CheckHost() error {
	present, err := HostInterfaces()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range c.UnknownInterfaces(present) {
		errs = append(errs, e)
	}
	errs = append(errs, c.checkFleetFiles()...)
	return errors.Join(errs...)
}

// LoadOnHost is Load followed by CheckHost: what run and reload accept.
func LoadOnHost(path string) (*Config, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := c.CheckHost(); err != nil {
		return nil, err
	}
	return c, nil
}

// dynamic reports whether interfaces.dynamic covers name: the same name, or
// a wildcard whose prefix name starts with.
func (c *Config) dynamic(name string) bool {
	for _, d := range c.Interfaces.Dynamic {
		if d == name || (strings.HasSuffix(d, "+") && strings.HasPrefix(name, strings.TrimSuffix(d, "+"))) {
			return true
		}
	}
	return false
}

// hostHas reports whether a present interface carries name, or, for a
// wildcard, has its prefix.
func hostHas(present []string, name string) bool {
	prefix, wild := strings.CutSuffix(name, "+")
	for _, h := range present {
		if h == name || (wild && strings.HasPrefix(h, prefix)) {
			return true
		}
	}
	return false
}

// closestName returns ` (did you mean zone "x"?)` or ` (did you mean
// interface "y"?)` for the declared zone (when r could have meant one) or
// present interface nearest to r's name.
func (c *Config) closestName(r ifaceRef, present []string) string {
	var zones []string
	if !r.InZone {
		for _, z := range c.Zones {
			zones = append(zones, z.Name)
		}
	}
	if z := closest(r.Name, zones); z != "" {
		return fmt.Sprintf(" (did you mean zone %q?)", z)
	}
	if i := closest(r.Name, present); i != "" {
		return fmt.Sprintf(" (did you mean interface %q?)", i)
	}
	return ""
}

// closest returns the candidate within edit distance 2 of s, the first in
// order on a tie, or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
