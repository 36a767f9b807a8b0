package rules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// Limits of Load. A firewall config of many thousand rules is a few hundred
// kilobytes; the size limit stops a file that is not a config (a log, an
// image, a device reached through a symlink) before it is read into memory.
// A regular file is read in milliseconds; the timeout bounds a read that
// hangs on a network file system, so a reload never blocks the daemon.
const (
	MaxConfigSize = 4 << 20
	ReadTimeout   = 10 * time.Second
)

// ErrNotRegular is wrapped by Load's error for a path that is not a regular
// file (a FIFO, a device, a directory, a socket), and ErrTooLarge for a
// file above MaxConfigSize.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("config file too large")
)

// Load reads the configuration file at path and parses it (see Parse). It
// reads only a regular file of at most MaxConfigSize bytes, within
// ReadTimeout: a FIFO, a device or a directory at path is refused at once,
// without blocking.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile returns the contents of the config file at path with Load's
// limits: a regular file, at most MaxConfigSize bytes, read within
// ReadTimeout. The file is opened with O_NONBLOCK, so opening a FIFO with no
// writer returns at once, and its type is checked with fstat before a byte
// is read.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("load config: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("load config: %s is %s, %w: give the path of a YAML file", path, fileKind(st.Mode()), ErrNotRegular)
	}
	if st.Size() > MaxConfigSize {
		f.Close()
		return nil, fmt.Errorf("load config: %s is %d bytes: %w (at most %d MiB)", path, st.Size(), ErrTooLarge, MaxConfigSize>>20)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
		done <- result{data, err}
	}()
	timer := time.NewTimer(ReadTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		f.Close()
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("load config: %w", r.err)
		case len(r.data) > MaxConfigSize:
			return nil, fmt.Errorf("load config: %s grew past %d MiB while read: %w", path, MaxConfigSize>>20, ErrTooLarge)
		}
		return r.data, nil
	case <-timer.C:
		// Closing the file may wake the reader; if it does not, the
		// goroutine stays blocked in the kernel, as any reader would.
		f.Close()
		return nil, fmt.Errorf("load config: reading %s took more than %s: %w", path, ReadTimeout, os.ErrDeadlineExceeded)
	}
}

// fileKind names the type of a file that is not a regular file.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// ControlSocket returns the control socket a config file names
// (control.socket, default /run/nfqfw/nfqfw.sock), reading nothing else:
// the client commands find the daemon through a file that may hold an
// error elsewhere (a broken edit waiting for a reload), so nothing but this
// one key is validated. The file is read with Load's limits.
func ControlSocket(path string) (string, error) {
	data, err := readFile(path)
	if err != nil {
		return "", err
	}
	var doc struct {
		Control struct {
			Socket string `yaml:"socket"`
		} `yaml:"control"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// Broken YAML elsewhere (an edit not yet reloaded): find the key
		// by its lines, as written in the usual block or flow form.
		s, ok := scanControlSocket(string(data))
		if !ok {
			return "", fmt.Errorf("%s: cannot read control.socket (%v): name the socket with -s", path, err)
		}
		doc.Control.Socket = s
	}
	s := doc.Control.Socket
	if s == "" {
		return defaultConfig().Control.Socket, nil
	}
	if !strings.HasPrefix(s, "/") {
		return "", fmt.Errorf("%s: control.socket %q is not an absolute path", path, s)
	}
	return s, nil
}

// scanControlSocket finds control.socket in a file that is not valid YAML,
// written "control: {socket: PATH}" or "control:" followed by an indented
// "socket: PATH".
func scanControlSocket(text string) (string, bool) {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(strings.TrimRight(l, " \t\r"), "control:")
		if !ok {
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(rest), "{"); ok {
			v, _, _ = strings.Cut(v, "}")
			for _, kv := range strings.Split(v, ",") {
				if k, val, ok := strings.Cut(kv, ":"); ok && strings.TrimSpace(k) == "socket" {
					return strings.Trim(strings.TrimSpace(val), `"'`), true
				}
			}
			continue
		}
		for _, next := range lines[i+1:] {
			if next == "" || (next[0] != ' ' && next[0] != '\t') {
				break
			}
			if val, ok := strings.CutPrefix(strings.TrimSpace(next), "socket:"); ok {
				val, _, _ = strings.Cut(val, " #")
				return strings.Trim(strings.TrimSpace(val), `"'`), true
			}
		}
	}
	return "", false
}
