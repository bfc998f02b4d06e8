package service

import (
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// recordingObserver keeps what the service reported.
type recordingObserver struct {
	mu       sync.Mutex
	started  []string // job/pool of each start
	ended    map[string]int
	syncs    map[string]int
	commits  int
	failures int
}

func (o *recordingObserver) TaskStarted(account, pool, job string, latency time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if latency < 0 {
		panic("negative latency")
	}
	o.started = append(o.started, account+"/"+pool+"/"+job)
}

func (o *recordingObserver) TaskEnded(account, pool, job, result string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended[account+"/"+pool+"/"+job+"/"+result]++
}

func (o *recordingObserver) AgentSync(account, pool string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.syncs[account+"/"+pool]++
}

func (o *recordingObserver) StoreCommit(d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commits++
	if err != nil {
		o.failures++
	}
}

// TestObserverAndStateCounts runs tasks through the agent protocol and
// checks what the Prometheus hooks saw and what StateCounts reports
// against Get Task Counts and the node list.
func TestObserverAndStateCounts(t *testing.T) {
	b := newDepsBundle(t, 4)
	o := &recordingObserver{ended: map[string]int{}, syncs: map[string]int{}}
	b.s.SetObserver(o)
	b.addJob("job", nil)
	for _, id := range []string{"a", "b", "c"} {
		b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr(id)})
	}
	b.assigned()
	b.complete(exited(0), "a")
	b.complete(exited(3), "b")

	o.mu.Lock()
	if len(o.started) != 2 || o.started[0] != depsAccount+"/pool/job" {
		t.Errorf("started = %v, want 2 starts of deps/pool/job", o.started)
	}
	if o.ended[depsAccount+"/pool/job/success"] != 1 || o.ended[depsAccount+"/pool/job/failure"] != 1 {
		t.Errorf("ended = %v, want one success and one failure", o.ended)
	}
	if o.syncs[depsAccount+"/pool"] < 3 {
		t.Errorf("syncs = %v, want at least 3 of deps/pool", o.syncs)
	}
	if o.commits == 0 || o.failures != 0 {
		t.Errorf("commits = %d (failures %d), want some and no failures", o.commits, o.failures)
	}
	o.mu.Unlock()

	tc, err := b.s.JobTaskCounts(t.Context(), depsAccount, "job")
	if err != nil {
		t.Fatal(err)
	}
	snap := b.s.StateCounts()
	if len(snap.Jobs) != 1 {
		t.Fatalf("jobs = %+v, want 1", snap.Jobs)
	}
	j := snap.Jobs[0]
	c := tc.TaskCounts
	if j.Account != depsAccount || j.Pool != "pool" || j.Job != "job" || j.JobState != "active" ||
		j.Active != int(*c.Active) || j.Running != int(*c.Running) || j.Succeeded != int(*c.Succeeded) || j.Failed != int(*c.Failed) {
		t.Errorf("job counts = %+v, Get Task Counts %+v", j, *c)
	}
	if j.Running != 1 || j.Succeeded != 1 || j.Failed != 1 {
		t.Errorf("job counts = %+v, want 1 running, 1 succeeded, 1 failed", j)
	}
	if len(snap.Nodes) != 1 {
		t.Fatalf("nodes = %+v, want one pool", snap.Nodes)
	}
	p := snap.Nodes[0]
	total := 0
	for _, n := range p.States {
		total += n
	}
	if p.Pool != "pool" || total != 1 || p.States["running"] != 1 || len(p.States) != len(NodeStates) {
		t.Errorf("pool node counts = %+v, want the one node running and every state listed", p)
	}
}
