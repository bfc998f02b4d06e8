package slurm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterRunsJob starts the cluster and runs a batch job on it.
func TestClusterRunsJob(t *testing.T) {
	c := Start(t)
	out := filepath.Join(t.TempDir(), "out")
	c.Run(t, "sbatch", "--job-name=hello", "--output="+out, "--wrap", "echo hello from $SLURM_JOB_ID")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if strings.HasPrefix(string(b), "hello from ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job output %q; squeue:\n%s", b, c.Run(t, "squeue", "-t", "all"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPreemption: a job of the preempting partition preempts the jobs of
// the default one.
func TestPreemption(t *testing.T) {
	c := Start(t)
	c.Run(t, "sbatch", "--job-name=low", "--output=/dev/null", "--wrap", "sleep 300")
	deadline := time.Now().Add(30 * time.Second)
	for c.Jobs(t)["low"][1] != "RUNNING" {
		if time.Now().After(deadline) {
			t.Fatalf("low job not running: %v", c.Jobs(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	low := c.Jobs(t)["low"][0]
	c.Run(t, "sbatch", "--job-name=high", "-p", PreemptingPartition, "--exclusive", "--output=/dev/null", "--wrap", "sleep 1")
	for {
		out := c.Run(t, "squeue", "-h", "-t", "all", "-j", low, "-o", "%T")
		if strings.TrimSpace(out) == "PREEMPTED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("low job %s: %s", low, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
