package service

// The harness of the dependency and exit condition tests: a Service on a
// real SQLite store with one pool of one node that no process runs. The
// test plays the node's agent through the server side of the agent
// protocol (agentRegister, agentSync), so that tasks are assigned,
// reported and completed along the same path a real agent's events take.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

const depsAccount = "deps"

// depsProvider hands the specs of the nodes the service starts to the test.
type depsProvider struct{ specs chan provider.NodeSpec }

func (depsProvider) Name() string { return "deps-test" }
func (p depsProvider) Start(_ context.Context, n provider.NodeSpec) error {
	p.specs <- n
	return nil
}
func (depsProvider) Stop(context.Context, provider.NodeSpec) error { return nil }
func (depsProvider) Images() []provider.Image                      { return nil }

// depsBundle is a service with one registered node of many slots.
type depsBundle struct {
	tb     testing.TB
	dbPath string
	prov   depsProvider
	s      *Service
	node   *depsAgent
}

// depsAgent plays the agent of one node.
type depsAgent struct {
	id, token string
	seq       int64 // last sync Seq
	evSeq     int64 // last event Seq
	// running maps a task id to the attempt the node was given for it.
	running map[string]string
}

func newDepsBundle(tb testing.TB, slots int32) *depsBundle {
	tb.Helper()
	b := &depsBundle{tb: tb, dbPath: filepath.Join(tb.TempDir(), "kiln.db"), prov: depsProvider{specs: make(chan provider.NodeSpec, 16)}}
	b.open()
	ctx := context.Background()
	if _, err := b.s.EnsureAccount(ctx, depsAccount, ""); err != nil {
		tb.Fatal(err)
	}
	if _, err := b.s.PoolAdd(ctx, depsAccount, &azbatch.CreatePoolContent{ID: ptr("pool"), VMSize: ptr("standard_d2s_v3"), TargetDedicatedNodes: ptr(int32(1)), TaskSlotsPerNode: ptr(slots)}); err != nil {
		tb.Fatal(err)
	}
	var spec provider.NodeSpec
	select {
	case spec = <-b.prov.specs:
	case <-time.After(10 * time.Second):
		tb.Fatal("the pool's node was not started")
	}
	b.node = &depsAgent{id: spec.NodeID, token: spec.Token, running: map[string]string{}}
	b.register()
	return b
}

// open starts a Service on the bundle's database (again, for a restart).
func (b *depsBundle) open() {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.dbPath)
	if err != nil {
		b.tb.Fatal(err)
	}
	s, err := New(ctx, Config{Store: st, Provider: b.prov, HeartbeatInterval: 50 * time.Millisecond,
		AccountURL: func(string) string { return "http://127.0.0.1:8080" }})
	if err != nil {
		b.tb.Fatal(err)
	}
	b.s = s
	b.tb.Cleanup(func() {
		s.Close()
		st.Close()
	})
}

// restart stops the service and starts a new one on the same database; the
// node's agent registers again with the attempts it knows, as a real agent
// does when its server comes back.
func (b *depsBundle) restart() {
	b.tb.Helper()
	b.s.Close()
	if err := b.s.cfg.Store.Close(); err != nil {
		b.tb.Fatal(err)
	}
	b.open()
	b.node.seq, b.node.evSeq = 0, 0
	b.register()
}

func (b *depsBundle) register() {
	b.tb.Helper()
	var known []string
	for _, a := range b.node.running {
		known = append(known, a)
	}
	if _, status, err := b.s.agentRegister(context.Background(), &protocol.RegisterRequest{
		ProtocolVersion: protocol.Version, PoolID: "pool", NodeID: b.node.id, Token: b.node.token, Known: known,
	}); err != nil {
		b.tb.Fatalf("register: %d %v", status, err)
	}
	b.sync() // the start of the node's life: nothing to report yet
}

// sync sends one sync with events and takes the answer's assignments and
// kill orders.
func (b *depsBundle) sync(events ...protocol.Event) {
	b.tb.Helper()
	n := b.node
	n.seq++
	known := make([]string, 0, len(n.running))
	for _, a := range n.running {
		known = append(known, a)
	}
	resp, status, err := b.s.agentSync(context.Background(), n.token, &protocol.SyncRequest{
		NodeID: n.id, Seq: n.seq, Events: events, Known: known, WaitMillis: 1, Applied: n.seq - 1,
	})
	if err != nil {
		b.tb.Fatalf("sync: %d %v", status, err)
	}
	for _, as := range resp.Assignments {
		if as.Kind == protocol.KindTask {
			n.running[as.TaskID] = as.AttemptID
		}
	}
	for _, k := range resp.Kill {
		for task, a := range n.running {
			if a == k {
				delete(n.running, task)
			}
		}
	}
}

// assigned returns the ids of the tasks the node was given and has not
// completed, sorted.
func (b *depsBundle) assigned() []string {
	b.tb.Helper()
	b.sync()
	ids := make([]string, 0, len(b.node.running))
	for id := range b.node.running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// completion is how a test ends an attempt: an exit code, and optionally a
// failure the agent reports (phase preprocessing or fileupload).
type completion struct {
	exit    *int
	failure *protocol.FailureInfo
}

func exited(code int) completion { return completion{exit: &code} }

func preprocessingFailed(code string) completion {
	return completion{failure: &protocol.FailureInfo{Category: "usererror", Code: code, Message: "resource file failed", Phase: protocol.PhasePreProcessing}}
}

func uploadFailed(exit int) completion {
	return completion{exit: &exit, failure: &protocol.FailureInfo{Category: "usererror", Code: "FileUploadAccessDenied", Message: "upload refused", Phase: protocol.PhaseFileUpload}}
}

// complete reports the end of the given tasks' attempts in one sync.
func (b *depsBundle) complete(c completion, taskIDs ...string) {
	b.tb.Helper()
	now := time.Now()
	var evs []protocol.Event
	for _, id := range taskIDs {
		a, ok := b.node.running[id]
		if !ok {
			b.tb.Fatalf("task %s is not running on the node (running: %v)", id, b.node.running)
		}
		b.node.evSeq++
		evs = append(evs, protocol.Event{Seq: b.node.evSeq, AttemptID: a, Kind: protocol.EventCompleted, Time: now, StartTime: now, ExitCode: c.exit, Failure: c.failure})
		delete(b.node.running, id)
	}
	b.sync(evs...)
}

// run waits for nothing: it checks the tasks are assigned and completes
// them with exit code 0.
func (b *depsBundle) run(taskIDs ...string) {
	b.tb.Helper()
	b.assigned()
	b.complete(exited(0), taskIDs...)
}

func (b *depsBundle) addJob(id string, mutate func(*azbatch.CreateJobContent)) {
	b.tb.Helper()
	c := &azbatch.CreateJobContent{ID: ptr(id), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool")}, UsesTaskDependencies: ptr(true)}
	if mutate != nil {
		mutate(c)
	}
	if _, err := b.s.JobAdd(context.Background(), depsAccount, c); err != nil {
		b.tb.Fatalf("add job %s: %v", id, err)
	}
}

func (b *depsBundle) addTask(jobID string, c azbatch.CreateTaskContent) error {
	if c.CommandLine == nil {
		c.CommandLine = ptr("true")
	}
	_, err := b.s.TaskAdd(context.Background(), depsAccount, jobID, &c)
	return err
}

func (b *depsBundle) mustAddTask(jobID string, c azbatch.CreateTaskContent) {
	b.tb.Helper()
	if err := b.addTask(jobID, c); err != nil {
		b.tb.Fatalf("add task %s: %v", deref(c.ID), err)
	}
}

// addTasks adds tasks 100 at a time and fails on any per-task error.
func (b *depsBundle) addTasks(jobID string, cs []azbatch.CreateTaskContent) {
	b.tb.Helper()
	for len(cs) > 0 {
		n := min(len(cs), MaxTasksPerCollection)
		res, err := b.s.TaskAddCollection(context.Background(), depsAccount, jobID, cs[:n])
		if err != nil {
			b.tb.Fatal(err)
		}
		for _, r := range res {
			if *r.Status != azbatch.TaskAddStatusSuccess {
				b.tb.Fatalf("add task %s: %s", *r.TaskID, *r.Error.Code)
			}
		}
		cs = cs[n:]
	}
}

func (b *depsBundle) task(jobID, id string) azbatch.Task {
	b.tb.Helper()
	o, err := b.s.TaskGet(context.Background(), depsAccount, jobID, id, Conditions{})
	if err != nil {
		b.tb.Fatalf("get task %s: %v", id, err)
	}
	var t azbatch.Task
	if err := json.Unmarshal(o.Doc, &t); err != nil {
		b.tb.Fatal(err)
	}
	return t
}

func (b *depsBundle) job(id string) azbatch.Job {
	b.tb.Helper()
	o, err := b.s.JobGet(context.Background(), depsAccount, id, Conditions{})
	if err != nil {
		b.tb.Fatalf("get job %s: %v", id, err)
	}
	var j azbatch.Job
	if err := json.Unmarshal(o.Doc, &j); err != nil {
		b.tb.Fatal(err)
	}
	return j
}

func (b *depsBundle) counts(jobID string) azbatch.TaskCounts {
	b.tb.Helper()
	c, err := b.s.JobTaskCounts(context.Background(), depsAccount, jobID)
	if err != nil {
		b.tb.Fatal(err)
	}
	return *c.TaskCounts
}

// dependsOn builds a TaskDependencies of ids and ranges written "a-b".
func dependsOn(ids []string, ranges ...[2]int32) *azbatch.TaskDependencies {
	d := &azbatch.TaskDependencies{TaskIDs: ids}
	for _, r := range ranges {
		d.TaskIDRanges = append(d.TaskIDRanges, azbatch.TaskIDRange{Start: ptr(r[0]), End: ptr(r[1])})
	}
	return d
}

// wantAssigned fails unless exactly the given tasks run on the node.
func (b *depsBundle) wantAssigned(want ...string) {
	b.tb.Helper()
	got := b.assigned()
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		b.tb.Fatalf("assigned tasks %v, want %v", got, want)
	}
}

// wantError fails unless err is a batch error with the code and, when
// prop is set, that PropertyName.
func wantError(tb testing.TB, err error, code, prop string) {
	tb.Helper()
	var be *batch.Error
	if !errors.As(err, &be) || be.Code != code {
		tb.Fatalf("error %v, want %s", err, code)
	}
	if prop == "" {
		return
	}
	for _, kv := range be.Values {
		if kv.Key == "PropertyName" && kv.Value == prop {
			return
		}
	}
	tb.Fatalf("error %v has values %v, want PropertyName %s", err, be.Values, prop)
}
