package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFormat feeds recorded go test -json lines: a quick and a slow
// passing test, a failing subtest with its output, a package that does not
// build.
func TestFormat(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"x/a"}`,
		`{"Action":"run","Package":"x/a","Test":"TestQuick"}`,
		`{"Action":"output","Package":"x/a","Test":"TestQuick","Output":"=== RUN   TestQuick\n"}`,
		`{"Action":"pass","Package":"x/a","Test":"TestQuick","Elapsed":0.01}`,
		`{"Action":"pass","Package":"x/a","Test":"TestSlow","Elapsed":12.5}`,
		`{"Action":"output","Package":"x/a","Output":"PASS\n"}`,
		`{"Action":"output","Package":"x/a","Output":"ok  \tx/a\t12.6s\n"}`,
		`{"Action":"pass","Package":"x/a","Elapsed":12.6}`,
		`{"Action":"output","Package":"x/b","Test":"TestT/sub","Output":"=== RUN   TestT/sub\n"}`,
		`{"Action":"output","Package":"x/b","Test":"TestT/sub","Output":"    b_test.go:9: got 1, want 2\n"}`,
		`{"Action":"output","Package":"x/b","Test":"TestT/sub","Output":"    --- FAIL: TestT/sub (0.00s)\n"}`,
		`{"Action":"fail","Package":"x/b","Test":"TestT/sub","Elapsed":0}`,
		`{"Action":"output","Package":"x/b","Test":"TestT","Output":"--- FAIL: TestT (0.00s)\n"}`,
		`{"Action":"fail","Package":"x/b","Test":"TestT","Elapsed":0}`,
		`{"Action":"output","Package":"x/b","Output":"FAIL\n"}`,
		`{"Action":"output","Package":"x/b","Output":"FAIL\tx/b\t0.01s\n"}`,
		`{"Action":"fail","Package":"x/b","Elapsed":0.01}`,
		`{"ImportPath":"x/c [x/c.test]","Action":"build-output","Output":"c.go:3:1: syntax error\n"}`,
		`{"ImportPath":"x/c [x/c.test]","Action":"build-fail"}`,
		`{"Action":"output","Package":"x/c","Output":"FAIL\tx/c [build failed]\n"}`,
		`{"Action":"fail","Package":"x/c","Elapsed":0}`,
		`{"Action":"output","Package":"x/e","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
		`{"Action":"output","Package":"x/e","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"output","Package":"x/e","Output":"FAIL\tx/e\t1.0s\n"}`,
		`{"Action":"fail","Package":"x/e","Elapsed":1}`,
		`# x/d`,
	}, "\n") + "\n"
	var w strings.Builder
	failed, err := format(strings.NewReader(in), &w)
	if err != nil || !failed {
		t.Errorf("format = %v, %v; want failed", failed, err)
	}
	want := "    pass TestSlow (12.5s) x/a\n" +
		"ok  \tx/a\t12.6s\n" +
		"    b_test.go:9: got 1, want 2\n" +
		"    --- FAIL: TestT/sub (0.00s)\n" +
		"--- FAIL: TestT (0.00s)\n" +
		"FAIL\tx/b\t0.01s\n" +
		"c.go:3:1: syntax error\n" +
		"FAIL\tx/c [build failed]\n" +
		"panic: test timed out after 1s\n" +
		"FAIL\tx/e\t1.0s\n" +
		"=== RUN   TestHang\n" +
		"# x/d\n"
	if diff := cmp.Diff(want, w.String()); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
