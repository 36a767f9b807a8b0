package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFleet(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want Fleet
	}{
		{"none", "input: {policy: drop}\n", Fleet{}},
		{"empty section", "fleet:\n", Fleet{}},
		{"defaults", "fleet: {servers: [nats://10.0.0.1:4222], gateway: gw-a}\n",
			Fleet{Servers: []string{"nats://10.0.0.1:4222"}, Gateway: "gw-a", Stream: "NFQFW", Replicas: 1, Share: FleetShare{Bans: true}}},
		{"every kind", "fleet: {servers: [nats://10.0.0.1:4222], gateway: gw-a, share: [bans, knocks, one_shots, allows, recent]}\n",
			Fleet{Servers: []string{"nats://10.0.0.1:4222"}, Gateway: "gw-a", Stream: "NFQFW", Replicas: 1,
				Share: FleetShare{Bans: true, Knocks: true, OneShots: true, Allows: true, Recent: true}}},
		{"full", `fleet:
  servers: [nats://10.0.0.1:4222, tls://nats.example:4443]
  gateway: gw-b
  credentials: {user: gw-b, password_file: /etc/nfqfw/fleet.pass, ca_file: /etc/nfqfw/ca.pem}
  share: [knocks, one_shots]
  stream: edge-1
  replicas: 3
`, Fleet{Servers: []string{"nats://10.0.0.1:4222", "tls://nats.example:4443"}, Gateway: "gw-b",
			Credentials: FleetCredentials{User: "gw-b", PasswordFile: "/etc/nfqfw/fleet.pass", CAFile: "/etc/nfqfw/ca.pem"},
			Share:       FleetShare{Knocks: true, OneShots: true}, Stream: "edge-1", Replicas: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Fleet); diff != "" {
				t.Errorf("fleet (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFleetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
		err              error
	}{
		{"no servers", "fleet: {gateway: a}\n", "t.yaml:1: fleet.servers: a fleet needs at least one NATS server", ErrMissing},
		{"no gateway", "fleet: {servers: [nats://h:4222]}\n", "t.yaml:1: fleet.gateway: name this gateway (unique in the fleet)", ErrMissing},
		{"bad url", "fleet:\n  gateway: a\n  servers: [http://h:4222]\n",
			`t.yaml:3: fleet.servers[0]: "http://h:4222" is not a NATS server: want nats://host:port or tls://host:port (credentials go under credentials:)`, ErrBadValue},
		{"password in url", "fleet: {gateway: a, servers: [\"nats://u:p@h:4222\"]}\n",
			`t.yaml:1: fleet.servers[0]: "nats://u:p@h:4222" is not a NATS server: want nats://host:port or tls://host:port (credentials go under credentials:)`, ErrBadValue},
		{"no port", "fleet: {gateway: a, servers: [nats://h]}\n",
			`t.yaml:1: fleet.servers[0]: "nats://h" is not a NATS server: want nats://host:port or tls://host:port (credentials go under credentials:)`, ErrBadValue},
		{"replicas", "fleet: {gateway: a, servers: [nats://h:1], replicas: 7}\n", "t.yaml:1: fleet.replicas: 7 out of range (1-5)", ErrBadValue},
		{"share", "fleet: {gateway: a, servers: [nats://h:1], share: [flows]}\n", `t.yaml:1: fleet.share[0]: "flows" is not one of bans, knocks, one_shots, allows, recent`, ErrBadValue},
		{"stream", "fleet: {gateway: a, servers: [nats://h:1], stream: a.b}\n", `t.yaml:1: fleet.stream: stream "a.b": want 1 to 32 letters, digits, _ or -`, ErrBadValue},
		{"user alone", "fleet: {gateway: a, servers: [nats://h:1], credentials: {user: u}}\n", "t.yaml:1: fleet.credentials: user and password_file go together", ErrConflict},
		{"relative file", "fleet: {gateway: a, servers: [nats://h:1], credentials: {nkey_seed_file: seed}}\n", `t.yaml:1: fleet.credentials.nkey_seed_file: "seed" is not an absolute path`, ErrBadValue},
		{"two ways", "fleet: {gateway: a, servers: [nats://h:1], credentials: {user: u, password_file: /p, nkey_seed_file: /s}}\n",
			"t.yaml:1: fleet.credentials: user/password_file and nkey_seed_file are two ways to authenticate: choose one", ErrConflict},
		{"unknown key", "fleet: {gateway: a, servers: [nats://h:1], replica: 3}\n", `t.yaml:1: fleet: unknown field "replica" (did you mean "replicas"?)`, ErrUnknownField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

// TestFleetCredentialFiles: a credential file its group or others may read
// is refused by CheckHost, naming the file, its line and the fix.
func TestFleetCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "fleet.pass")
	if err := os.WriteFile(pass, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "input: {policy: drop}\nfleet:\n  gateway: a\n  servers: [nats://h:1]\n  credentials:\n    user: a\n    password_file: " + pass + "\n"
	c, err := Parse("t.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.checkFleetFiles(); len(errs) != 0 {
		t.Fatalf("mode 0600: %v", errs)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(pass, mode); err != nil {
			t.Fatal(err)
		}
		errs := c.checkFleetFiles()
		if len(errs) != 1 || !errors.Is(errs[0], ErrInsecureFile) || !strings.HasPrefix(errs[0].Error(), "t.yaml:7: fleet.credentials.password_file: ") ||
			!strings.Contains(errs[0].Error(), "chmod 600") {
			t.Errorf("mode %04o: %v, want one ErrInsecureFile at line 7 saying chmod 600", mode, errs)
		}
	}
	os.Remove(pass)
	if errs := c.checkFleetFiles(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no such file") {
		t.Errorf("missing file: %v", errs)
	}
}

// TestFleetExamples parses the fleet examples: each gateway's config
// names itself as its file does, on the same servers, stream and replicas;
// each nats-server config passes nats-server -t when nats-server is here.
func TestFleetExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "fleet", "gw-*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("fleet gateway examples: %v %v, want 3", files, err)
	}
	var first Fleet
	for i, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Compile(c); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if c.Fleet.Gateway != name || c.Fleet.Credentials.User != name || c.Fleet.Replicas != 3 || !c.Fleet.Share.Bans {
			t.Errorf("%s: fleet %+v, want gateway and user %s, replicas 3, bans shared", f, c.Fleet, name)
		}
		if i == 0 {
			first = c.Fleet
		} else if !slices.Equal(first.Servers, c.Fleet.Servers) || first.Stream != c.Fleet.Stream {
			t.Errorf("%s: servers %v stream %s, want those of the first gateway", f, c.Fleet.Servers, c.Fleet.Stream)
		}
	}
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if out, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			bin = filepath.Join(strings.TrimSpace(string(out)), "bin", "nats-server")
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Log("nats-server not installed: its configs are not checked")
		return
	}
	confs, _ := filepath.Glob(filepath.Join("examples", "fleet", "nats-n*.conf"))
	if len(confs) != 3 {
		t.Fatalf("nats-server examples: %v, want 3", confs)
	}
	for _, f := range confs {
		if out, err := exec.Command(bin, "-t", "-c", f).CombinedOutput(); err != nil {
			t.Errorf("nats-server -t -c %s: %v: %s", f, err, out)
		}
	}
}
