package rules

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Fleet configures the fleet link: the decisions this gateway makes (bans,
// knock windows, one-shot knock uses, allows, recent-list entries) are published to a NATS JetStream
// stream and the decisions of the other gateways are applied here. The
// zero value (no fleet: section) is a single gateway: nothing is shared.
type Fleet struct {
	// Servers are the NATS servers (nats://host:port or tls://host:port);
	// empty: the fleet link is off.
	Servers []string
	// Gateway names this gateway in the stream's subjects and in the
	// origin of its decisions; unique in the fleet.
	Gateway     string
	Credentials FleetCredentials
	Share       FleetShare
	// Stream is the JetStream stream's name (default NFQFW); the subjects
	// are nfqfw.<stream>.<kind>.<gateway>.
	Stream string
	// Replicas is the stream's replica count (1..5, default 1): 3 on a
	// 3-node cluster survives one node's loss.
	Replicas int
}

// Enabled reports whether a fleet link is configured.
func (f Fleet) Enabled() bool { return len(f.Servers) > 0 }

// FleetCredentials says how the link authenticates. Every file must be
// readable by root only (CheckHost refuses one that its group or others may
// read): it holds a secret.
type FleetCredentials struct {
	User         string // NATS user name, with PasswordFile
	PasswordFile string // file holding the user's password
	NKeySeedFile string // file holding an nkey seed (SU...)
	CertFile     string // TLS client certificate (with KeyFile)
	KeyFile      string // TLS client key
	CAFile       string // TLS CA that signed the servers' certificates
}

// FleetShare says which kinds of decision are shared.
type FleetShare struct {
	Bans     bool // guard and manual bans and unbans (default true)
	Knocks   bool // knock windows opened by sequences marked shared: true
	OneShots bool // one-shot knock uses: a sequence used on one gateway is refused on the others
	Allows   bool // temporary allows (nfqfw allows add) and their lifting
	Recent   bool // addresses set in the recent lists marked shared: true
}

// MaxFleetReplicas is the largest stream replica count JetStream allows.
const MaxFleetReplicas = 5

// fleetFile is a credential file and where the config names it.
type fleetFile struct {
	path, key string
	line      int
}

func (p *parser) fleet(n *yaml.Node, path string, f *Fleet) error {
	if d, err := p.deref(n, path); err != nil || isNull(d) {
		return err // fleet: with no value: a single gateway
	}
	f.Stream = "NFQFW"
	f.Replicas = 1
	f.Share.Bans = true
	var serversNode, gatewayNode *yaml.Node
	err := p.mapping(n, path, map[string]handler{
		"servers": func(v *yaml.Node, path string) error {
			serversNode = v
			return p.strList(v, path, func(s string, sn *yaml.Node, path string) error {
				u, uerr := url.Parse(s)
				if uerr != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
					return p.errf(sn, path, ErrBadValue, "%q is not a NATS server: want nats://host:port or tls://host:port (credentials go under credentials:)", s)
				}
				f.Servers = append(f.Servers, s)
				return nil
			})
		},
		"gateway": func(v *yaml.Node, path string) error {
			gatewayNode = v
			return p.name(v, path, &f.Gateway)
		},
		"credentials": func(v *yaml.Node, path string) error { return p.fleetCredentials(v, path, &f.Credentials) },
		"share": func(v *yaml.Node, path string) error {
			f.Share = FleetShare{}
			return p.list(v, path, true, func(el *yaml.Node, path string) error {
				s, err := p.oneOf(el, path, "bans", "knocks", "one_shots", "allows", "recent")
				switch s {
				case "allows":
					f.Share.Allows = true
				case "recent":
					f.Share.Recent = true
				case "bans":
					f.Share.Bans = true
				case "knocks":
					f.Share.Knocks = true
				case "one_shots":
					f.Share.OneShots = true
				}
				return err
			})
		},
		"stream": func(v *yaml.Node, path string) error {
			s, sn, err := p.str(v, path)
			if err != nil {
				return err
			}
			if s == "" || len(s) > 32 || strings.ContainsFunc(s, func(r rune) bool {
				return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
			}) {
				return p.errf(sn, path, ErrBadValue, "stream %q: want 1 to 32 letters, digits, _ or -", s)
			}
			f.Stream = s
			return nil
		},
		"replicas": func(v *yaml.Node, path string) error {
			x, err := p.integer(v, path, 1, MaxFleetReplicas)
			f.Replicas = int(x)
			return err
		},
	})
	if err != nil {
		return err
	}
	if len(f.Servers) == 0 {
		return p.errf(orNode(serversNode, n), join(path, "servers"), ErrMissing, "a fleet needs at least one NATS server")
	}
	if f.Gateway == "" {
		return p.errf(orNode(gatewayNode, n), join(path, "gateway"), ErrMissing, "name this gateway (unique in the fleet)")
	}
	return nil
}

func orNode(a, b *yaml.Node) *yaml.Node {
	if a != nil {
		return a
	}
	return b
}

func (p *parser) fleetCredentials(n *yaml.Node, path string, c *FleetCredentials) error {
	file := func(dst *string) handler {
		return func(v *yaml.Node, path string) error {
			s, err := p.absPath(v, path)
			if err != nil {
				return err
			}
			*dst = s
			p.fleetFiles = append(p.fleetFiles, fleetFile{path: s, key: path, line: v.Line})
			return nil
		}
	}
	var userNode *yaml.Node
	err := p.mapping(n, path, map[string]handler{
		"user": func(v *yaml.Node, path string) error {
			userNode = v
			s, _, err := p.str(v, path)
			c.User = s
			return err
		},
		"password_file":  file(&c.PasswordFile),
		"nkey_seed_file": file(&c.NKeySeedFile),
		"cert_file":      file(&c.CertFile),
		"key_file":       file(&c.KeyFile),
		"ca_file":        file(&c.CAFile),
	})
	if err != nil {
		return err
	}
	switch {
	case (c.User == "") != (c.PasswordFile == ""):
		return p.errf(orNode(userNode, n), path, ErrConflict, "user and password_file go together")
	case c.User != "" && c.NKeySeedFile != "":
		return p.errf(n, path, ErrConflict, "user/password_file and nkey_seed_file are two ways to authenticate: choose one")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return p.errf(n, path, ErrConflict, "cert_file and key_file go together")
	}
	return nil
}

// ErrInsecureFile is wrapped by CheckHost's error for a fleet credential
// file that its group or other users may read or write, or that root does
// not own.
var ErrInsecureFile = errors.New("credential file readable by others")

// checkFleetFiles checks that every fleet credential file exists, is a
// regular file owned by root (the daemon's user) and is readable by its
// owner only.
func (c *Config) checkFleetFiles() []error {
	var errs []error
	for _, f := range c.fleetFiles {
		st, err := os.Stat(f.path)
		if err != nil {
			errs = append(errs, &Error{File: c.File, Line: f.line, Path: f.key, Msg: err.Error(), Err: ErrBadValue})
			continue
		}
		if !st.Mode().IsRegular() {
			errs = append(errs, &Error{File: c.File, Line: f.line, Path: f.key, Msg: fmt.Sprintf("%s is not a regular file", f.path), Err: ErrBadValue})
			continue
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			errs = append(errs, &Error{File: c.File, Line: f.line, Path: f.key, Err: ErrInsecureFile,
				Msg: fmt.Sprintf("%s has mode %04o: it holds a secret, its group and other users must not read it (chmod 600 %s)", f.path, perm, f.path)})
			continue
		}
		if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
			errs = append(errs, &Error{File: c.File, Line: f.line, Path: f.key, Err: ErrInsecureFile,
				Msg: fmt.Sprintf("%s is owned by uid %d, not by the daemon's user (uid %d)", f.path, uid, os.Geteuid())})
		}
	}
	return errs
}

// fileOwner returns the uid owning the file st describes.
func fileOwner(st os.FileInfo) (int, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(s.Uid), true
}
