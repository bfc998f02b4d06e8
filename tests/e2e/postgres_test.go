package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/testutil/postgres"
)

// TestPostgresStore runs a server whose record is a real PostgreSQL
// database (`--store postgres://...`): a job runs, the server is killed with
// SIGKILL and restarted on the same database, and every task completes with
// its result read back from PostgreSQL.
func TestPostgresStore(t *testing.T) {
	// The helper gives a key=value DSN; the flag takes the URL form users
	// write.
	kv := map[string]string{}
	for _, f := range strings.Fields(postgres.Start(t)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", kv["user"], kv["port"], kv["dbname"])
	s := StartServer(t, &ServerOpts{Args: []string{"--store", dsn}})
	s.CreatePool(t, "pgpool", 2, 2, nil)
	s.CreateJob(t, "pgjob", "pgpool", nil)
	var tasks []azbatch.CreateTaskContent
	for i := range 40 {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(fmt.Sprintf("t%02d", i)), CommandLine: to(`/bin/sh -c 'echo "$AZ_BATCH_TASK_ID"'`)})
	}
	s.AddTasks(t, "pgjob", tasks)
	s.Kill()
	s.Start()
	counts := s.WaitJobTasks(t, "pgjob", 2*time.Minute)
	if c := counts.TaskCounts; *c.Succeeded != 40 || *c.Failed != 0 {
		t.Fatalf("after a restart on PostgreSQL: succeeded %d failed %d", *c.Succeeded, *c.Failed)
	}
	if out := taskMustReadFile(t, s, "pgjob", "t07", "stdout.txt"); out != "t07\n" {
		t.Fatalf("stdout of t07: %q", out)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "kiln.db")); !os.IsNotExist(err) {
		t.Fatalf("a SQLite database was created next to PostgreSQL: %v", err)
	}
}
