package service

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Prometheus hooks (internal/metrics, docs/metrics.md). Not to be confused
// with metrics.go, which samples pools for autoscale formulas.

// Observer receives the events behind Kiln's Prometheus metrics. Its
// methods are called with the service lock held: they must be quick and
// must not call back into the service.
type Observer interface {
	// TaskStarted: an attempt of a task of a job on pool started on a node,
	// latency after the task became eligible to run (added, its
	// dependencies satisfied, retried or requeued) on the server's clock.
	TaskStarted(account, pool, job string, latency time.Duration)
	// TaskEnded: an attempt ended after running for d (the agent's start
	// and end times); result is "success" or "failure".
	TaskEnded(account, pool, job, result string, d time.Duration)
	// AgentSync: a node of pool synced (its heartbeat).
	AgentSync(account, pool string)
	// StoreCommit: one store transaction of the service took d.
	StoreCommit(d time.Duration, err error)
}

// SetObserver installs o (nil: none). Call it before Start.
func (s *Service) SetObserver(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs = o
}

// markReady records when t became eligible to run (jobState.push).
func markReady(t *taskState) { t.readyAt = time.Now().UnixNano() }

func (s *Service) observeTaskStartedLocked(n *nodeState, t *taskState) {
	if s.obs == nil || t.readyAt == 0 {
		return
	}
	lat := max(time.Duration(time.Now().UnixNano()-t.readyAt), 0)
	t.readyAt = 0 // one observation per time it became eligible
	s.obs.TaskStarted(t.job.account, n.pool.id(), t.job.id(), lat)
}

func (s *Service) observeTaskEndedLocked(n *nodeState, t *taskState, ev protocol.Event) {
	if s.obs == nil {
		return
	}
	s.observeTaskStartedLocked(n, t) // its started event never came
	start := ev.StartTime
	if start.IsZero() && t.doc != nil && t.doc.ExecutionInfo != nil && t.doc.ExecutionInfo.StartTime != nil {
		start = *t.doc.ExecutionInfo.StartTime
	}
	if start.IsZero() {
		return
	}
	result := "success"
	if _, failure := failureOf(ev); failure != nil {
		result = "failure"
	}
	s.obs.TaskEnded(t.job.account, n.pool.id(), t.job.id(), result, max(ev.Time.Sub(start), 0))
}

func (s *Service) observeSyncLocked(n *nodeState) {
	if s.obs == nil || n.pool == nil {
		return
	}
	s.obs.AgentSync(n.account, n.pool.id())
}

func (s *Service) observeCommit(d time.Duration, err error) {
	if s.obs != nil {
		s.obs.StoreCommit(d, err)
	}
}

// StateCounts is a snapshot of the service's in-memory state for the
// Prometheus gauges.
type StateCounts struct {
	// Jobs are the task counts of every job (Get Task Counts).
	Jobs []JobTaskStateCounts
	// Nodes count every pool's nodes by state, zero states included.
	Nodes []PoolNodeStateCounts
}

// JobTaskStateCounts are one job's task counts by state.
type JobTaskStateCounts struct {
	Account, Pool, Job, JobState       string
	Active, Running, Succeeded, Failed int
}

// PoolNodeStateCounts count one pool's nodes by Azure node state.
type PoolNodeStateCounts struct {
	Account, Pool string
	States        map[string]int
}

// NodeStates are the Azure node states, in the order metrics list them.
var NodeStates = func() []string {
	var out []string
	for _, st := range azbatch.PossibleNodeStateValues() {
		out = append(out, string(st))
	}
	return out
}()

// StateCounts takes a snapshot of task counts by job and node counts by
// pool. It holds the service lock for one pass over jobs and nodes (not
// tasks: the jobs keep their counts).
func (s *Service) StateCounts() StateCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := StateCounts{Jobs: make([]JobTaskStateCounts, 0, len(s.jobs)), Nodes: make([]PoolNodeStateCounts, 0, len(s.pools))}
	for _, j := range s.jobs {
		c := j.counts
		out.Jobs = append(out.Jobs, JobTaskStateCounts{Account: j.account, Pool: j.poolID(), Job: j.id(), JobState: string(j.state()),
			Active: int(c.Active), Running: int(c.Running), Succeeded: int(c.Succeeded), Failed: int(c.Failed)})
	}
	for _, p := range s.pools {
		pc := PoolNodeStateCounts{Account: p.account, Pool: p.id(), States: make(map[string]int, len(NodeStates))}
		for _, st := range NodeStates {
			pc.States[st] = 0
		}
		for _, n := range p.nodes {
			st := string(deref(n.doc.State))
			if st == "" {
				st = string(azbatch.NodeStateUnknown)
			}
			pc.States[st]++
		}
		out.Nodes = append(out.Nodes, pc)
	}
	return out
}
