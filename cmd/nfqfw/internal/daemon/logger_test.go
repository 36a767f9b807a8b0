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
