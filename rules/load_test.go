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
