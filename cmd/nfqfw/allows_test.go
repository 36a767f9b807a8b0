package main

import "testing"

func TestAllowsAddDelList(t *testing.T) {
	d := startStateDaemon(t)
	runCLISteps(t, []cliStep{
		{"add over a ban", []string{"allows", "-s", d.sock, "add", "192.0.2.0/24", "--for", "2h", "--reason", "office"}, 0,
			"allowed 192.0.2.0/24 for 2h\nlifted the ban on 192.0.2.66\n", ""},
		{"ban inside it", []string{"bans", "-s", d.sock, "add", "192.0.2.9"}, 1, "",
			"an allow in force covers it: the allow of 192.0.2.0/24"},
		{"add an address with the default duration", []string{"allows", "add", "-s", d.sock, "2001:db8::1"}, 0, "allowed 2001:db8::1 for 1h\n", ""},
		{"add too wide", []string{"allows", "-s", d.sock, "add", "10.0.0.0/7"}, 1, "", "is wider than /8"},
		{"add for no time", []string{"allows", "-s", d.sock, "add", "198.51.100.1", "--for", "0s"}, 1, "", "at least 1s"},
		{"del", []string{"allows", "-s", d.sock, "del", "2001:db8::1"}, 0, "ended the allow of 2001:db8::1\n", ""},
		{"del again", []string{"allows", "-s", d.sock, "del", "2001:db8::1"}, 1, "", "2001:db8::1 is not allowed"},
		{"unknown action", []string{"allows", "-s", d.sock, "flush"}, 2, "", "nfqfw allows: unknown action \"flush\""},
	})
	out, _, _ := runCLI(t, "allows", "-s", d.sock, "list")
	checkGolden(t, "allows-list.golden", out)
}
