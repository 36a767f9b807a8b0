package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// lines joins YAML lines, so that a case's line numbers can be read off.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// cmpNetip compares netip values, which cmp cannot look into, and leaves
// out what Config keeps for UnknownInterfaces (tested there).
var cmpNetip = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.IgnoreUnexported(Config{}),
}

// parseErrorCases are configurations Parse must refuse, with the exact
// message and the sentinel. They also seed FuzzParse.
var parseErrorCases = []struct {
	name string
	yaml string
	want string
	err  error
}{
	{"yaml syntax", "input: [", "t.yaml:1: invalid YAML: did not find expected node content", ErrSyntax},
	{"two documents", lines("input: {}", "---", "output: {}"), "t.yaml:2: more than one YAML document", ErrSyntax},
	{"top level is a list", lines("- a", "- b"), "t.yaml:1: want a mapping of keys, got a list", ErrBadType},
	{"unknown top-level key with hint", "bakend: nft", `t.yaml:1: unknown field "bakend" (did you mean "backend"?)`, ErrUnknownField},
	{"unknown chain key with hint", lines("input:", "  polcy: drop"), `t.yaml:2: input: unknown field "polcy" (did you mean "policy"?)`, ErrUnknownField},
	{"unknown rule key", lines(
		"input:",
		"  rules:",
		"    - proto: tcp",
		"      dport: 22",
		"      action: accept",
		"      colour: red",
	), `t.yaml:6: input.rules[0]: unknown field "colour"`, ErrUnknownField},
	{"merge keys", lines("input: &b {policy: drop}", "forward:", "  <<: *b"), "t.yaml:3: forward: merge keys (<<) are not supported", ErrUnknownField},
	{"duplicate key", lines("input:", "  policy: drop", "  policy: accept"), "t.yaml:3: input.policy: key given twice (first on line 2)", ErrDuplicate},
	{"string for a boolean", `ipv6: "yes"`, `t.yaml:1: ipv6: want true or false, got "yes"`, ErrBadType},
	{"yaml 1.1 yes is not a boolean", `ipv6: yes`, `t.yaml:1: ipv6: want true or false, got "yes"`, ErrBadType},
	{"rpfilter is a boolean", `rpfilter: strict`, `t.yaml:1: rpfilter: want true or false, got "strict"`, ErrBadType},
	{"list for a number", lines("queue:", "  count: [1]"), "t.yaml:2: queue.count: want an integer, got a list", ErrBadType},
	{"mapping for a list", lines("input:", "  rules: {proto: tcp}"), "t.yaml:2: input.rules: want a list, got a mapping", ErrBadType},
	{"queue count zero", "queue: {count: 0}", "t.yaml:1: queue.count: 0 out of range (1-256)", ErrBadValue},
	{"queue count too many", "queue: {count: 257}", "t.yaml:1: queue.count: 257 out of range (1-256)", ErrBadValue},
	{"queue too long", "queue: {max_len: 2000000}", "t.yaml:1: queue.max_len: 2000000 out of range (1-1048576)", ErrBadValue},
	{"flow table too large", "flows: {max: 100000000}", "t.yaml:1: flows.max: 100000000 out of range (1-16777216)", ErrBadValue},
	{"flow timeout past ten years", "flows: {timeouts: {udp: 3651d}}", "t.yaml:1: flows.timeouts.udp: duration 3651d is above the maximum 3650d", ErrBadValue},
	{"recent list too large", "recent: [{name: p, size: 2000000}]", "t.yaml:1: recent[0].size: 2000000 out of range (1-1048576)", ErrBadValue},
	{"guard count above what a source keeps", lines("guards:", "  - name: g", "    limits: [{count: 1001, window: 10s}]"), "t.yaml:3: guards[0].limits[0].count: 1001 out of range (1-1000)", ErrBadValue},
	{"ban longer than ten years", lines("guards:", "  - name: g", "    limits: [{count: 3, window: 10s}]", "    ban: {duration: 100000d}"), "t.yaml:4: guards[0].ban.duration: duration 100000d is above the maximum 3650d", ErrBadValue},
	{"ban prefix6 wider than a /16", lines("guards:", "  - name: g", "    limits: [{count: 3, window: 10s}]", "    ban: {duration: 1m, prefix6: 8}"), "t.yaml:4: guards[0].ban.prefix6: 8 out of range (16-128)", ErrBadValue},
	{"ban prefix4 past 32", lines("guards:", "  - name: g", "    limits: [{count: 3, window: 10s}]", "    ban:", "      duration: 1m", "      prefix4: 33"), "t.yaml:6: guards[0].ban.prefix4: 33 out of range (8-32)", ErrBadValue},
	{"ban prefix is a number", lines("guards:", "  - name: g", "    limits: [{count: 3, window: 10s}]", "    ban: {duration: 1m, prefix6: /64}"), "t.yaml:4: guards[0].ban.prefix6: want an integer, got \"/64\"", ErrBadType},
	{"queues past 65535", "queue: {number: 65535, count: 2}", "t.yaml:1: queue.count: queues 65535-65536 go past 65535", ErrBadValue},
	{"queue batch too long", "queue: {batch: 512}", "t.yaml:1: queue.batch: 512 out of range (1-256)", ErrBadValue},
	{"mark mask too narrow", "queue: {mark_mask: 0x00010000}", "t.yaml:1: queue.mark_mask: mask 0x00010000 cannot carry a reject kind (needs 3 contiguous bits at its low end)", ErrBadValue},
	{"failure verdict reject", "queue: {failure_verdict: reject}", `t.yaml:1: queue.failure_verdict: "reject" is not one of accept, drop`, ErrBadValue},
	{"unknown backend", "backend: iptables", `t.yaml:1: backend: "iptables" is not one of auto, legacy, nft`, ErrBadValue},
	{"port out of range", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, dport: 70000, action: accept}",
	), "t.yaml:3: input.rules[0].dport: port 70000 out of range (1-65535)", ErrBadValue},
	{"port zero in a list", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, dport: [22, 0], action: accept}",
	), "t.yaml:3: input.rules[0].dport[1]: port 0 out of range (1-65535)", ErrBadValue},
	{"reversed port range", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, dport: 9000-8000, action: accept}",
	), "t.yaml:3: input.rules[0].dport: port range 9000-8000 is reversed", ErrBadValue},
	{"service name for a port", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, dport: ssh, action: accept}",
	), `t.yaml:3: input.rules[0].dport: "ssh" is not a port or port range`, ErrBadValue},
	{"bad CIDR", lines(
		"input:",
		"  rules:",
		"    - {src: 10.0.0.0/33, action: accept}",
	), `t.yaml:3: input.rules[0].src: "10.0.0.0/33" is not an address or CIDR prefix`, ErrBadValue},
	{"CIDR with host bits", lines(
		"input:",
		"  rules:",
		"    - {src: [10.0.0.0/8, 10.1.2.3/8], action: accept}",
	), "t.yaml:3: input.rules[0].src[1]: 10.1.2.3/8 has host bits set (the network is 10.0.0.0/8)", ErrBadValue},
	{"IPv4-mapped address", lines(
		"input:",
		"  rules:",
		`    - {src: "::ffff:10.0.0.1", action: accept}`,
	), "t.yaml:3: input.rules[0].src: ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address: write the IPv4 form", ErrBadValue},
	{"interface name longer than IFNAMSIZ", lines(
		"input:",
		"  rules:",
		"    - {in: a-very-long-interface0, action: accept}",
	), `t.yaml:3: input.rules[0].in: "a-very-long-interface0" is neither a zone nor a valid interface name (longer than 15 bytes)`, ErrUnknownRef},
	{"interface name with slash", lines(
		"input:",
		"  rules:",
		"    - {in: eth/0, action: accept}",
	), `t.yaml:3: input.rules[0].in: "eth/0" is neither a zone nor a valid interface name (contains '/')`, ErrUnknownRef},
	{"trusted interface with a quote iptables-restore cannot take", `trusted: [lo, 'a"b']`, `t.yaml:1: trusted[1]: "a\"b" is neither a zone nor a valid interface name (contains '"')`, ErrUnknownRef},
	{"zone interface with space", `zones: {lan: [eth0, "has space"]}`, `t.yaml:1: zones.lan[1]: interface "has space": contains ' '`, ErrBadValue},
	{"empty zone", "zones: {lan: []}", "t.yaml:1: zones.lan: zone has no interfaces", ErrMissing},
	{"bad duration", "flows: {timeouts: {udp: 5x}}", `t.yaml:1: flows.timeouts.udp: "5x" is not a duration (want e.g. 30s, 10m, 5d, 1d12h)`, ErrBadValue},
	{"duration without unit", "flows: {timeouts: {udp: 30}}", `t.yaml:1: flows.timeouts.udp: "30" is not a duration (want e.g. 30s, 10m, 5d, 1d12h)`, ErrBadValue},
	{"negative duration", "flows: {timeouts: {udp: -1s}}", "t.yaml:1: flows.timeouts.udp: duration -1s must be positive", ErrBadValue},
	{"zero timeout", "flows: {timeouts: {udp: 0s}}", "t.yaml:1: flows.timeouts.udp: duration 0s is below the minimum 1s", ErrBadValue},
	{"unknown reject kind", lines(
		"input:",
		"  rules:",
		"    - {action: reject, reject_with: icmp-foo}",
	), `t.yaml:3: input.rules[0].reject_with: unknown reject kind "icmp-foo" (want one of tcp-reset, icmp-port-unreachable, icmp-proto-unreachable, icmp-host-unreachable, icmp6-adm-prohibited, icmp6-port-unreachable)`, ErrBadValue},
	{"unknown ICMP type name", lines(
		"input:",
		"  rules:",
		"    - {proto: icmp, icmp_type: echo-requestx, action: accept}",
	), `t.yaml:3: input.rules[0].icmp_type: unknown ICMP type "echo-requestx" (want a name like echo-request, a number 0-255 or type/code)`, ErrBadValue},
	{"ICMPv6 type out of range", lines(
		"input:",
		"  rules:",
		"    - {proto: icmpv6, icmp_type: 300, action: accept}",
	), `t.yaml:3: input.rules[0].icmp_type: unknown ICMPv6 type "300" (want a name like echo-request, a number 0-255 or type/code)`, ErrBadValue},
	{"unknown protocol", lines(
		"input:",
		"  rules:",
		"    - {proto: ipv9, action: accept}",
	), `t.yaml:3: input.rules[0].proto: unknown protocol "ipv9" (want tcp, udp, icmp, icmpv6, sctp, any or a number 0-255)`, ErrBadValue},
	{"icmp_type on tcp", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, icmp_type: echo-request, action: accept}",
	), "t.yaml:3: input.rules[0].icmp_type: icmp_type needs proto icmp or icmpv6 (proto is tcp)", ErrConflict},
	{"ports without a port protocol", lines(
		"input:",
		"  rules:",
		"    - {dport: 22, action: accept}",
	), "t.yaml:3: input.rules[0].dport: ports need proto tcp, udp or sctp (proto is any)", ErrConflict},
	{"duplicate rule names across chains", lines(
		"input:",
		"  rules:",
		"    - {name: ssh, action: accept}",
		"output:",
		"  rules:",
		"    - {name: ssh, action: accept}",
	), `t.yaml:6: output.rules[0].name: rule name "ssh" already used on line 3`, ErrDuplicate},
	{"bad rule name", lines(
		"input:",
		"  rules:",
		`    - {name: "has space", action: accept}`,
	), `t.yaml:3: input.rules[0].name: rule name "has space": contains ' ' (use letters, digits and -_.:)`, ErrBadValue},
	{"missing action", lines(
		"input:",
		"  rules:",
		"    - {proto: tcp}",
	), "t.yaml:3: input.rules[0]: action is required (accept, drop or reject)", ErrMissing},
	{"tcp-reset on udp", lines(
		"input:",
		"  rules:",
		"    - {proto: udp, action: reject, reject_with: tcp-reset}",
	), "t.yaml:3: input.rules[0].reject_with: tcp-reset only answers TCP (proto is udp)", ErrConflict},
	{"icmp6 kind on a rule for both families", lines(
		"input:",
		"  rules:",
		"    - {action: reject, reject_with: icmp6-adm-prohibited}",
	), "t.yaml:3: input.rules[0].reject_with: icmp6-adm-prohibited only answers IPv6 (rule family is any): add family: ipv6", ErrConflict},
	{"reject_with on accept", lines(
		"input:",
		"  rules:",
		"    - {action: accept, reject_with: icmp-port-unreachable}",
	), "t.yaml:3: input.rules[0].reject_with: reject_with needs action: reject (action is accept)", ErrConflict},
	{"chain policy tcp-reset", lines(
		"input:",
		"  policy: reject",
		"  reject_with: tcp-reset",
	), "t.yaml:3: input.reject_with: tcp-reset cannot answer every protocol: reject TCP in a rule with proto: tcp", ErrConflict},
	{"chain reject_with without reject", lines(
		"input:",
		"  policy: drop",
		"  reject_with: icmp-port-unreachable",
	), "t.yaml:3: input.reject_with: reject_with needs policy: reject (policy is drop)", ErrConflict},
	{"family against proto", lines(
		"input:",
		"  rules:",
		"    - {family: ipv6, proto: icmp, action: accept}",
	), "t.yaml:3: input.rules[0].family: family ipv6 conflicts with proto icmp", ErrConflict},
	{"family against src", lines(
		"input:",
		"  rules:",
		`    - {family: ipv4, src: "2001:db8::/32", action: accept}`,
	), "t.yaml:3: input.rules[0].src: 2001:db8::/32 is IPv6 but the rule only matches IPv4 (family ipv4)", ErrConflict},
	{"src against dst", lines(
		"input:",
		"  rules:",
		`    - {src: 10.0.0.0/8, dst: "2001:db8::1", action: accept}`,
	), "t.yaml:3: input.rules[0].dst: 2001:db8::1 is IPv6 but the rule only matches IPv4 (src)", ErrConflict},
	{"dead src prefix", lines(
		"input:",
		"  rules:",
		`    - {src: [10.0.0.0/8, "2001:db8::/32"], dst: 10.0.0.1, action: accept}`,
	), "t.yaml:3: input.rules[0].src: 2001:db8::/32 is IPv6 but the rule only matches IPv4 (dst)", ErrConflict},
	{"output interface on input", lines(
		"input:",
		"  rules:",
		"    - {out: eth0, action: accept}",
	), "t.yaml:3: input.rules[0].out: the input chain has no output interface", ErrConflict},
	{"input interface on output", lines(
		"output:",
		"  rules:",
		"    - {in: eth0, action: accept}",
	), "t.yaml:3: output.rules[0].in: the output chain has no input interface", ErrConflict},
	{"undeclared recent list", lines(
		"input:",
		"  rules:",
		"    - {recent: {list: nope, op: check}, action: drop}",
	), `t.yaml:3: input.rules[0].recent.list: no recent list named "nope" is declared`, ErrUnknownRef},
	{"recent seconds with set", lines(
		"recent: [{name: a}]",
		"input:",
		"  rules:",
		"    - {recent: {list: a, op: set, seconds: 60}, action: drop}",
	), "t.yaml:4: input.rules[0].recent.seconds: seconds needs op check or update", ErrConflict},
	{"recent without op", lines(
		"recent: [{name: a}]",
		"input:",
		"  rules:",
		"    - {recent: {list: a}, action: drop}",
	), "t.yaml:4: input.rules[0].recent: op is required (set, check, update or remove)", ErrMissing},
	{"undeclared guard", lines(
		"input:",
		"  rules:",
		"    - {guard: nope, action: accept}",
	), `t.yaml:3: input.rules[0].guard: no guard named "nope" is declared`, ErrUnknownRef},
	{"undeclared knock", lines(
		"input:",
		"  rules:",
		"    - {knock: nope, action: accept}",
	), `t.yaml:3: input.rules[0].knock: no knock named "nope" is declared`, ErrUnknownRef},
	{"knock step protocol", lines(
		"knocks:",
		"  - name: k",
		"    steps: [icmp/5]",
		"    open: [{proto: tcp, ports: 22}]",
	), `t.yaml:3: knocks[0].steps[0]: knock step "icmp/5": want tcp/PORT or udp/PORT`, ErrBadValue},
	{"knock without steps", lines(
		"knocks:",
		"  - name: k",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:2: knocks[0]: steps is required (e.g. [tcp/7000, udp/8000, tcp/9000])", ErrMissing},
	{"duplicate knock", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/1, tcp/2]",
		"    open: [{proto: tcp, ports: 22}]",
		"  - name: k",
		"    steps: [tcp/1, tcp/2]",
		"    open: [{proto: tcp, ports: 22}]",
	), `t.yaml:5: knocks[1].name: knock "k" already declared on line 2`, ErrDuplicate},
	{"secret knock with ports", lines(
		"knocks:",
		"  - name: k",
		"    secret: JBSWY3DPEHPK3PXP",
		"    steps: [tcp/7000, udp]",
		"    open: [{proto: tcp, ports: 22}]",
	), `t.yaml:4: knocks[0].steps[0]: knock step "tcp/7000": with a secret the ports are derived, give only the protocol (tcp or udp)`, ErrConflict},
	{"knock period without secret", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000, udp/8000]",
		"    period: 30s",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:4: knocks[0].period: period needs a secret", ErrConflict},
	{"knock of one step", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000]",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:3: knocks[0].steps: a knock of one step is found by any scan of that port: give at least 2 distinct steps (e.g. [tcp/7000, udp/8000, tcp/9000])", ErrBadValue},
	{"rotating knock of one step", lines(
		"knocks:",
		"  - name: k",
		"    secret: JBSWY3DPEHPK3PXP",
		"    steps: [tcp]",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:4: knocks[0].steps: a knock of one step is found by any scan of that port: give at least 2 distinct steps (e.g. [tcp/7000, udp/8000, tcp/9000])", ErrBadValue},
	{"knock repeating a step", lines(
		"knocks:",
		"  - name: k",
		"    steps:",
		"      - tcp/7000",
		"      - udp/8000",
		"      - tcp/7000",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:6: knocks[0].steps[2]: knock step tcp/7000 repeats knocks[0].steps[0]: the steps must be distinct (a repeat adds nothing an eavesdropper does not see, and a retransmitted SYN takes it)", ErrDuplicate},
	{"knock step on a port opened to everyone", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000, tcp/22]",
		"    open: [{proto: tcp, ports: 2222}]",
		"input:",
		"  rules:",
		"    - {name: ssh, proto: tcp, dport: [22, 80], action: accept}",
	), `t.yaml:3: knocks[0].steps[1]: knock step tcp/22 is a port rule "ssh" (line 7) opens to everyone: a knock needs ports the policy closes`, ErrConflict},
	{"knock step on a port of an any-protocol rule", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000, udp/8000]",
		"    open: [{proto: tcp, ports: 22}]",
		"input:",
		"  rules:",
		`    - {src: ["0.0.0.0/0"], action: accept}`,
	), `t.yaml:3: knocks[0].steps[0]: knock step tcp/7000 is a port rule "input-0" (line 7) opens to everyone: a knock needs ports the policy closes`, ErrConflict},
	{"knock step on a port forwarded to its target", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000, tcp/8080]",
		"    dst: [10.99.2.2]",
		"    open: [{proto: tcp, ports: 22, dst: [10.99.2.2]}]",
		"forward:",
		"  rules:",
		"    - {name: other, proto: tcp, dst: 10.99.3.0/24, dport: 8080, action: accept}",
		"    - {name: web, proto: tcp, dst: 10.99.2.0/24, dport: 8080, action: accept}",
	), `t.yaml:3: knocks[0].steps[1]: knock step tcp/8080 is a port rule "web" (line 9) opens to everyone: a knock needs ports the policy closes`, ErrConflict},
	{"knock under an accept policy", lines(
		"knocks:",
		"  - name: k",
		"    steps: [tcp/7000, udp/8000]",
		"    open: [{proto: tcp, ports: 22}]",
		"input: {policy: accept}",
	), "t.yaml:3: knocks[0].steps[0]: knock step tcp/7000: input policy accept opens every port to everyone; a knock needs ports the policy closes", ErrConflict},
	{"rotating secret not base32", lines(
		"knocks:",
		"  - name: k",
		"    secret: correct-horse-battery-staple",
		"    steps: [tcp, udp]",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:3: knocks[0].secret: the secret is not base32 (letters A-Z and digits 2-7): make one with: head -c 20 /dev/urandom | base32", ErrBadValue},
	{"rotating secret of one byte", lines(
		"knocks:",
		"  - name: k",
		"    secret: ME",
		"    steps: [tcp, udp]",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:3: knocks[0].secret: the secret carries 8 bits, fewer than 80 (16 base32 characters): make one with: head -c 20 /dev/urandom | base32", ErrBadValue},
	{"rotating secret of 75 bits", lines(
		"knocks:",
		"  - name: k",
		"    secret: JBSWY3DPEHPK3PX",
		"    steps: [tcp, udp]",
		"    open: [{proto: tcp, ports: 22}]",
	), "t.yaml:3: knocks[0].secret: the secret carries 72 bits, fewer than 80 (16 base32 characters): make one with: head -c 20 /dev/urandom | base32", ErrBadValue},
	{"recent hitcount an entry cannot hold", lines(
		"recent: [{name: a}]",
		"input:",
		"  rules:",
		"    - {recent: {list: a, op: check, hitcount: 21}, action: drop}",
	), "t.yaml:4: input.rules[0].recent.hitcount: 21 out of range (1-20): a recent-list entry keeps its last 20 hits, so a larger hitcount never matches", ErrBadValue},
	{"port forward to a multicast address", lines(
		"nat:",
		"  forwards:",
		"    - {proto: tcp, port: 22, to: 224.0.0.1}",
	), "t.yaml:3: nat.forwards[0].to: 224.0.0.1 is a multicast address: want the unicast address of one host", ErrBadValue},
	{"port forward to the broadcast address", lines(
		"nat:",
		"  forwards:",
		"    - {proto: tcp, port: 22, to: 255.255.255.255}",
	), "t.yaml:3: nat.forwards[0].to: 255.255.255.255 is the broadcast address: want the unicast address of one host", ErrBadValue},
	{"port forward to the unspecified address", lines(
		"nat:",
		"  forwards:",
		`    - {proto: tcp, port: 22, to: "::"}`,
	), "t.yaml:3: nat.forwards[0].to: :: is the unspecified address: want the unicast address of one host", ErrBadValue},
	{"port forward to loopback", lines(
		"nat:",
		"  forwards:",
		"    - {proto: tcp, port: 22, to: 127.0.0.1}",
	), "t.yaml:3: nat.forwards[0].to: 127.0.0.1 is a loopback address: want the unicast address of one host", ErrBadValue},
	{"snat to a multicast address", lines(
		"nat:",
		"  snat:",
		`    - {out: eth0, to: "ff02::1"}`,
	), "t.yaml:3: nat.snat[0].to: ff02::1 is a multicast address: want the unicast address of one host", ErrBadValue},
	{"empty file", "", "t.yaml:1: the file is empty: refusing to install a policy that drops everything", ErrMissing},
	{"comments only", lines("# input:", "#   policy: drop"), "t.yaml:1: the file is empty: refusing to install a policy that drops everything", ErrMissing},
	{"null document", "~\n", "t.yaml:1: the file is empty: refusing to install a policy that drops everything", ErrMissing},
	{"empty mapping", lines("# nothing yet", "{}"), "t.yaml:2: the file is empty: refusing to install a policy that drops everything", ErrMissing},
	{"bad dynamic interface", "interfaces: {dynamic: [ppp0, eth/1]}", `t.yaml:1: interfaces.dynamic[1]: interface "eth/1": contains '/'`, ErrBadValue},
	{"guard without limits", lines("guards:", "  - name: g"), "t.yaml:2: guards[0]: limits is required (e.g. [{count: 3, window: 10s}])", ErrMissing},
	{"ban max below duration", lines(
		"guards:",
		"  - name: g",
		"    limits: [{count: 3, window: 10s}]",
		"    ban: {duration: 1h, max: 10m}",
	), "t.yaml:4: guards[0].ban.max: max 10m0s is shorter than duration 1h0m0s", ErrBadValue},
	{"port forward to_port with a range", lines(
		"nat:",
		"  forwards:",
		"    - {proto: tcp, port: 8000-8010, to: 10.0.0.1, to_port: 80}",
	), "t.yaml:3: nat.forwards[0].to_port: to_port needs a single port, not the range 8000-8010", ErrConflict},
	{"snat across families", lines(
		"nat:",
		"  snat:",
		`    - {out: eth0, src: ["2001:db8::/32"], to: 192.0.2.1}`,
	), "t.yaml:3: nat.snat[0].src: 2001:db8::/32 and the target 192.0.2.1 are of different address families", ErrConflict},
	{"log prefix too long", lines(
		"input:",
		`  log: {prefix: "this prefix is much too long for iptables"}`,
	), `t.yaml:2: input.log.prefix: prefix "this prefix is much too long for iptables" is longer than 29 bytes`, ErrBadValue},
	{"log rate zero", "log: {rate: 0}", "t.yaml:1: log.rate: 0 out of range (1-1000000)", ErrBadValue},
	{"listen without port", `metrics: {listen: "localhost"}`, `t.yaml:1: metrics.listen: "localhost" is not an address:port to listen on`, ErrBadValue},
	{"relative socket path", "control: {socket: nfqfw.sock}", `t.yaml:1: control.socket: "nfqfw.sock" is not an absolute path`, ErrBadValue},
	{"unknown tcp pickup", "flows: {tcp_pickup: loose}", `t.yaml:1: flows.tcp_pickup: "loose" is not one of policy, drop`, ErrBadValue},
	{"invalid reject kind without reject", lines("input:", "  invalid: drop", "  invalid_reject_with: icmp-host-unreachable"),
		"t.yaml:3: input.invalid_reject_with: invalid_reject_with needs invalid: reject (invalid is drop)", ErrConflict},
	{"invalid reject with tcp-reset alone", lines("forward:", "  invalid: reject", "  invalid_reject_with: tcp-reset"),
		"t.yaml:3: forward.invalid_reject_with: tcp-reset cannot answer every protocol: leave invalid_reject_with out (TCP then gets a reset, other protocols icmp-port-unreachable)", ErrConflict},
	{"related takes accept or policy", lines("input:", "  related: drop"), `t.yaml:2: input.related: "drop" is not one of accept, policy`, ErrBadValue},
	{"negated trusted interface among others", `trusted: [lo, "!ppp0"]`,
		"t.yaml:1: trusted: a negated interface must stand alone here (lo, !ppp0): iptables matches one interface per rule", ErrConflict},
	{"negating a zone of negations", lines("zones: {inside: [\"!ppp0\"]}", "input:", "  rules:", "    - {in: \"!inside\", action: accept}"),
		`t.yaml:4: input.rules[0].in: zone "inside" holds the negated interface "!ppp0": it cannot be negated as a whole`, ErrConflict},
}

// TestParseGuideForms parses the forms the guides' rules need: mid-stream
// pickup off, INVALID rejected with a kind, ESTABLISHED without RELATED,
// negated interfaces directly and through zones.
func TestParseGuideForms(t *testing.T) {
	c, err := Parse("t.yaml", []byte(lines(
		"flows: {tcp_pickup: drop}",
		`zones: {uplink: [ppp0], inside: ["!ppp0"]}`,
		`trusted: ["!uplink"]`,
		"input:",
		"  related: policy",
		"  invalid: reject",
		"  rules:",
		`    - {name: a, in: "!uplink", action: accept}`,
		"    - {name: b, in: inside, action: accept}",
		"forward:",
		"  policy: reject",
		"  reject_with: icmp-host-unreachable",
		"  invalid: reject",
		"  invalid_reject_with: icmp-host-unreachable",
	)))
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Pickup             string
		Trusted, InA, InB  []string
		InRelatedPolicy    bool
		InInvalid, FwdInv  Action
		InInvKind, FwdKind RejectKind
	}
	got := view{c.Flows.TCPPickup, c.Trusted, c.Input.Rules[0].In, c.Input.Rules[1].In, c.Input.RelatedPolicy,
		c.Input.Invalid, c.Forward.Invalid, c.Input.InvalidRejectWith, c.Forward.InvalidRejectWith}
	want := view{"drop", []string{"!ppp0"}, []string{"!ppp0"}, []string{"!ppp0"}, true,
		ActionReject, ActionReject, RejectNone, RejectICMPHostUnreachable}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q; config: %+v", tc.want, c)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error message (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap %v", err, tc.err)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "t.yaml" || pe.Line == 0 {
				t.Errorf("error is not an *Error with file and line: %#v", err)
			}
		})
	}
}

// wantDefaults is the configuration of a file whose sections are all empty.
func wantDefaults(file string) *Config {
	return &Config{
		File:    file,
		Backend: BackendAuto,
		IPv6:    true,
		Queue:   Queue{Number: 0, Count: 1, MaxLen: 4096, Batch: 64, FailureVerdict: ActionDrop, MarkMask: 0x00ff0000},
		Flows: Flows{Max: 262144, Timeouts: Timeouts{
			TCPSynSent: 2 * time.Minute, TCPSynRecv: time.Minute, TCPEstablished: 5 * 24 * time.Hour,
			TCPFinWait: 2 * time.Minute, TCPCloseWait: time.Minute, TCPLastAck: 30 * time.Second,
			TCPTimeWait: 2 * time.Minute, TCPClose: 10 * time.Second, UDP: 30 * time.Second,
			UDPStream: 180 * time.Second, ICMP: 30 * time.Second, Generic: 10 * time.Minute,
		}, KernelEvents: KernelEventsAll, TCPPickup: TCPPickupPolicy},
		Trusted: []string{"lo"},
		Input:   Chain{Policy: ActionDrop, Invalid: ActionDrop},
		Forward: Chain{Policy: ActionDrop, Invalid: ActionDrop},
		Output:  Chain{Policy: ActionAccept, Invalid: ActionDrop},
		FTP:     FTP{Ports: []uint16{21}, Expiry: 30 * time.Second, MaxPerControl: 8},
		Log:     Log{Format: "text", Level: "info", Rate: 10},
		Metrics: Metrics{Listen: "127.0.0.1:9469"},
		Control: Control{Socket: "/run/nfqfw/nfqfw.sock"},
		State:   State{Dir: "/var/lib/nfqfw"},
	}
}

func TestParseDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
	}{
		{"empty sections", lines("queue:", "flows: {}", "input: {}", "ftp:", "log: {}")},
		{"trusted without a value keeps loopback", lines("input: {}", "trusted:")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("empty.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantDefaults("empty.yaml"), got, cmpNetip); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRuleDefaults(t *testing.T) {
	// Unnamed rules are named after their chain and position; reject
	// without reject_with answers TCP with a reset and anything else with
	// port unreachable; log: true gets the chain's prefix; family follows
	// proto and addresses.
	yml := lines(
		"input:",
		"  rules:",
		"    - {proto: tcp, action: reject}",
		"    - {proto: udp, action: reject, log: true}",
		"    - {proto: icmpv6, action: reject}",
		"    - {src: 10.0.0.1, action: drop, log: false}",
		"forward:",
		"  rules:",
		`    - {dst: ["2001:db8::/32", "2001:db9::/32"], proto: 132, action: accept}`,
	)
	got, err := Parse("t.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	want := wantDefaults("t.yaml")
	want.Input.Rules = []Rule{
		{Name: "input-0", Line: 3, Proto: 6, Action: ActionReject, RejectWith: RejectTCPReset},
		{Name: "input-1", Line: 4, Proto: 17, Action: ActionReject, RejectWith: RejectICMPPortUnreachable, Log: &LogSpec{Prefix: "nfqfw input: "}},
		{Name: "input-2", Line: 5, Proto: 58, Family: FamilyIPv6, Action: ActionReject, RejectWith: RejectICMPPortUnreachable},
		{Name: "input-3", Line: 6, Family: FamilyIPv4, Src: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, Action: ActionDrop},
	}
	want.Forward.Rules = []Rule{
		{Name: "forward-0", Line: 9, Proto: 132, Family: FamilyIPv6, Action: ActionAccept,
			Dst: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("2001:db9::/32")}},
	}
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseFull(t *testing.T) {
	got, err := Load(filepath.Join("testdata", "parse", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	want := &Config{
		File:     filepath.Join("testdata", "parse", "full.yaml"),
		Backend:  BackendNft,
		IPv6:     false,
		RPFilter: true,
		Queue:    Queue{Number: 10, Count: 2, MaxLen: 1024, Batch: 16, Bypass: true, FailOpen: true, FailureVerdict: ActionAccept, MarkMask: 0x0000ff00},
		Flows:    wantDefaults("").Flows,
		Zones: []Zone{
			{Name: "wan", Interfaces: []string{"eth0"}},
			{Name: "lan", Interfaces: []string{"veth-lan1", "eth+"}},
		},
		Trusted:    []string{"lo", "veth-lan1", "eth+"},
		Interfaces: Interfaces{Dynamic: []string{"ppp0", "wg+"}},
		Allowlist:  []netip.Prefix{pfx("192.0.2.0/24"), pfx("2001:db8::1/128")},
		Recent:     []RecentList{{Name: "portscan", Size: 1000, Shared: true}, {Name: "seen", Size: 200}},
		Guards: []Guard{{
			Name:   "ssh-bruteforce",
			Limits: []RateLimit{{3, 10 * time.Second}, {4, 30 * time.Minute}},
			Ban:    &BanSpec{Duration: 10 * time.Minute, Factor: 2, Max: 24 * time.Hour, Prefix6: 56},
			Log:    &LogSpec{Prefix: "nfqfw ssh-bruteforce: "},
		}},
		Knocks: []Knock{
			{
				Name:       "ssh-knock",
				Steps:      []KnockStep{{6, 7000}, {17, 8000}, {6, 9000}},
				StepWindow: 5 * time.Second, Window: 15 * time.Second,
				Open:    []Open{{Proto: 6, Ports: []PortRange{{22, 22}}, Dst: []netip.Prefix{pfx("10.99.2.2/32")}}},
				OpenFor: 30 * time.Second,
			},
			{
				Name:       "totp",
				Steps:      []KnockStep{{6, 0}, {17, 0}},
				StepWindow: 5 * time.Second, Window: 10 * time.Second,
				Open:    []Open{{Proto: 17, Ports: []PortRange{{60000, 61000}}}},
				OpenFor: 2 * time.Minute, KeepOpen: true, OneShot: true,
				Secret: "JBSWY3DPEHPK3PXP", Period: 30 * time.Second, Skew: 1,
			},
		},
		Input: Chain{
			Policy: ActionReject, RejectWith: RejectICMPPortUnreachable,
			Log: &LogSpec{Prefix: "IN-DROP "}, Invalid: ActionAccept,
			Rules: []Rule{
				{
					Name: "ssh", Line: 37, Family: FamilyIPv4, Proto: 6, In: []string{"eth0"},
					Src:    []netip.Prefix{pfx("10.0.0.0/8"), pfx("192.168.1.5/32")},
					SPort:  []PortRange{{1024, 65535}},
					DPort:  []PortRange{{22, 22}, {80, 80}, {443, 443}, {8000, 8100}},
					Action: ActionAccept, Log: &LogSpec{Prefix: "nfqfw input: "}, Guard: "ssh-bruteforce",
				},
				{
					Name: "input-1", Line: 46, Family: FamilyIPv4, Proto: 1,
					ICMP:   []ICMPMatch{{8, -1}, {3, -1}, {3, 4}, {13, -1}},
					Action: ActionAccept,
				},
				{
					Name: "scan", Line: 49, Proto: 17, Action: ActionReject, RejectWith: RejectICMPPortUnreachable,
					Recent: &RecentMatch{List: "portscan", Op: RecentCheck, ByDst: true, Seconds: time.Minute, HitCount: 2, SameTTL: true},
				},
				{Name: "knocked", Line: 53, Proto: 6, DPort: []PortRange{{22, 22}}, Knock: "ssh-knock", Action: ActionAccept},
			},
		},
		Forward: Chain{Policy: ActionDrop, Invalid: ActionDrop, Rules: []Rule{
			{Name: "lan-out", Line: 60, In: []string{"veth-lan1", "eth+"}, Out: []string{"eth0"}, Action: ActionAccept},
		}},
		Output: Chain{Policy: ActionReject, RejectWith: RejectICMPHostUnreachable, Invalid: ActionDrop, Rules: []Rule{
			{Name: "v6-only", Line: 68, Family: FamilyIPv6, Dst: []netip.Prefix{pfx("2001:db8::/32")}, Action: ActionReject, RejectWith: RejectICMP6AdmProhibited},
		}},
		NAT: NAT{
			Masquerade: []Masquerade{{Out: []string{"eth0"}, Src: []netip.Prefix{pfx("10.99.1.0/24")}}},
			SNAT:       []SNAT{{Out: []string{"eth0"}, Src: []netip.Prefix{pfx("10.99.3.0/24")}, To: netip.MustParseAddr("192.0.2.1")}},
			Forwards: []PortForward{{Name: "forward-0", In: []string{"eth0"}, Proto: 6, Port: PortRange{2222, 2222},
				To: netip.MustParseAddr("10.99.2.2"), ToPort: 22, Src: []netip.Prefix{pfx("198.51.100.0/24")}}},
		},
		FTP:     FTP{Enabled: true, Ports: []uint16{21, 2121}, Expiry: time.Minute, MaxPerControl: 4},
		Log:     Log{Format: "json", Level: "debug", Rate: 100},
		Metrics: Metrics{Listen: "[::1]:9000"},
		Control: Control{Socket: "/tmp/nfqfw.sock"},
		State:   State{Dir: "/tmp/nfqfw"},
	}
	want.Flows.Max = 1000
	want.Flows.KernelEvents = KernelEventsMinimal
	want.Flows.TCPPickup = TCPPickupPolicy
	want.Flows.Timeouts.TCPSynSent = time.Minute
	want.Flows.Timeouts.TCPEstablished = 36 * time.Hour
	want.Flows.Timeouts.UDP = 10 * time.Second
	want.Flows.Timeouts.UDPStream = 2 * time.Minute
	want.Flows.Timeouts.ICMP = 5 * time.Second
	want.Flows.Timeouts.Generic = 5 * time.Minute
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseAliases(t *testing.T) {
	// Anchors and aliases work anywhere a value goes.
	yml := lines(
		"zones: {lan: &lan [eth1, eth2]}",
		"trusted: *lan",
		"input:",
		"  rules:",
		"    - {name: a, proto: tcp, dport: &web [80, 443], action: accept}",
		"    - {name: b, proto: udp, dport: *web, action: accept}",
	)
	c, err := Parse("t.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"eth1", "eth2"}, c.Trusted); diff != "" {
		t.Errorf("trusted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(c.Input.Rules[0].DPort, c.Input.Rules[1].DPort); diff != "" {
		t.Errorf("aliased ports (-a +b):\n%s", diff)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// A billion-laughs document (10^10 strings once expanded) must fail
	// quickly instead of expanding.
	var b strings.Builder
	b.WriteString("trusted:\n  - &a0 [lo, lo, lo, lo, lo, lo, lo, lo, lo, lo]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "  - &a%d [", i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("alias bomb parsed")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("alias bomb took %s", d)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"5d", 5 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"0", 0, true},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"5", 0, false},
		{"99999999999d", 0, false},
		{"106751d23h", 2562047 * time.Hour, true},
		{"106751d24h", 0, false},
	} {
		got, err := parseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
