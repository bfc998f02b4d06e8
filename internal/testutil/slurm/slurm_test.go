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
