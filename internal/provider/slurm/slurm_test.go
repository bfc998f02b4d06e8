package slurm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/provider"
	testslurm "github.com/kilnbatch/kiln/internal/testutil/slurm"
)

// The tests run the provider against a real Slurm cluster. The agent
// binary is a stand-in script that records how it was started, then
// sleeps, or fails for the node "fail" (the e2e tests run the real kiln
// agent: tests/e2e/slurm_test.go).
const standIn = `#!/bin/sh
OUT=%s
node=""
prev=""
for a in "$@"; do
	if [ "$prev" = "--node-id" ]; then node="$a"; fi
	prev="$a"
done
echo "$@" > "$OUT/$node.args"
echo "$KILN_AGENT_TOKEN" > "$OUT/$node.token"
env > "$OUT/$node.env"
if [ "$node" = "fail" ]; then echo failing; exit 3; fi
exec sleep 300
`

type fixture struct {
	c    *testslurm.Cluster
	p    *Provider
	out  string
	root string
}

func setup(t *testing.T) *fixture {
	c := testslurm.Start(t)
	t.Setenv("SLURM_CONF", c.Conf)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kiln")
	if err := os.WriteFile(bin, []byte(fmt.Sprintf(standIn, out)), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_ACCOUNT_KEY", "secret") // must not reach the job
	root := filepath.Join(dir, "nodes")
	p, err := New(Config{AgentBinary: bin, RootDir: root, Partition: testslurm.Partition,
		SbatchArgs: []string{"--cpus-per-task=1"}, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, p: p, out: out, root: root}
}

func spec(id string) provider.NodeSpec {
	return provider.NodeSpec{Account: "acct", PoolID: "pool1", NodeID: id, Dedicated: true, Token: "tok-" + id, ServerURL: "http://127.0.0.1:1"}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	n := spec("tvmps_1_d")
	if err := f.p.Start(ctx, n); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the job runs the agent", func() bool {
		_, err := os.Stat(filepath.Join(f.out, n.NodeID+".env"))
		return err == nil && f.c.Jobs(t)[JobName(n.NodeID)][1] == "RUNNING"
	})
	args, _ := os.ReadFile(filepath.Join(f.out, n.NodeID+".args"))
	for _, want := range []string{"agent", "--server http://127.0.0.1:1", "--pool pool1", "--node-id tvmps_1_d",
		"--root-dir " + filepath.Join(f.root, n.NodeID), "--listen 0.0.0.0:0", "--orphan-timeout 10m0s"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("agent args %q lack %q", args, want)
		}
	}
	tok, _ := os.ReadFile(filepath.Join(f.out, n.NodeID+".token"))
	if strings.TrimSpace(string(tok)) != n.Token {
		t.Errorf("KILN_AGENT_TOKEN = %q, want %q", tok, n.Token)
	}
	env, _ := os.ReadFile(filepath.Join(f.out, n.NodeID+".env"))
	if strings.Contains(string(env), "KILN_ACCOUNT_KEY") {
		t.Errorf("the server's environment reached the job:\n%s", env)
	}
	if _, err := os.Stat(filepath.Join(f.root, n.NodeID)); err != nil {
		t.Errorf("node root directory: %v", err)
	}
	if err := f.p.Stop(ctx, n); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the job is gone", func() bool { _, ok := f.c.Jobs(t)[JobName(n.NodeID)]; return !ok })
	eventually(t, "the root directory is removed", func() bool {
		_, err := os.Stat(filepath.Join(f.root, n.NodeID))
		return os.IsNotExist(err)
	})
	// Stop again, and Stop of a node never started: nothing to do.
	if err := f.p.Stop(ctx, n); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if err := f.p.Stop(ctx, spec("tvmps_none_d")); err != nil {
		t.Errorf("stop of an unknown node: %v", err)
	}
	// A low-priority node's job gets the low-priority arguments.
	cfg := f.p.cfg
	cfg.LowPrioritySbatchArgs = []string{"--partition=" + testslurm.PreemptingPartition}
	lp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	low := spec("tvmps_low_p")
	low.Dedicated = false
	if err := lp.Start(ctx, low); err != nil {
		t.Fatal(err)
	}
	if part := strings.TrimSpace(f.c.Run(t, "squeue", "-h", "--name="+JobName(low.NodeID), "-o", "%P")); part != testslurm.PreemptingPartition {
		t.Errorf("partition of the low-priority node's job: %q", part)
	}
	if err := lp.Stop(ctx, low); err != nil {
		t.Fatal(err)
	}

	// A new provider (a restarted server) finds a node's job by its name.
	m := spec("tvmps_2_d")
	if err := f.p.Start(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second job queued", func() bool { _, ok := f.c.Jobs(t)[JobName(m.NodeID)]; return ok })
	p2, err := New(f.p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Stop(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the job found by name is cancelled", func() bool { _, ok := f.c.Jobs(t)[JobName(m.NodeID)]; return !ok })
}

func TestWatch(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	events := map[string]provider.NodeEvent{}
	waiting := map[string]provider.NodeEvent{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.p.Watch(ctx, func(ev provider.NodeEvent) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Waiting {
				waiting[ev.NodeID] = ev
				return
			}
			t.Logf("event %+v", ev)
			if _, dup := events[ev.NodeID]; dup {
				t.Errorf("second event for %s: %+v", ev.NodeID, ev)
			}
			events[ev.NodeID] = ev
		})
	}()
	defer func() { cancel(); <-done }()
	event := func(id string) (provider.NodeEvent, bool) {
		mu.Lock()
		defer mu.Unlock()
		ev, ok := events[id]
		return ev, ok
	}
	ids := []string{"cancelled", "requeued", "stopped", "fail", "quiet"}
	for _, id := range ids {
		if err := f.p.Start(ctx, spec(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A job that waits in the queue (another provider's, found by name).
	cfg := f.p.cfg
	cfg.SbatchArgs = []string{"--begin=now+3600"}
	later, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := later.Start(ctx, spec("later")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a waiting event for the queued job", func() bool {
		mu.Lock()
		defer mu.Unlock()
		ev, ok := waiting["later"]
		return ok && strings.Contains(ev.Reason, "PENDING (BeginTime)")
	})
	jobID := func(id string) string { return f.c.Jobs(t)[JobName(id)][0] }
	eventually(t, "the jobs run", func() bool {
		jobs := f.c.Jobs(t)
		for _, id := range []string{"cancelled", "requeued", "stopped", "quiet"} {
			if jobs[JobName(id)][1] != "RUNNING" {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // the watcher sees them run
	cancelledJob, requeuedJob := jobID("cancelled"), jobID("requeued")
	f.c.Run(t, "scancel", cancelledJob)
	f.c.Run(t, "scontrol", "requeue", requeuedJob)
	if err := f.p.Stop(ctx, spec("stopped")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "events for the cancelled, requeued and failed jobs", func() bool {
		_, a := event("cancelled")
		_, b := event("requeued")
		_, c := event("fail")
		return a && b && c
	})
	ev, _ := event("cancelled")
	if ev.Preempted || ev.Code != "SlurmJobEnded" || !strings.Contains(ev.Reason, "Slurm job "+cancelledJob+" ended in state CANCELLED") {
		t.Errorf("cancelled job: %+v", ev)
	}
	ev, _ = event("requeued")
	if !ev.Preempted || !strings.Contains(ev.Reason, "Slurm job "+requeuedJob+" was requeued") {
		t.Errorf("requeued job: %+v", ev)
	}
	ev, _ = event("fail")
	if ev.Preempted || !strings.Contains(ev.Reason, "FAILED") || !strings.Contains(ev.Reason, "exit code 3:0") {
		t.Errorf("failed job: %+v", ev)
	}
	// The failed agent's log is kept, its root directory removed.
	if b, err := os.ReadFile(filepath.Join(f.root, "fail.log")); err != nil || !strings.Contains(string(b), "failing") {
		t.Errorf("log of the failed agent: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "fail")); !os.IsNotExist(err) {
		t.Errorf("root directory of the failed node: %v", err)
	}
	time.Sleep(time.Second) // more polls: no event for the stopped job nor the quiet one
	for _, id := range []string{"stopped", "quiet", "later"} {
		if ev, ok := event(id); ok {
			t.Errorf("event for %s: %+v", id, ev)
		}
	}
}

// TestWatchLostJob: a job the controller forgets (slurmctld restarted
// without its state) is reported as lost, uncertainly: the service then
// asks its agent.
func TestWatchLostJob(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan provider.NodeEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.p.Watch(ctx, func(ev provider.NodeEvent) {
			if !ev.Waiting {
				events <- ev
			}
		})
	}()
	defer func() { cancel(); <-done }()
	if err := f.p.Start(ctx, spec("lost")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the job runs", func() bool { return f.c.Jobs(t)[JobName("lost")][1] == "RUNNING" })
	time.Sleep(500 * time.Millisecond) // the watcher sees it run
	job := f.c.Jobs(t)[JobName("lost")][0]
	f.c.RestartController(t, true)
	select {
	case ev := <-events:
		if ev.NodeID != "lost" || !ev.Uncertain || ev.Preempted || ev.Code != "SlurmJobLost" || !strings.Contains(ev.Reason, "Slurm job "+job+" is gone") {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("no event for the lost job")
	}
}
