package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadRefusesWhatIsNotAFile: Load reads only a regular file of at most
// MaxConfigSize bytes. A FIFO without a writer, a device reached through a
// symlink and a directory are refused at once, naming what they are,
// without a byte read (a FIFO would block, /dev/zero would never end).
func TestLoadRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxConfigSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		err        error
		want       string
	}{
		{"FIFO", fifo, ErrNotRegular, "load config: " + fifo + " is a FIFO (named pipe), not a regular file: give the path of a YAML file"},
		{"symlink to /dev/zero", zero, ErrNotRegular, "load config: " + zero + " is a character device, not a regular file: give the path of a YAML file"},
		{"directory", dir, ErrNotRegular, "load config: " + dir + " is a directory, not a regular file: give the path of a YAML file"},
		{"larger than the limit", big, ErrTooLarge, "load config: " + big + " is 4194307 bytes: config file too large (at most 4 MiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.path)
			if c != nil || !errors.Is(err, tc.err) {
				t.Fatalf("Load = %v, %v; want error %v", c, err, tc.err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want ErrNotExist", err)
	}
}

// TestControlSocket: the client commands read control.socket alone, so an
// error anywhere else in the file does not keep them from the daemon.
func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want, err string
	}{
		{"error elsewhere", lines("input:", "  rules:", "    - {proto: tcp, dport: 70000, action: accept}", "control: {socket: /run/x.sock}"), "/run/x.sock", ""},
		{"unknown keys elsewhere", lines("bakend: nft", "control:", "  socket: /tmp/y.sock"), "/tmp/y.sock", ""},
		{"no control section", "input: {policy: drop}", "/run/nfqfw/nfqfw.sock", ""},
		{"empty file", "", "/run/nfqfw/nfqfw.sock", ""},
		{"broken YAML", "input: [", "", "cannot read control.socket (yaml: line 1: did not find expected node content): name the socket with -s"},
		{"broken YAML, flow control section", lines("input: [", `control: {socket: "/run/z.sock"}`), "/run/z.sock", ""},
		{"broken YAML, block control section", lines("input: [", "control:", "  # the daemon's", "  socket: /run/w.sock  # here", "state: {dir: /x}"), "/run/w.sock", ""},
		{"relative socket", "control: {socket: x.sock}", "", `control.socket "x.sock" is not an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ControlSocket(path)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("ControlSocket: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("ControlSocket = %q, %v; want error %q", got, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("ControlSocket = %q, want %q", got, tc.want)
			}
		})
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ControlSocket(fifo); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ControlSocket of a FIFO: %v, want ErrNotRegular", err)
	}
}
