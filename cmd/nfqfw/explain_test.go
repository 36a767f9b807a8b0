package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseFlow(t *testing.T) {
	for _, c := range []struct {
		args string
		want string // the flow as printed, or the error's start
	}{
		{"tcp 198.51.100.7:40000 to 10.0.0.1:22 in eth0", "tcp 198.51.100.7:40000 -> 10.0.0.1:22 in eth0 (input)"},
		{"tcp 198.51.100.7:40000 -> 10.0.0.1:22 in eth0", "tcp 198.51.100.7:40000 -> 10.0.0.1:22 in eth0 (input)"},
		{"udp 10.0.0.1:5353 10.0.0.2:53 out eth0", "udp 10.0.0.1:5353 -> 10.0.0.2:53 out eth0 (output)"},
		{"tcp [2001:db8::1]:1 to [2001:db8::2]:80 in eth0 out eth1", "tcp [2001:db8::1]:1 -> [2001:db8::2]:80 in eth0 out eth1 (forward)"},
		{"icmp 10.0.0.1 to 10.0.0.2 in eth0 type 8 output", "icmp 10.0.0.1 -> 10.0.0.2 in eth0 (output)"},
		{"tcp 10.0.0.1 to 10.0.0.2:22", "source \"10.0.0.1\": want ADDR:PORT"},
		{"icmp 10.0.0.1:1 to 10.0.0.2", "source \"10.0.0.1:1\": this protocol has no ports"},
		{"bogus 10.0.0.1 to 10.0.0.2", "protocol \"bogus\""},
		{"tcp 10.0.0.1:1 to 10.0.0.2:22 via eth0", "unexpected \"via\""},
		{"tcp 10.0.0.1:1 to [::1]:22", "source 10.0.0.1 and destination ::1 are of different families"},
	} {
		f, err := parseFlow(strings.Fields(c.args))
		got := f.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.args, got, c.want)
		}
	}
}

func TestExplainOffline(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"explain", "-c", "../../rules/examples/ssh-guard.yaml", "tcp", "198.51.100.7:40000", "to", "10.0.0.1:22", "in", "veth-sg"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `flow     tcp 198.51.100.7:40000 -> 10.0.0.1:22 in veth-sg (input)
ban      198.51.100.7 is not banned
knock    no knock step
rule     rule "ssh" (input chain) matches: accept  <- decides
guard    guard "ssh-bruteforce" admits 198.51.100.7 (no attempts counted)
verdict  accept by rule "ssh", reason rule
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
