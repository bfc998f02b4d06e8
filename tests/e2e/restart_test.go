package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestRestartExactlyOnce kills the server in the middle of a 1,000-task job
// (SIGKILL, then SIGTERM) and checks that after restarts every task
// completed, and ran exactly once: each task appends its id to a ledger
// outside the nodes, and every id must appear there once.
func TestRestartExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tasks int
		stop  func(*Server)
	}{
		{"SIGKILL", 1000, (*Server).Kill},
		{"SIGTERM", 300, (*Server).Stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := StartServer(t, nil)
			ledger := filepath.Join(t.TempDir(), "ledger.txt")
			s.CreatePool(t, "restart", 2, 4, nil)
			s.CreateJob(t, "restartjob", "restart", func(c *azbatch.CreateJobContent) {
				c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
			})
			var tasks []azbatch.CreateTaskContent
			for i := 0; i < tc.tasks; i++ {
				tasks = append(tasks, azbatch.CreateTaskContent{
					ID:          to(fmt.Sprintf("t%04d", i)),
					CommandLine: to(`/bin/sh -c 'sleep 0.02; echo "$AZ_BATCH_TASK_ID" >> "$LEDGER"'`),
				})
			}
			s.AddTasks(t, "restartjob", tasks)

			// Stop the server twice while the job runs: at about a quarter
			// and at about two thirds of the work.
			for _, frac := range []float64{0.25, 0.66} {
				eventually(t, 2*time.Minute, "progress", func() error {
					b, _ := os.ReadFile(ledger)
					if n := strings.Count(string(b), "\n"); float64(n) < frac*float64(tc.tasks) {
						return fmt.Errorf("%d done", n)
					}
					return nil
				})
				tc.stop(s)
				time.Sleep(500 * time.Millisecond) // agents keep working while the server is down
				s.Start()
			}

			counts := s.WaitJobTasks(t, "restartjob", 3*time.Minute)
			if c := counts.TaskCounts; int(*c.Succeeded) != tc.tasks || *c.Failed != 0 {
				t.Fatalf("counts after restart: succeeded %d failed %d", *c.Succeeded, *c.Failed)
			}
			b, err := os.ReadFile(ledger)
			if err != nil {
				t.Fatal(err)
			}
			runs := map[string]int{}
			for _, line := range strings.Fields(string(b)) {
				runs[line]++
			}
			for i := 0; i < tc.tasks; i++ {
				id := fmt.Sprintf("t%04d", i)
				if runs[id] != 1 {
					t.Errorf("task %s ran %d times", id, runs[id])
				}
			}
			if len(runs) != tc.tasks {
				t.Errorf("ledger has %d distinct ids, want %d", len(runs), tc.tasks)
			}
			for _, task := range s.ListTasks(t, "restartjob", nil) {
				if *task.State != azbatch.TaskStateCompleted || *task.ExecutionInfo.ExitCode != 0 {
					t.Fatalf("task %s: state %s", *task.ID, *task.State)
				}
			}
		})
	}
}
