package rules

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFieldClassesCoverConfig fails when a Config field has no reload
// class: whoever adds a field must say whether a reload applies it.
func TestFieldClassesCoverConfig(t *testing.T) {
	classified := map[string]bool{}
	for _, f := range FieldClasses {
		if classified[f.Path] {
			t.Errorf("%s classified twice", f.Path)
		}
		classified[f.Path] = true
		if f.Class != AppliedOnReload && f.Class != NeedsRestart {
			t.Errorf("%s: class %d is neither applied on reload nor needs restart", f.Path, f.Class)
		}
	}
	seen := map[string]bool{}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			sf := typ.Field(i)
			path := prefix + sf.Name
			switch {
			case !sf.IsExported():
				// What Parse keeps for its own checks, not a setting.
			case classified[path]:
				seen[path] = true
			case sf.Type.Kind() == reflect.Struct:
				walk(sf.Type, path+".")
			default:
				t.Errorf("config field %s has no reload class: add it to FieldClasses", path)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	for _, f := range FieldClasses {
		if !seen[f.Path] {
			t.Errorf("FieldClasses names %s, which Config does not have", f.Path)
		}
	}
}

// TestFieldClassKeys checks that every key is the snake_case of its path.
func TestFieldClassKeys(t *testing.T) {
	for _, f := range FieldClasses {
		if f.Path == "File" {
			continue
		}
		var want []string
		for _, part := range strings.Split(f.Path, ".") {
			want = append(want, snake(part))
		}
		if got := strings.Join(want, "."); got != f.Key {
			t.Errorf("%s: key %q, want %q", f.Path, f.Key, got)
		}
	}
}

// snake is the YAML spelling of a Go field name, as the config documents
// it (IPv6 -> ipv6, RPFilter -> rpfilter, MaxLen -> max_len).
func snake(s string) string {
	switch s {
	case "IPv6", "RPFilter", "NAT", "FTP":
		return strings.ToLower(s)
	}
	if rest, ok := strings.CutPrefix(s, "TCP"); ok {
		return "tcp_" + snake(rest)
	}
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestRestartChanges(t *testing.T) {
	base := func() *Config {
		c, err := Parse("base.yaml", []byte("input: {policy: drop}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"nothing", func(c *Config) {}, nil},
		{"log format applies", func(c *Config) { c.Log.Format = "json"; c.Log.Level = "debug"; c.Log.Rate = 3 }, nil},
		{"timeouts and failure verdict apply", func(c *Config) {
			c.Flows.Timeouts.UDP *= 2
			c.Queue.FailureVerdict = ActionAccept
			c.Queue.Bypass = true
		}, nil},
		{"rules apply", func(c *Config) { c.Input.Policy = ActionReject; c.Trusted = append(c.Trusted, "eth9") }, nil},
		{"queue number", func(c *Config) { c.Queue.Number++ }, []string{"queue.number"}},
		{"queue options bound to the socket", func(c *Config) { c.Queue.MaxLen++; c.Queue.Batch++; c.Queue.FailOpen = !c.Queue.FailOpen },
			[]string{"queue.max_len", "queue.batch", "queue.fail_open"}},
		{"listeners and directories", func(c *Config) {
			c.Metrics.Listen = "127.0.0.1:1"
			c.Control.Socket = "/tmp/x.sock"
			c.State.Dir = "/tmp/x"
			c.Flows.Max++
		}, []string{"flows.max", "metrics.listen", "control.socket", "state.dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := base(), base()
			tc.change(cur)
			if diff := cmp.Diff(tc.want, RestartChanges(old, cur)); diff != "" {
				t.Errorf("RestartChanges (-want +got):\n%s", diff)
			}
		})
	}
}
