package daemon

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nfqfw/nfqfw/rules"
)

// TestNewLogger specifies the log section: format picks JSON or text
// (text by default), level drops what is below it (info by default).
func TestNewLogger(t *testing.T) {
	tests := []struct {
		name string
		log  rules.Log
		want []string // messages written, of debug, info, warn and error
		json bool
	}{
		{name: "defaults: text, info", log: rules.Log{}, want: []string{"info", "warn", "error"}},
		{name: "json", log: rules.Log{Format: "json"}, want: []string{"info", "warn", "error"}, json: true},
		{name: "text debug", log: rules.Log{Format: "text", Level: "debug"}, want: []string{"debug", "info", "warn", "error"}},
		{name: "json warn", log: rules.Log{Format: "json", Level: "warn"}, want: []string{"warn", "error"}, json: true},
		{name: "error, any case", log: rules.Log{Level: "ERROR"}, want: []string{"error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			l := NewLogger(tc.log, &b)
			l.Debug("debug", "k", 1)
			l.Info("info", "k", 1)
			l.Warn("warn", "k", 1)
			l.Error("error", "k", 1)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if line == "" {
					continue
				}
				if tc.json {
					var m struct {
						Msg string `json:"msg"`
						K   int    `json:"k"`
					}
					if err := json.Unmarshal([]byte(line), &m); err != nil || m.K != 1 {
						t.Fatalf("not a JSON line with k=1: %v: %s", err, line)
					}
					got = append(got, m.Msg)
					continue
				}
				if !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, " k=1") {
					t.Fatalf("not a text line with k=1: %s", line)
				}
				msg := line[strings.Index(line, "msg=")+4:]
				got = append(got, strings.TrimSuffix(msg, " k=1"))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages written (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLogSwitch checks that a reload's log section reaches loggers derived
// before it: format and level change, attributes stay.
func TestLogSwitch(t *testing.T) {
	var b bytes.Buffer
	l := NewLogger(rules.Log{}, &b)
	sub := l.With("queue", 3)
	sub.Info("before")
	sub.Debug("hidden")
	if !setLogConfig(l, rules.Log{Format: "json", Level: "debug"}) {
		t.Fatal("setLogConfig did not recognise NewLogger's logger")
	}
	sub.Debug("after")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines = %q, want 2", lines)
	}
	if !strings.Contains(lines[0], "msg=before") || !strings.Contains(lines[0], "queue=3") {
		t.Errorf("text line = %q", lines[0])
	}
	var m struct {
		Msg   string `json:"msg"`
		Queue int    `json:"queue"`
		Level string `json:"level"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("after the switch, not JSON: %v: %s", err, lines[1])
	}
	if diff := cmp.Diff(struct {
		Msg   string `json:"msg"`
		Queue int    `json:"queue"`
		Level string `json:"level"`
	}{"after", 3, "DEBUG"}, m); diff != "" {
		t.Errorf("JSON line (-want +got):\n%s", diff)
	}
}
