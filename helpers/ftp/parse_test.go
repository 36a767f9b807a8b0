package ftp

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	v4 := netip.MustParseAddr("10.99.2.2")
	tests := []struct {
		name       string
		line       string
		fromServer bool
		want       Announcement
		err        error
	}{
		// Server replies.
		{name: "227 vsftpd", line: "227 Entering Passive Mode (10,99,2,2,117,49).", fromServer: true,
			want: Announcement{Kind: KindPASV, Addr: v4, Port: 117<<8 | 49}},
		{name: "227 with CR", line: "227 Entering Passive Mode (10,99,2,2,117,49)\r", fromServer: true,
			want: Announcement{Kind: KindPASV, Addr: v4, Port: 30001}},
		{name: "227 without parentheses (RFC 1123 scan)", line: "227 =10,99,2,2,4,1", fromServer: true,
			want: Announcement{Kind: KindPASV, Addr: v4, Port: 1025}},
		{name: "227 no numbers", line: "227 Entering Passive Mode", fromServer: true, err: ErrMalformed},
		{name: "227 five numbers", line: "227 Entering Passive Mode (10,99,2,2,117).", fromServer: true, err: ErrMalformed},
		{name: "227 byte over 255", line: "227 Entering Passive Mode (10,99,2,256,117,49).", fromServer: true, err: ErrMalformed},
		{name: "227 leading zeros", line: "227 Entering Passive Mode (010,099,002,002,117,049).", fromServer: true,
			want: Announcement{Kind: KindPASV, Addr: v4, Port: 117<<8 | 49}},
		{name: "227 six digits", line: "227 (000010,99,2,2,117,49)", fromServer: true, err: ErrMalformed},
		{name: "227 continuation line is not read", line: "227-Entering Passive Mode (10,99,2,2,117,49).", fromServer: true},
		{name: "229 vsftpd", line: "229 Entering Extended Passive Mode (|||30017|)", fromServer: true,
			want: Announcement{Kind: KindEPSV, Port: 30017}},
		{name: "229 other delimiter", line: "229 Extended Passive (!!!65535!)", fromServer: true,
			want: Announcement{Kind: KindEPSV, Port: 65535}},
		{name: "229 port too large", line: "229 Entering Extended Passive Mode (|||65536|)", fromServer: true, err: ErrMalformed},
		{name: "229 mixed delimiters", line: "229 Entering Extended Passive Mode (||!30017|)", fromServer: true, err: ErrMalformed},
		{name: "229 digit delimiter", line: "229 (111300171)", fromServer: true, err: ErrMalformed},
		{name: "229 unclosed", line: "229 Entering Extended Passive Mode (|||30017|", fromServer: true, err: ErrMalformed},
		{name: "229 no parenthesis", line: "229 Entering Extended Passive Mode |||30017|", fromServer: true, err: ErrMalformed},
		{name: "229 with address is still port only", line: "229 Entering Extended Passive Mode (|1|10.0.0.1|30017|)", fromServer: true, err: ErrMalformed},
		{name: "other reply", line: "200 PORT command successful. Consider using PASV.", fromServer: true},
		{name: "short reply", line: "22", fromServer: true},
		{name: "PORT from the server is not read", line: "PORT 10,99,1,2,157,189", fromServer: true},

		// Client commands.
		{name: "PORT", line: "PORT 10,99,1,2,157,189",
			want: Announcement{Kind: KindPORT, Addr: netip.MustParseAddr("10.99.1.2"), Port: 157<<8 | 189}},
		{name: "port lower case", line: "port 10,99,1,2,157,189\r",
			want: Announcement{Kind: KindPORT, Addr: netip.MustParseAddr("10.99.1.2"), Port: 40381}},
		{name: "PoRt mixed case, trailing spaces", line: "PoRt  10,99,1,2,157,189  ",
			want: Announcement{Kind: KindPORT, Addr: netip.MustParseAddr("10.99.1.2"), Port: 40381}},
		{name: "PORT trailing garbage", line: "PORT 10,99,1,2,157,189x", err: ErrMalformed},
		{name: "PORT no argument", line: "PORT", err: ErrMalformed},
		{name: "PORT negative", line: "PORT 10,99,1,2,-1,189", err: ErrMalformed},
		{name: "PORTS is another command", line: "PORTS 10,99,1,2,157,189"},
		{name: "EPRT v4", line: "EPRT |1|10.99.1.2|40321|",
			want: Announcement{Kind: KindEPRT, Addr: netip.MustParseAddr("10.99.1.2"), Port: 40321}},
		{name: "eprt v6 lower case", line: "eprt |2|fd99:1::2|38211|\r",
			want: Announcement{Kind: KindEPRT, Addr: netip.MustParseAddr("fd99:1::2"), Port: 38211}},
		{name: "EPRT other delimiter", line: "EPRT !2!fd99:1::2!38211!",
			want: Announcement{Kind: KindEPRT, Addr: netip.MustParseAddr("fd99:1::2"), Port: 38211}},
		{name: "EPRT af 1 with IPv6", line: "EPRT |1|fd99:1::2|38211|", err: ErrMalformed},
		{name: "EPRT af 2 with IPv4", line: "EPRT |2|10.99.1.2|38211|", err: ErrMalformed},
		{name: "EPRT af 3", line: "EPRT |3|10.99.1.2|38211|", err: ErrMalformed},
		{name: "EPRT zone", line: "EPRT |2|fe80::1%eth0|38211|", err: ErrMalformed},
		{name: "EPRT missing final delimiter", line: "EPRT |1|10.99.1.2|40321", err: ErrMalformed},
		{name: "EPRT port too large", line: "EPRT |1|10.99.1.2|70000|", err: ErrMalformed},
		{name: "EPRT trailing field", line: "EPRT |1|10.99.1.2|40321|x|", err: ErrMalformed},
		{name: "EPRT short IPv4", line: "EPRT |1|10.99.1|40321|", err: ErrMalformed},
		{name: "other command", line: "RETR data.bin"},
		{name: "227 from the client is not read", line: "227 Entering Passive Mode (10,99,2,2,117,49)."},
		{name: "empty", line: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.line), tt.fromServer)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.line, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.line, diff)
			}
		})
	}
}

// TestParseAllocs proves that reading a line does not allocate (EPRT with
// an IPv6 address aside).
func TestParseAllocs(t *testing.T) {
	for _, c := range []struct {
		line       string
		fromServer bool
	}{
		{"227 Entering Passive Mode (10,99,2,2,117,49).", true},
		{"229 Entering Extended Passive Mode (|||30017|)", true},
		{"PORT 10,99,1,2,157,189", false},
		{"EPRT |1|10.99.1.2|40321|", false},
		{"RETR data.bin", false},
		{"150 Opening BINARY mode data connection", true},
	} {
		b := []byte(c.line)
		if n := testing.AllocsPerRun(100, func() { Parse(b, c.fromServer) }); n != 0 {
			t.Errorf("Parse(%q): %v allocations, want 0", c.line, n)
		}
	}
}

// transcriptLine is one line of a control-channel transcript.
type transcriptLine struct {
	fromServer bool
	text       string // with its CRLF
}

// readTranscripts reads testdata/transcripts: one control connection per
// file, each line "S> reply" or "C> command" ending in CRLF.
func readTranscripts(tb testing.TB) map[string][]transcriptLine {
	tb.Helper()
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no transcripts: %v", err)
	}
	out := map[string][]transcriptLine{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := sc.Text()
			if len(l) < 3 || (l[:3] != "S> " && l[:3] != "C> ") {
				tb.Fatalf("%s: bad transcript line %q", f, l)
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], transcriptLine{fromServer: l[0] == 'S', text: l[3:] + "\n"})
		}
	}
	return out
}

// FuzzParse feeds arbitrary lines to Parse: it must not panic, and what it
// returns must be consistent with the line's direction.
func FuzzParse(f *testing.F) {
	for _, lines := range readTranscripts(f) {
		for _, l := range lines {
			f.Add([]byte(l.text[:len(l.text)-1]), l.fromServer)
		}
	}
	for _, s := range []string{"227 (1,2,3,4,5,6", "229 (|||1|)", "EPRT |2|::1|1|", "PORT 1,2,3,4,5,6,7"} {
		f.Add([]byte(s), s[0] == '2')
	}
	f.Fuzz(func(t *testing.T, line []byte, fromServer bool) {
		a, err := Parse(line, fromServer)
		if err != nil {
			if a != (Announcement{}) {
				t.Fatalf("error %v with announcement %+v", err, a)
			}
			return
		}
		if a.Kind != KindNone && a.Kind.FromServer() != fromServer {
			t.Fatalf("%v announced from the wrong side", a.Kind)
		}
		if (a.Kind == KindEPSV) == a.Addr.IsValid() && a.Kind != KindNone {
			t.Fatalf("%v with address %v", a.Kind, a.Addr)
		}
	})
}
