package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeSystemctl writes a systemctl script that prints out for list-jobs
// and exits with code.
func fakeSystemctl(t *testing.T, out string, code int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "systemctl")
	script := "#!/bin/sh\n[ \"$1\" = list-jobs ] || exit 9\ncat <<'END'\n" + out + "END\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStopRemovesOnlyOnAStopJob(t *testing.T) {
	tests := []struct {
		name       string
		listJobs   string
		code       int
		wantJob    string
		wantRemove bool
	}{
		{name: "systemctl stop", listJobs: "4242 nfqfw.service stop running\n", wantJob: "stop", wantRemove: true},
		{name: "systemctl restart: a restart job until the stop half is over", listJobs: "4243 nfqfw.service restart running\n", wantJob: "restart"},
		{name: "the daemon exited on its own: no job", listJobs: "", wantJob: ""},
		{name: "another unit's stop job", listJobs: "17 other.service stop running\n4244 nfqfw.service start waiting\n", wantJob: "start"},
		{name: "systemd does not answer", listJobs: "", code: 1, wantJob: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := UnitJob(context.Background(), fakeSystemctl(t, tt.listJobs, tt.code), "nfqfw.service")
			if job != tt.wantJob || (err != nil) != (tt.code != 0) {
				t.Errorf("UnitJob = %q, %v; want %q, error %v", job, err, tt.wantJob, tt.code != 0)
			}
			if remove, why := StopRemoves(job, err); remove != tt.wantRemove {
				t.Errorf("StopRemoves(%q, %v) = %v (%s), want %v", job, err, remove, why, tt.wantRemove)
			}
		})
	}
	if remove, _ := StopRemoves("", errors.New("systemctl: not found")); remove {
		t.Errorf("StopRemoves removes the ruleset when systemctl is missing")
	}
}
