package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tourLine is one command of README's tour and the output fragments its
// comment declares after "->".
type tourLine struct {
	n    int // line number in README.md
	cmd  string
	want []string
}

var (
	tourExpect = regexp.MustCompile(`\s#\s+->\s+(.*)$`)
	tourQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// readmeTour reads the lines of README's fenced blocks marked "sh tour",
// in order.
func readmeTour(t *testing.T, path string) []tourLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []tourLine
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "```"):
			in = !in && strings.Fields(strings.TrimPrefix(text, "```") + " x")[0] == "sh" && strings.Contains(text, " tour")
		case in && strings.TrimSpace(text) != "" && !strings.HasPrefix(strings.TrimSpace(text), "#"):
			l := tourLine{n: n, cmd: text}
			if m := tourExpect.FindStringSubmatch(text); m != nil {
				for _, q := range tourQuoted.FindAllString(m[1], -1) {
					s, err := strconv.Unquote(q)
					if err != nil {
						t.Fatalf("README.md:%d: expected output %s: %v", n, q, err)
					}
					l.want = append(l.want, s)
				}
				if len(l.want) == 0 {
					t.Fatalf("README.md:%d: \"->\" names no quoted output", n)
				}
			}
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestReadmeTour runs README's tour as a reader would: every line of its
// "sh tour" blocks, as written, one bash each, from the checkout's root,
// in order, and checks each prints what its comment quotes after "->"
// (a line quoting nothing must exit 0). The tour prepares its own
// sandbox (make tour) and removes it (make tour-down); its names are fixed,
// so runs of this test from several checkouts take turns (lockTour), and
// a tour a person set up here fails the test rather than being disturbed.
func TestReadmeTour(t *testing.T) {
	requireSandbox(t, "make", "bash", "setsid", "socat", "vsftpd", "nc", "nmap", "knock", "curl")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	lines := readmeTour(t, filepath.Join(root, "README.md"))
	if len(lines) < 10 || !strings.HasPrefix(lines[0].cmd, "make tour ") || !strings.HasPrefix(lines[len(lines)-1].cmd, "make tour-down ") {
		t.Fatalf("README's tour has %d lines; want it to start with make tour and end with make tour-down", len(lines))
	}
	lockTour(t)
	// ip netns add names a namespace by a file in /run/netns.
	tourNS := "/run/netns/tour-srv"
	if _, err := os.Stat(tourNS); err == nil {
		t.Fatalf("a tour sandbox exists on this machine (tour-srv): make tour-down first")
	}
	t.Cleanup(func() {
		if _, err := os.Stat(tourNS); err == nil {
			t.Log("the tour did not remove its sandbox: removing it")
			if out, err := exec.Command("bash", filepath.Join(root, "scripts", "tour.sh"), "down").CombinedOutput(); err != nil {
				t.Errorf("scripts/tour.sh down: %v\n%s", err, out)
			}
		}
	})
	for _, l := range lines {
		out, code := runTourLine(t, root, l.cmd)
		var missing []string
		for _, w := range l.want {
			if !strings.Contains(out, w) {
				missing = append(missing, strconv.Quote(w))
			}
		}
		switch {
		case len(missing) > 0:
			t.Fatalf("README.md:%d: %s\nexit %d; the output lacks %s:\n%s", l.n, l.cmd, code, strings.Join(missing, ", "), out)
		case len(l.want) == 0 && code != 0:
			t.Fatalf("README.md:%d: %s\nexit %d:\n%s", l.n, l.cmd, code, out)
		}
		t.Logf("README.md:%d ok: %s", l.n, strings.TrimSpace(tourExpect.ReplaceAllString(l.cmd, "")))
	}
}

// runTourLine runs one line of the tour in bash from root, bounded in time
// (a build for make), and returns its output and exit status.
func runTourLine(t *testing.T, root, line string) (string, int) {
	t.Helper()
	timeout := time.Minute
	if strings.HasPrefix(line, "make ") {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s: no exit within %s:\n%s", line, timeout, b)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", line, err)
		}
		code = ee.ExitCode()
	}
	return string(b), code
}

// lockTour waits, at most 10 minutes, until no other run of TestReadmeTour
// on this machine (another checkout's) holds the tour's fixed names, and
// holds them until t ends.
func lockTour(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/run/nfqfw-tour.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for i := 0; ; i++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if err != syscall.EWOULDBLOCK || i == 600 {
			t.Fatalf("lock /run/nfqfw-tour.lock (another run of the tour): %v", err)
		}
		if i == 0 {
			t.Log("another run of the tour holds /run/nfqfw-tour.lock: waiting for it")
		}
		time.Sleep(time.Second)
	}
}
