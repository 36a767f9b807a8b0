package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary text to Parse. It must never panic; a config
// that parses must compile and evaluate packets.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("examples", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "parse", "*.yaml"))
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range parseErrorCases {
		f.Add([]byte(tc.yaml))
	}
	pkts := []Packet{
		{Hook: HookInput, Family: FamilyIPv4, Proto: 6, SrcPort: 40000, DstPort: 22, InIface: "eth0",
			Src: [16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 1}, Dst: [16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 2}},
		{Hook: HookForward, Family: FamilyIPv6, Proto: 17, SrcPort: 547, DstPort: 546, InIface: "veth-gs", OutIface: "eth+",
			Src: [16]byte{0: 0xfe, 1: 0x80, 15: 1}},
		{Hook: HookOutput, Family: FamilyIPv4, Proto: 1, ICMPType: 8, OutIface: "lo"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		p, err := Compile(c)
		if err != nil {
			t.Fatalf("parsed config does not compile: %v", err)
		}
		st := &allowState{allow: make([]bool, len(p.Rules()))}
		for i := range st.allow {
			st.allow[i] = i%2 == 0
		}
		for i := range pkts {
			if id := p.Eval(&pkts[i], st); id >= len(p.Rules()) {
				t.Fatalf("Eval = %d of %d rules", id, len(p.Rules()))
			}
		}
	})
}
