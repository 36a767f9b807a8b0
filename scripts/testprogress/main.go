package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Elapsed    float64
	Output     string
}

// slowTest is the least run time, in seconds, of a test whose end is shown.
const slowTest = 1.0

func main() {
	failed, err := format(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// format copies the report of the events on r to w and says whether
// anything failed.
func format(r io.Reader, w io.Writer) (failed bool, err error) {
	out := map[string][]string{} // package/test -> output lines so far
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet's or the linker's own words): as is.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test == "" && e.Action == "output":
			// The package's own lines: ok, FAIL, PASS, a panic.
			if s := e.Output; s != "PASS\n" && s != "FAIL\n" {
				fmt.Fprint(w, s)
			}
		case e.Test == "" && e.Action == "fail":
			// A timeout or a crash ends the package with tests still
			// running: their output is the story.
			failed = true
			var open []string
			for k := range out {
				if strings.HasPrefix(k, e.Package+"\x00") {
					open = append(open, k)
				}
			}
			slices.Sort(open)
			for _, k := range open {
				fmt.Fprint(w, strings.Join(out[k], ""))
				delete(out, k)
			}
		case e.Action == "output":
			out[key] = append(out[key], e.Output)
		case e.Action == "fail":
			failed = true
			for _, s := range out[key] {
				if !strings.HasPrefix(strings.TrimSpace(s), "=== ") {
					fmt.Fprint(w, s)
				}
			}
			delete(out, key)
		case e.Test != "" && (e.Action == "pass" || e.Action == "skip"):
			if !strings.Contains(e.Test, "/") && e.Elapsed >= slowTest {
				fmt.Fprintf(w, "    %s %s (%.1fs) %s\n", e.Action, e.Test, e.Elapsed, e.Package)
			}
			delete(out, key)
		}
	}
	return failed, sc.Err()
}
