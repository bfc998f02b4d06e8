package simagent_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/agent/simagent"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider/sim"
	"github.com/kilnbatch/kiln/internal/server"
)

func to[T any](v T) *T { return &v }

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		if ok, err = cond(); ok && err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error %v)", what, err)
}

// TestAgainstServer runs simulated agents against a real in-process server
// with the sim provider: the nodes come up, every task completes with the
// agents' exit code, and deleting the pool shuts the agents down and removes
// their spec files.
func TestAgainstServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("simagent-test-key-0123456789abcdef"))
	srv, err := server.Start(ctx, server.Config{
		Addr: "127.0.0.1:0", DataDir: dir, AccountName: "simacct", AccountKey: key,
		Provider: "sim", HeartbeatInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	client, err := batchclient.New(srv.URL(), "simacct", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.CreatePool(ctx, azbatch.CreatePoolContent{
		ID: to("simpool"), VMSize: to("standard_d2s_v3"), TargetDedicatedNodes: to[int32](3), TaskSlotsPerNode: to[int32](2),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	specDir := filepath.Join(dir, sim.DirName)
	var specs map[string]sim.Spec
	eventually(t, "3 spec files", func() (bool, error) {
		specs, err = sim.ReadSpecs(specDir)
		return len(specs) == 3, err
	})
	var completed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(specs))
	actx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	for _, s := range specs {
		if s.PoolID != "simpool" || s.Token == "" || s.ServerURL != srv.URL() || !s.Dedicated {
			t.Errorf("spec %+v", s)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- simagent.Run(actx, simagent.Config{
				ServerURL: s.ServerURL, PoolID: s.PoolID, NodeID: s.NodeID, Token: s.Token, ExitCode: 3,
				OnComplete: func(protocol.Assignment) { completed.Add(1) },
			})
		}()
	}
	eventually(t, "3 idle nodes", func() (bool, error) {
		page, err := client.NewListNodesPager("simpool", nil).NextPage(ctx)
		if err != nil {
			return false, err
		}
		idle := 0
		for _, n := range page.Value {
			if *n.State == azbatch.NodeStateIdle {
				idle++
			}
		}
		return idle == 3, nil
	})

	if _, err := client.CreateJob(ctx, azbatch.CreateJobContent{ID: to("simjob"), PoolInfo: &azbatch.PoolInfo{PoolID: to("simpool")}}, nil); err != nil {
		t.Fatal(err)
	}
	const n = 60
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(fmt.Sprintf("t%d", i)), CommandLine: to("/bin/true")})
	}
	if _, err := client.CreateTaskCollection(ctx, "simjob", azbatch.TaskGroup{Value: tasks[:30]}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateTaskCollection(ctx, "simjob", azbatch.TaskGroup{Value: tasks[30:]}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all tasks completed", func() (bool, error) {
		r, err := client.GetJobTaskCounts(ctx, "simjob", nil)
		if err != nil {
			return false, err
		}
		return *r.TaskCounts.Completed == n, nil
	})
	r, err := client.GetJobTaskCounts(ctx, "simjob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.TaskCounts.Failed != n {
		t.Errorf("task counts %+v: every task exits with 3, so fails", *r.TaskCounts)
	}
	task, err := client.GetTask(ctx, "simjob", "t7", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ei := task.ExecutionInfo; ei == nil || ei.ExitCode == nil || *ei.ExitCode != 3 || ei.StartTime == nil || ei.EndTime == nil {
		t.Errorf("execution info %+v", task.ExecutionInfo)
	}
	if got := completed.Load(); got != n {
		t.Errorf("agents completed %d attempts, want %d (each exactly once)", got, n)
	}

	// Deleting the pool shuts every agent down and removes its spec.
	if _, err := client.DeletePool(ctx, "simpool", nil); err != nil {
		t.Fatal(err)
	}
	for range specs {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("agents still running after the pool was deleted")
		}
	}
	eventually(t, "spec files removed", func() (bool, error) {
		specs, err := sim.ReadSpecs(specDir)
		return len(specs) == 0, err
	})
}
