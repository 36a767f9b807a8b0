package packaging

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// helpGaps are the help shortcomings known today, as helpIssues words
// them. The test fails on any gap not listed here; a listed one that is gone
// is logged (delete it from the list): the list only shrinks.
var helpGaps = []string{}

// commandList parses "nfqfw help": command name -> summary.
func commandList(t *testing.T, out string) map[string]string {
	t.Helper()
	_, list, ok := strings.Cut(out, "\nCommands:\n")
	if !ok {
		t.Fatalf("nfqfw help has no Commands: section:\n%s", out)
	}
	cmds := map[string]string{}
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			if len(cmds) > 0 {
				break
			}
			continue
		}
		f := strings.Fields(line)
		cmds[f[0]] = strings.Join(f[1:], " ")
	}
	return cmds
}

// helpIssues lists what is missing from one command's help text.
func helpIssues(name, summary, help string) []string {
	var issues []string
	add := func(s string) { issues = append(issues, name+": "+s) }
	lines := strings.Split(help, "\n")
	if !strings.HasPrefix(lines[0], "Usage: nfqfw "+name) {
		add("first line is not \"Usage: nfqfw " + name + " ...\"")
	}
	if summary == "" {
		add("no summary in \"nfqfw help\"")
	}
	if len(lines) < 3 || lines[2] != summary {
		add("the summary does not follow the usage line")
	}
	body, flagSection, _ := strings.Cut(help, "\nFlags:\n")
	desc := strings.TrimSpace(strings.Join(strings.Split(body, "\n")[min(3, len(lines)):], "\n"))
	if desc == "" {
		add("no description beyond the summary")
	}
	flags := helpFlags(help)
	if strings.TrimSpace(flagSection) != "" && len(flags) == 0 {
		add("a Flags: section this test cannot read")
	}
	names := slices.Sorted(mapKeys(flags))
	for _, f := range names {
		if flags[f] == "" {
			add("flag -" + f + " has no description")
		}
		mentioned := regexp.MustCompile(`(^|[\s\[|(])--?` + regexp.QuoteMeta(f) + `\b`)
		if !mentioned.MatchString(lines[0]) && !mentioned.MatchString(body) {
			add("flag -" + f + " is not mentioned in the synopsis or the description")
		}
	}
	return issues
}

// TestHelpIsComplete runs "nfqfw help" and "nfqfw help CMD" (and
// "nfqfw CMD -h") for every command: each has a usage line, its summary, a
// description, and every flag is described and mentioned.
func TestHelpIsComplete(t *testing.T) {
	bin := nfqfwBinary(t)
	top := run(t, "", nil, 10*time.Second, bin, "help")
	if top.code != 0 {
		t.Fatalf("nfqfw help: exit %d", top.code)
	}
	cmds := commandList(t, top.stdout)
	for _, want := range []string{"run", "check", "reload", "rules", "state", "health", "version"} {
		if _, ok := cmds[want]; !ok {
			t.Errorf("nfqfw help does not list %s", want)
		}
	}
	bare := run(t, "", nil, 10*time.Second, bin)
	if bare.code != 2 || bare.stdout != top.stdout {
		t.Errorf("nfqfw without a command: exit %d, want 2 and the same text as nfqfw help", bare.code)
	}

	var issues []string
	for _, name := range slices.Sorted(mapKeys(cmds)) {
		t.Run(name, func(t *testing.T) {
			h := run(t, "", nil, 10*time.Second, bin, "help", name)
			if h.code != 0 || h.stderr != "" {
				t.Fatalf("nfqfw help %s: exit %d, stderr %q", name, h.code, h.stderr)
			}
			dash := run(t, "", nil, 10*time.Second, bin, name, "-h")
			if dash.code != 0 {
				t.Errorf("nfqfw %s -h: exit %d, want 0", name, dash.code)
			}
			if diff := cmp.Diff(h.stdout, dash.stdout+dash.stderr); diff != "" {
				t.Errorf("nfqfw %s -h differs from nfqfw help %s (-help +dash-h):\n%s", name, name, diff)
			}
			issues = append(issues, helpIssues(name, cmds[name], h.stdout)...)
		})
	}

	for _, is := range issues {
		if !slices.Contains(helpGaps, is) {
			t.Errorf("help: %s", is)
		}
	}
	for _, gap := range helpGaps {
		if !slices.Contains(issues, gap) {
			t.Logf("help gap %q is fixed: remove it from helpGaps", gap)
		}
	}
	if len(issues) > 0 {
		t.Logf("known help gaps (helpGaps): %d", len(helpGaps))
	}
}

func TestHelpIssues(t *testing.T) {
	tests := []struct {
		name, help string
		want       []string
	}{
		{
			name: "complete",
			help: "Usage: nfqfw x [-c FILE]\n\ndo x\n\nDoes x.\n\nFlags:\n  -c file\n    \tconfig file\n",
		},
		{
			name: "no description, unmentioned flag without description",
			help: "Usage: nfqfw x\n\ndo x\n\nFlags:\n  -v\t\n",
			want: []string{"x: no description beyond the summary", "x: flag -v has no description", "x: flag -v is not mentioned in the synopsis or the description"},
		},
		{
			name: "flag named in the description",
			help: "Usage: nfqfw x\n\ndo x\n\nWith --watch it refreshes.\n\nFlags:\n  -watch\n    \trefresh every second\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, helpIssues("x", "do x", tt.help)); diff != "" {
				t.Errorf("helpIssues (-want +got):\n%s", diff)
			}
		})
	}
}
