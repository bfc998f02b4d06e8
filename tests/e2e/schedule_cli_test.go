package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJobScheduleCLI drives `kiln job-schedule` against a real server: a
// run-once schedule created from Azure's JSON creates its job, and the
// schedule is listed, shown, disabled, enabled, terminated and deleted.
func TestJobScheduleCLI(t *testing.T) {
	s := StartServer(t, nil)
	s.CreatePool(t, "clipool", 1, 1, nil)
	kiln := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kilnBin, args...)
		cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	file := filepath.Join(t.TempDir(), "nightly.json")
	spec := `{"id": "nightly", "schedule": {"doNotRunUntil": "` + time.Now().Add(time.Second).UTC().Format(time.RFC3339) + `"},
	  "jobSpecification": {"poolInfo": {"poolId": "clipool"}}}`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := kiln("job-schedule", "create", "--json-file", file); !strings.Contains(out, "nightly") {
		t.Fatalf("create: %s", out)
	}
	eventually(t, time.Minute, "the schedule's job", func() error {
		_, err := s.Client.GetJob(ctx(t), "nightly:job-1", nil)
		return err
	})
	if out := kiln("job-schedule", "show", "nightly"); !strings.Contains(out, "nightly:job-1") {
		t.Fatalf("show lacks the recent job:\n%s", out)
	}
	if out := kiln("job-schedule", "list"); !strings.Contains(out, "nightly") {
		t.Fatalf("list:\n%s", out)
	}
	kiln("job-schedule", "disable", "nightly")
	if out := kiln("job-schedule", "show", "nightly", "-o", "json"); !strings.Contains(out, `"state": "disabled"`) && !strings.Contains(out, `"state":"disabled"`) {
		t.Fatalf("after disable:\n%s", out)
	}
	kiln("job-schedule", "enable", "nightly")
	kiln("job-schedule", "terminate", "nightly")
	kiln("job-schedule", "delete", "nightly", "--yes")
	eventually(t, time.Minute, "the schedule gone", func() error {
		if _, err := s.Client.GetJobSchedule(ctx(t), "nightly", nil); err == nil {
			return os.ErrExist
		}
		return nil
	})
}
