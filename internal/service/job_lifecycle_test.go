package service

// Unit tests of the job transitions, task preemption and statistics whose
// timing a real agent makes hard to pin down: the test plays the agent of
// one node through the server side of the agent protocol, so it decides
// when a killed attempt's process is reported gone.

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

const lcAccount = "lc"

type lcProvider struct{ specs chan provider.NodeSpec }

func (lcProvider) Name() string { return "lifecycle-test" }
func (p lcProvider) Start(_ context.Context, n provider.NodeSpec) error {
	p.specs <- n
	return nil
}
func (lcProvider) Stop(context.Context, provider.NodeSpec) error { return nil }
func (lcProvider) Images() []provider.Image                      { return nil }

// lcBundle is a Service with one pool of one node whose agent the test
// plays, on a real SQLite store, with a clock the test moves.
type lcBundle struct {
	t      *testing.T
	dbPath string
	prov   lcProvider
	s      *Service
	clock  time.Time
	// The node's agent: its identity, the attempts it knows (attempt id ->
	// task id) and its sequence numbers.
	nodeID, token string
	known         map[string]string
	seq, evSeq    int64
	lastKill      []string
}

func newLCBundle(t *testing.T, slots int32) *lcBundle {
	t.Helper()
	b := &lcBundle{t: t, dbPath: filepath.Join(t.TempDir(), "kiln.db"), prov: lcProvider{specs: make(chan provider.NodeSpec, 4)},
		clock: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), known: map[string]string{}}
	b.open()
	ctx := context.Background()
	if _, err := b.s.EnsureAccount(ctx, lcAccount, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.PoolAdd(ctx, lcAccount, &azbatch.CreatePoolContent{ID: ptr("pool"), VMSize: ptr("standard_d2s_v3"),
		TargetDedicatedNodes: ptr(int32(1)), TaskSlotsPerNode: ptr(slots)}); err != nil {
		t.Fatal(err)
	}
	select {
	case spec := <-b.prov.specs:
		b.nodeID, b.token = spec.NodeID, spec.Token
	case <-time.After(10 * time.Second):
		t.Fatal("the pool's node was not started")
	}
	b.register()
	return b
}

func (b *lcBundle) now() time.Time { return b.clock }

func (b *lcBundle) open() {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.dbPath)
	if err != nil {
		b.t.Fatal(err)
	}
	s, err := New(ctx, Config{Store: st, Provider: b.prov, HeartbeatInterval: 20 * time.Millisecond, Now: b.now,
		AccountURL: func(string) string { return "http://kiln.test" }})
	if err != nil {
		b.t.Fatal(err)
	}
	b.s = s
	b.t.Cleanup(func() { s.Close(); st.Close() })
}

// restart replaces the service by a new one on the same database; the
// agent keeps what it knows and syncs on.
func (b *lcBundle) restart() {
	b.t.Helper()
	b.s.Close()
	if err := b.s.cfg.Store.Close(); err != nil {
		b.t.Fatal(err)
	}
	b.open()
}

func (b *lcBundle) register() {
	b.t.Helper()
	if _, status, err := b.s.agentRegister(context.Background(), &protocol.RegisterRequest{
		ProtocolVersion: protocol.Version, PoolID: "pool", NodeID: b.nodeID, Token: b.token,
	}); err != nil {
		b.t.Fatalf("register: %d %v", status, err)
	}
	b.sync()
}

// sync sends the agent's events and known attempts, and takes the answer's
// assignments; kill orders are kept in lastKill (the agent decides when
// the killed processes are gone).
func (b *lcBundle) sync(events ...protocol.Event) {
	b.t.Helper()
	b.seq++
	var known []string
	for a := range b.known {
		known = append(known, a)
	}
	resp, status, err := b.s.agentSync(context.Background(), b.token, &protocol.SyncRequest{
		NodeID: b.nodeID, Seq: b.seq, Events: events, Known: known, WaitMillis: 1, Applied: b.seq - 1,
	})
	if err != nil {
		b.t.Fatalf("sync: %d %v", status, err)
	}
	for _, as := range resp.Assignments {
		b.known[as.AttemptID] = as.TaskID
	}
	b.lastKill = resp.Kill
}

// attemptOf returns the attempt the agent runs for a task.
func (b *lcBundle) attemptOf(taskID string) string {
	b.t.Helper()
	for a, id := range b.known {
		if id == taskID {
			return a
		}
	}
	b.t.Fatalf("the agent runs no attempt of task %s (%v)", taskID, b.known)
	return ""
}

// started reports the process of a task started at the current clock.
func (b *lcBundle) started(taskID string) {
	b.t.Helper()
	b.evSeq++
	b.sync(protocol.Event{Seq: b.evSeq, AttemptID: b.attemptOf(taskID), Kind: protocol.EventStarted, Time: b.clock})
}

// end reports the end of a task's attempt (killed or exited) with stats,
// and forgets it.
func (b *lcBundle) end(taskID string, exit int, killed bool, st *protocol.AttemptStats) {
	b.t.Helper()
	a := b.attemptOf(taskID)
	b.evSeq++
	ev := protocol.Event{Seq: b.evSeq, AttemptID: a, Kind: protocol.EventCompleted, Time: b.clock, StartTime: b.clock.Add(-time.Second),
		ExitCode: &exit, Killed: killed, Stats: st}
	b.sync(ev)
	delete(b.known, a)
	b.sync()
}

func (b *lcBundle) addJob(id string, mutate func(*azbatch.CreateJobContent)) {
	b.t.Helper()
	c := &azbatch.CreateJobContent{ID: ptr(id), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool")}}
	if mutate != nil {
		mutate(c)
	}
	if _, err := b.s.JobAdd(context.Background(), lcAccount, c); err != nil {
		b.t.Fatalf("add job %s: %v", id, err)
	}
}

func (b *lcBundle) addTask(jobID, id string) {
	b.t.Helper()
	if _, err := b.s.TaskAdd(context.Background(), lcAccount, jobID, &azbatch.CreateTaskContent{ID: ptr(id), CommandLine: ptr("true")}); err != nil {
		b.t.Fatalf("add task %s: %v", id, err)
	}
}

func (b *lcBundle) job(id string) (*azbatch.Job, error) {
	o, err := b.s.JobGet(context.Background(), lcAccount, id, Conditions{})
	if err != nil {
		return nil, err
	}
	j := &azbatch.Job{}
	if err := j.UnmarshalJSON(o.Doc); err != nil {
		b.t.Fatal(err)
	}
	return j, nil
}

func (b *lcBundle) jobState(id string) azbatch.JobState {
	b.t.Helper()
	j, err := b.job(id)
	if err != nil {
		b.t.Fatalf("get job %s: %v", id, err)
	}
	return *j.State
}

func (b *lcBundle) task(jobID, id string) *azbatch.Task {
	b.t.Helper()
	o, err := b.s.TaskGet(context.Background(), lcAccount, jobID, id, Conditions{})
	if err != nil {
		b.t.Fatalf("get task %s: %v", id, err)
	}
	tk, err := decodeTask(o.Doc)
	if err != nil {
		b.t.Fatal(err)
	}
	return tk
}

func requireLCCode(t *testing.T, err error, code string) {
	t.Helper()
	var be *batch.Error
	if !errors.As(err, &be) || be.Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

// dedupe returns the distinct strings of ss, sorted (a kill order may come
// twice: from the stop itself and from the Known list reconciliation).
func dedupe(ss []string) []string {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (b *lcBundle) lifetime() azbatch.JobStatistics {
	b.t.Helper()
	st, err := b.s.LifetimeJobStats(context.Background(), lcAccount)
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

func TestJobLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("DeleteWaitsForTheKilledProcess", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 2)
		b.addJob("j", nil)
		b.addTask("j", "t")
		b.sync()
		b.started("t")
		attempt := b.attemptOf("t")
		if err := b.s.JobDelete(context.Background(), lcAccount, "j", Conditions{}); err != nil {
			t.Fatal(err)
		}
		b.sync() // the kill order; the agent has not stopped the process yet
		if kills := dedupe(b.lastKill); len(kills) != 1 || kills[0] != attempt {
			t.Fatalf("kill orders %v, want [%s]", b.lastKill, attempt)
		}
		if st := b.jobState("j"); st != azbatch.JobStateDeleting {
			t.Fatalf("job %s while its task's process runs, want deleting", st)
		}
		// Readable, listed, and every change refused with JobBeingDeleted.
		page, err := b.s.JobList(context.Background(), lcAccount, ListParams{})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("job list while deleting: %d items, %v", len(page.Items), err)
		}
		_, err = b.s.JobPatch(context.Background(), lcAccount, "j", &azbatch.UpdateJobContent{Priority: ptr(int32(1))}, Conditions{})
		requireLCCode(t, err, "JobBeingDeleted")
		_, err = b.s.JobTerminate(context.Background(), lcAccount, "j", nil, Conditions{})
		requireLCCode(t, err, "JobBeingDeleted")
		requireLCCode(t, b.s.JobDelete(context.Background(), lcAccount, "j", Conditions{}), "JobBeingDeleted")
		_, err = b.s.TaskAdd(context.Background(), lcAccount, "j", &azbatch.CreateTaskContent{ID: ptr("u"), CommandLine: ptr("true")})
		requireLCCode(t, err, "JobBeingDeleted")

		// The agent reports the killed attempt: the job is gone, and what
		// the process consumed counts for the account.
		b.end("t", 137, true, &protocol.AttemptStats{UserCPU: protocol.Duration(3 * time.Second), WriteBytes: 1 << 20, WriteOps: 9})
		if _, err := b.job("j"); !errors.Is(err, batch.ErrJobNotFound) {
			t.Fatalf("job after the kill was confirmed: %v", err)
		}
		life := b.lifetime()
		if *life.UserCPUTime != "PT3S" || *life.WriteIOps != 9 {
			t.Fatalf("lifetime statistics: user CPU %s write ops %d", *life.UserCPUTime, *life.WriteIOps)
		}
		// The id is free again.
		b.addJob("j", nil)
	})

	t.Run("TerminateConfirmedByKnownList", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 2)
		b.addJob("j", func(c *azbatch.CreateJobContent) { c.MaxParallelTasks = ptr(int32(1)) })
		b.addTask("j", "t")
		b.addTask("j", "queued-behind")
		b.sync()
		if _, err := b.s.JobTerminate(context.Background(), lcAccount, "j", &azbatch.TerminateJobContent{TerminationReason: ptr("Stop")}, Conditions{}); err != nil {
			t.Fatal(err)
		}
		b.sync()
		if st := b.jobState("j"); st != azbatch.JobStateTerminating {
			t.Fatalf("job %s, want terminating", st)
		}
		_, err := b.s.JobTerminate(context.Background(), lcAccount, "j", nil, Conditions{})
		requireLCCode(t, err, "JobBeingTerminated")
		_, err = b.s.TaskAdd(context.Background(), lcAccount, "j", &azbatch.CreateTaskContent{ID: ptr("u"), CommandLine: ptr("true")})
		requireLCCode(t, err, "JobBeingTerminated")
		j, _ := b.job("j")
		if j.ExecutionInfo.EndTime != nil {
			t.Fatal("a terminating job has an endTime")
		}
		// The agent lost the attempt (a restart of its own): a sync
		// without it proves the process is gone.
		for a := range b.known {
			delete(b.known, a)
		}
		b.sync()
		j, _ = b.job("j")
		if *j.State != azbatch.JobStateCompleted || *j.ExecutionInfo.TerminationReason != "Stop" || *j.PreviousState != azbatch.JobStateTerminating {
			t.Fatalf("terminated job: %s reason %v", *j.State, j.ExecutionInfo.TerminationReason)
		}
		if tk := b.task("j", "queued-behind"); *tk.State != azbatch.TaskStateActive {
			t.Fatalf("the never-run task of a completed job is %s", *tk.State)
		}
	})

	t.Run("NodeLossConfirms", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 2)
		b.addJob("j", nil)
		b.addTask("j", "t")
		b.sync()
		if _, err := b.s.JobDisable(context.Background(), lcAccount, "j", &azbatch.DisableJobContent{DisableTasks: ptr(azbatch.DisableJobOptionRequeue)}, Conditions{}); err != nil {
			t.Fatal(err)
		}
		if st := b.jobState("j"); st != azbatch.JobStateDisabling {
			t.Fatalf("job %s, want disabling", st)
		}
		// The node goes silent past the node timeout: its processes are
		// not waited for.
		b.clock = b.clock.Add(NodeTimeoutDefault + time.Second)
		b.s.mu.Lock()
		var w store.Writes
		b.s.checkNodesLocked(&w)
		b.s.dispatchLocked(&w)
		err := b.s.commit(context.Background(), &w)
		b.s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if st := b.jobState("j"); st != azbatch.JobStateDisabled {
			t.Fatalf("job %s after its node was lost, want disabled", st)
		}
		if tk := b.task("j", "t"); *tk.State != azbatch.TaskStateActive || *tk.ExecutionInfo.RequeueCount != 1 {
			t.Fatalf("requeued task: %s requeueCount %d", *tk.State, *tk.ExecutionInfo.RequeueCount)
		}
	})

	t.Run("AgentRestartConfirms", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 2)
		b.addJob("j", nil)
		b.addTask("j", "t")
		for range 3 {
			b.sync() // the agent's syncs count past the attempt's delivery
		}
		if err := b.s.JobDelete(context.Background(), lcAccount, "j", Conditions{}); err != nil {
			t.Fatal(err)
		}
		if st := b.jobState("j"); st != azbatch.JobStateDeleting {
			t.Fatalf("job %s, want deleting", st)
		}
		// A new agent process, which lost the attempt with the old one,
		// registers and counts its syncs from 1 again.
		b.known = map[string]string{}
		b.seq, b.evSeq = 0, 0
		b.register()
		if _, err := b.job("j"); !errors.Is(err, batch.ErrJobNotFound) {
			t.Fatalf("job after its agent restarted without the attempt: %v", err)
		}
	})

	t.Run("RestartFinishesTransitions", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 3)
		for _, id := range []string{"del", "term", "dis"} {
			b.addJob(id, nil)
			b.addTask(id, "t-"+id) // the agent knows its attempts by task id
		}
		b.sync()
		ctx := context.Background()
		if err := b.s.JobDelete(ctx, lcAccount, "del", Conditions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.s.JobTerminate(ctx, lcAccount, "term", nil, Conditions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.s.JobDisable(ctx, lcAccount, "dis", &azbatch.DisableJobContent{DisableTasks: ptr(azbatch.DisableJobOptionWait)}, Conditions{}); err != nil {
			t.Fatal(err)
		}
		b.restart()
		// The restarted server kills the tasks still recorded as running
		// (the deleted job's: a terminated job's tasks completed already)
		// and the agent's attempts it no longer expects (the terminated
		// job's). The deleting job waits for its task; the terminating one
		// has nothing left to wait for; the disabling job's task runs on.
		b.sync()
		b.lastKill = dedupe(b.lastKill)
		if len(b.lastKill) != 2 {
			t.Fatalf("kill orders after restart: %v", b.lastKill)
		}
		if st := b.jobState("del"); st != azbatch.JobStateDeleting {
			t.Fatalf("deleting job after restart: %s", st)
		}
		for a, task := range b.known {
			for _, k := range b.lastKill {
				if k == a {
					b.end(task, 137, true, nil)
				}
			}
		}
		if _, err := b.job("del"); !errors.Is(err, batch.ErrJobNotFound) {
			t.Fatalf("deleted job after restart: %v", err)
		}
		if j, _ := b.job("term"); *j.State != azbatch.JobStateCompleted || *j.ExecutionInfo.TerminationReason != "UserTerminate" {
			t.Fatalf("terminated job after restart: %s", *j.State)
		}
		if st := b.jobState("dis"); st != azbatch.JobStateDisabling {
			t.Fatalf("disabling job after restart: %s", st)
		}
		b.end("t-dis", 0, false, nil)
		if st := b.jobState("dis"); st != azbatch.JobStateDisabled {
			t.Fatalf("disabling job once its task ended: %s", st)
		}
	})
}

func TestJobStatistics(t *testing.T) {
	t.Parallel()
	b := newLCBundle(t, 2)
	b.addJob("j", func(c *azbatch.CreateJobContent) {
		c.Constraints = &azbatch.JobConstraints{MaxTaskRetryCount: ptr(int32(1))}
	})
	b.addTask("j", "t")
	b.sync()
	b.clock = b.clock.Add(2 * time.Second)
	b.started("t")
	st := &protocol.AttemptStats{WallClock: protocol.Duration(time.Second), UserCPU: protocol.Duration(1500 * time.Millisecond),
		KernelCPU: protocol.Duration(500 * time.Millisecond), ReadOps: 3, WriteOps: 4, ReadBytes: 1 << 30, WriteBytes: 1 << 29}
	b.end("t", 1, false, st) // retried
	b.sync()
	b.started("t")
	b.end("t", 0, false, st)

	j, _ := b.job("j")
	js := j.Stats
	if *js.NumSucceededTasks != 1 || *js.NumFailedTasks != 0 || *js.NumTaskRetries != 1 {
		t.Fatalf("counts %d %d %d", *js.NumSucceededTasks, *js.NumFailedTasks, *js.NumTaskRetries)
	}
	if *js.UserCPUTime != "PT3S" || *js.KernelCPUTime != "PT1S" || *js.WallClockTime != "PT2S" || *js.ReadIOps != 6 || *js.WriteIOps != 8 || *js.ReadIOGiB != 2 || *js.WriteIOGiB != 1 {
		t.Fatalf("job statistics %+v", js)
	}
	if *js.WaitTime != "PT0S" {
		t.Fatalf("job waitTime %s", *js.WaitTime)
	}
	tk := b.task("j", "t")
	// The wait ends with the latest execution's process start (the
	// agent's StartTime, a second before the end here).
	if ts := tk.Stats; *ts.UserCPUTime != "PT3S" || *ts.WallClockTime != "PT2S" || *ts.WaitTime != "PT1S" || *ts.ReadIOGiB != 2 {
		t.Fatalf("task statistics %+v", ts)
	}
	life := b.lifetime()
	if *life.WaitTime != "PT1S" || *life.NumTaskRetries != 1 || *life.UserCPUTime != "PT3S" {
		t.Fatalf("lifetime statistics: wait %s retries %d user CPU %s", *life.WaitTime, *life.NumTaskRetries, *life.UserCPUTime)
	}

	// Exact totals survive a restart: a job's in its record, the account's
	// in its own.
	b.restart()
	j, _ = b.job("j")
	if *j.Stats.UserCPUTime != "PT3S" || *j.Stats.NumTaskRetries != 1 || *j.Stats.WriteIOGiB != 1 {
		t.Fatalf("job statistics after restart %+v", j.Stats)
	}
	if life := b.lifetime(); *life.WaitTime != "PT1S" || *life.ReadIOps != 6 {
		t.Fatalf("lifetime statistics after restart %+v", life)
	}

	// An agent without stats is credited the process's wall clock only.
	b.register()
	b.addTask("j", "old")
	b.sync()
	b.end("old", 0, false, nil)
	j, _ = b.job("j")
	if *j.Stats.WallClockTime != "PT3S" || *j.Stats.UserCPUTime != "PT3S" {
		t.Fatalf("after an attempt without stats: %+v", j.Stats)
	}
}

func TestTaskPreemption(t *testing.T) {
	t.Parallel()
	b := newLCBundle(t, 3)
	b.addJob("low1", func(c *azbatch.CreateJobContent) { c.Priority = ptr(int32(-5)); c.AllowTaskPreemption = ptr(true) })
	b.addJob("low2", func(c *azbatch.CreateJobContent) { c.AllowTaskPreemption = ptr(true) })
	b.addTask("low2", "b")
	b.sync()
	b.started("b")
	b.clock = b.clock.Add(time.Second)
	b.addTask("low2", "c")
	b.addTask("low1", "a")
	b.sync()
	b.started("c")
	b.started("a")
	b.addJob("high", func(c *azbatch.CreateJobContent) { c.Priority = ptr(int32(10)) })

	// The lowest priority goes first, then the most recently started.
	b.addTask("high", "h1")
	b.sync()
	if tk := b.task("low1", "a"); *tk.State != azbatch.TaskStateActive || *tk.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("first victim: %s requeueCount %d", *tk.State, *tk.ExecutionInfo.RequeueCount)
	}
	b.addTask("high", "h2")
	b.sync()
	if tk := b.task("low2", "c"); *tk.State != azbatch.TaskStateActive || *tk.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("second victim: %s", *tk.State)
	}
	if tk := b.task("low2", "b"); *tk.State != azbatch.TaskStateRunning {
		t.Fatalf("the earlier-started task was preempted: %s", *tk.State)
	}
	for _, id := range []string{"h1", "h2"} {
		if tk := b.task("high", id); *tk.State == azbatch.TaskStateActive {
			t.Fatalf("high task %s was not started", id)
		}
	}
	// A job at its maxParallelTasks preempts nothing.
	if _, err := b.s.JobPatch(context.Background(), lcAccount, "high", &azbatch.UpdateJobContent{MaxParallelTasks: ptr(int32(2))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.addTask("high", "h3")
	b.sync()
	if tk := b.task("low2", "b"); *tk.State != azbatch.TaskStateRunning {
		t.Fatalf("a job at its maxParallelTasks preempted: %s", *tk.State)
	}
}
