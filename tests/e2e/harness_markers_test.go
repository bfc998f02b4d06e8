package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// markerJob creates job jobID on poolID with n tasks t000, t001, ... that
// each sleep for sleep (a sleep(1) duration, "0" for none) and then leave
// one marker file "<task id>.<random>" in a directory every task user may
// write, which it returns: a run that finished is a marker, so exactly-once
// tests count the markers of each task.
func markerJob(t testing.TB, s *Server, jobID, poolID string, n int, sleep string) string {
	t.Helper()
	markers := taskTempDir(t)
	s.CreateJob(t, jobID, poolID, func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("MARKERS"), Value: to(markers)}}
	})
	tasks := make([]azbatch.CreateTaskContent, 0, n)
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("t%03d", i)),
			CommandLine: to(`/bin/sh -c 'sleep ` + sleep + `; mktemp "$MARKERS/$AZ_BATCH_TASK_ID.XXXXXX" >/dev/null'`),
		})
	}
	s.AddTasks(t, jobID, tasks)
	return markers
}

// markerCount is how many runs have finished (markers left).
func markerCount(markers string) int {
	m, _ := os.ReadDir(markers)
	return len(m)
}

// waitMarkers waits until at least k runs finished.
func waitMarkers(t testing.TB, markers string, k int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d runs finished", k), func() error {
		if c := markerCount(markers); c < k {
			return fmt.Errorf("%d finished", c)
		}
		return nil
	})
}

// markerRuns counts the finished runs of each task.
func markerRuns(markers string) map[string]int {
	entries, _ := os.ReadDir(markers)
	runs := map[string]int{}
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		runs[id]++
	}
	return runs
}

// checkRanOnce fails the test for every task of a markerJob of n tasks that
// did not finish exactly one run.
func checkRanOnce(t testing.TB, markers string, n int) {
	t.Helper()
	runs := markerRuns(markers)
	for i := range n {
		if id := fmt.Sprintf("t%03d", i); runs[id] != 1 {
			t.Errorf("task %s ran %d times, want once", id, runs[id])
		}
	}
}
