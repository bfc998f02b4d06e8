package metrics

import (
	"crypto/subtle"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports task and node counts from the attached service's
// in-memory state at scrape time (the service keeps per-job counts, so a
// scrape costs one pass over jobs and nodes, not over tasks).
type stateCollector struct{ m *Metrics }

var (
	tasksDesc = prometheus.NewDesc(Namespace+"_tasks",
		"Tasks by state per job and pool, as Get Task Counts reports them: active, running (preparing included), succeeded and failed (completed = succeeded + failed).",
		[]string{"account", "pool", "job", "state"}, nil)
	jobsDesc = prometheus.NewDesc(Namespace+"_jobs",
		"Jobs by state (active, disabling, disabled, enabling, terminating, completed, deleting).",
		[]string{"account", "state"}, nil)
	nodesDesc = prometheus.NewDesc(Namespace+"_nodes",
		"Compute nodes by state per pool (Azure node states; every state is listed, zeros included).",
		[]string{"account", "pool", "state"}, nil)
	poolsDesc = prometheus.NewDesc(Namespace+"_pools",
		"Pools per account.",
		[]string{"account"}, nil)
)

// TaskStates are the values of the state label of kiln_tasks.
var TaskStates = []string{"active", "running", "succeeded", "failed"}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksDesc
	ch <- jobsDesc
	ch <- nodesDesc
	ch <- poolsDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	svc := c.m.svc.Load()
	if svc == nil { // a follower: the leader reports the state
		return
	}
	snap := svc.StateCounts()
	type acctState struct{ account, state string }
	jobs := map[acctState]int{}
	for _, j := range snap.Jobs {
		for i, n := range []int{j.Active, j.Running, j.Succeeded, j.Failed} {
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(n), j.Account, j.Pool, j.Job, TaskStates[i])
		}
		jobs[acctState{j.Account, j.JobState}]++
	}
	for k, n := range jobs {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), k.account, k.state)
	}
	pools := map[string]int{}
	for _, p := range snap.Nodes {
		for st, n := range p.States {
			ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), p.Account, p.Pool, st)
		}
		pools[p.Account]++
	}
	for a, n := range pools {
		ch <- prometheus.MustNewConstMetric(poolsDesc, prometheus.GaugeValue, float64(n), a)
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
