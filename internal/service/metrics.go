package service

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Pool metrics: what autoscale formulas read through $CPUPercent,
// $PendingTasks and the other service-defined variables. Agents send their
// node's figures on every sync (protocol.NodeMetrics); every sample interval
// (30 seconds, as Azure's) the server turns them, with the task counts of
// the pool's jobs, into one sample per metric per pool, and keeps
// MetricsHistory of them in memory. A restarted server starts a new history.

// Metric sampling defaults.
const (
	// MetricsSampleIntervalDefault is how often pools are sampled: Azure
	// samples every 30 seconds.
	MetricsSampleIntervalDefault = 30 * time.Second
	// MetricsHistory is how long samples are kept: long enough for the
	// windows formulas use (minutes to an hour or two).
	MetricsHistory = 3 * time.Hour
)

// Metric names, as the formula variables without '$'.
const (
	metricCPUPercent       = "CPUPercent"
	metricWallClockSeconds = "WallClockSeconds"
	metricMemoryBytes      = "MemoryBytes"
	metricDiskBytes        = "DiskBytes"
	metricDiskReadBytes    = "DiskReadBytes"
	metricDiskWriteBytes   = "DiskWriteBytes"
	metricDiskReadOps      = "DiskReadOps"
	metricDiskWriteOps     = "DiskWriteOps"
	metricNetworkInBytes   = "NetworkInBytes"
	metricNetworkOutBytes  = "NetworkOutBytes"
	metricSampleNodeCount  = "SampleNodeCount"
	metricActiveTasks      = "ActiveTasks"
	metricRunningTasks     = "RunningTasks"
	metricPendingTasks     = "PendingTasks"
	metricSucceededTasks   = "SucceededTasks"
	metricFailedTasks      = "FailedTasks"
)

// nodeMetrics is the latest report of a node, and the counters it had when
// its pool was last sampled (nil before the first sample).
type nodeMetrics struct {
	latest protocol.NodeMetrics
	at     time.Time
	base   *protocol.NodeMetrics
}

// poolHistory holds a pool's samples by metric name, oldest first.
type poolHistory struct {
	samples map[string][]asSample
	last    time.Time
}

type metricsState struct {
	nodes map[string]*nodeMetrics // by node id
	pools map[string]*poolHistory // by pool key
}

// recordMetricsLocked keeps the figures a node's sync carried.
func (s *Service) recordMetricsLocked(n *nodeState, m *protocol.NodeMetrics) {
	if m == nil {
		return
	}
	ms := &s.as.metrics
	if ms.nodes == nil {
		ms.nodes = map[string]*nodeMetrics{}
	}
	nm := ms.nodes[n.id]
	if nm == nil {
		nm = &nodeMetrics{}
		ms.nodes[n.id] = nm
	}
	nm.latest, nm.at = *m, s.now()
}

func (s *Service) sampleInterval() time.Duration {
	if s.cfg.MetricsSampleInterval > 0 {
		return s.cfg.MetricsSampleInterval
	}
	return MetricsSampleIntervalDefault
}

// poolTaskCountsLocked sums the task counts of every job by pool key.
// Active tasks still waiting for their dependencies are left out, as
// Azure's $ActiveTasks leaves them out.
func (s *Service) poolTaskCountsLocked() map[string]jobCounts {
	var waiting map[*jobState]int32
	for _, j := range s.jobs {
		if j.deps != nil {
			waiting = map[*jobState]int32{}
			break
		}
	}
	if waiting != nil {
		for _, t := range s.tasks {
			if t.parents > 0 {
				waiting[t.job]++
			}
		}
	}
	out := map[string]jobCounts{}
	for _, j := range s.jobs {
		pk := key(j.account, j.poolID())
		c := out[pk]
		c.Active += max(j.counts.Active-waiting[j], 0)
		c.Running += j.counts.Running
		c.Succeeded += j.counts.Succeeded
		c.Failed += j.counts.Failed
		out[pk] = c
	}
	return out
}

// samplePoolsLocked takes one sample of every pool.
func (s *Service) samplePoolsLocked() {
	now := s.now()
	counts := s.poolTaskCountsLocked()
	for pk, p := range s.pools {
		s.samplePoolLocked(pk, p, counts[pk], now)
	}
	ms := &s.as.metrics
	for id := range ms.nodes {
		if _, ok := s.nodes[id]; !ok {
			delete(ms.nodes, id)
		}
	}
	for pk := range ms.pools {
		if _, ok := s.pools[pk]; !ok {
			delete(ms.pools, pk)
		}
	}
}

// samplePoolNowLocked samples one pool (when autoscale is enabled, so that
// its first evaluation has a sample to read).
func (s *Service) samplePoolNowLocked(p *poolState) {
	pk := key(p.account, p.id())
	s.samplePoolLocked(pk, p, s.poolTaskCountsLocked()[pk], s.now())
}

// samplePoolLocked appends one sample per metric. Node metrics are Azure's
// aggregates over the nodes that reported since the last sample or shortly
// before: $CPUPercent the average CPU use, $MemoryBytes the average
// megabytes used, $DiskBytes the average gigabytes used (Azure's units),
// the disk and network counters summed over the nodes for the period,
// $WallClockSeconds the node-seconds of the period, $SampleNodeCount the
// nodes counted. Pools whose nodes reported nothing get no node metric
// sample (formulas reading them see missing samples, as on Azure).
// $PendingTasks is $ActiveTasks + $RunningTasks.
func (s *Service) samplePoolLocked(pk string, p *poolState, c jobCounts, now time.Time) {
	ms := &s.as.metrics
	if ms.pools == nil {
		ms.pools = map[string]*poolHistory{}
	}
	h := ms.pools[pk]
	if h == nil {
		h = &poolHistory{samples: map[string][]asSample{}}
		ms.pools[pk] = h
	}
	period := s.sampleInterval()
	if !h.last.IsZero() && now.Sub(h.last) < period {
		period = max(now.Sub(h.last), 0)
	}
	fresh := max(2*s.sampleInterval(), 3*s.cfg.HeartbeatInterval)
	var nodes int
	var cpu, mem, disk float64
	var dr, dw, dro, dwo, nin, nout float64
	for _, n := range p.nodes {
		nm := ms.nodes[n.id]
		if nm == nil || now.Sub(nm.at) > fresh || deref(n.doc.State) == azbatch.NodeStatePreempted {
			continue
		}
		nodes++
		l := nm.latest
		cpu += l.CPUPercent
		mem += float64(l.MemoryBytes) / (1 << 20)
		disk += float64(l.DiskBytes) / (1 << 30)
		if b := nm.base; b != nil {
			delta := func(cur, old int64) float64 { return float64(max(cur-old, 0)) }
			dr += delta(l.DiskReadBytes, b.DiskReadBytes)
			dw += delta(l.DiskWriteBytes, b.DiskWriteBytes)
			dro += delta(l.DiskReadOps, b.DiskReadOps)
			dwo += delta(l.DiskWriteOps, b.DiskWriteOps)
			nin += delta(l.NetworkInBytes, b.NetworkInBytes)
			nout += delta(l.NetworkOutBytes, b.NetworkOutBytes)
		}
		base := l
		nm.base = &base
	}
	add := func(name string, v float64) {
		h.samples[name] = append(h.samples[name], asSample{Time: now, Value: v})
	}
	if nodes > 0 {
		k := float64(nodes)
		add(metricCPUPercent, cpu/k)
		add(metricMemoryBytes, mem/k)
		add(metricDiskBytes, disk/k)
		add(metricDiskReadBytes, dr)
		add(metricDiskWriteBytes, dw)
		add(metricDiskReadOps, dro)
		add(metricDiskWriteOps, dwo)
		add(metricNetworkInBytes, nin)
		add(metricNetworkOutBytes, nout)
		add(metricWallClockSeconds, k*period.Seconds())
	}
	add(metricSampleNodeCount, float64(nodes))
	add(metricActiveTasks, float64(c.Active))
	add(metricRunningTasks, float64(c.Running))
	add(metricPendingTasks, float64(c.Active+c.Running))
	add(metricSucceededTasks, float64(c.Succeeded))
	add(metricFailedTasks, float64(c.Failed))
	h.last = now
	cut := now.Add(-MetricsHistory)
	for name, v := range h.samples {
		i := 0
		for i < len(v) && v[i].Time.Before(cut) {
			i++
		}
		if i > 0 {
			h.samples[name] = append(v[:0:0], v[i:]...)
		}
	}
}

// runMetrics samples every pool each sample interval until the service
// stops.
func (s *Service) runMetrics() {
	defer s.wg.Done()
	for {
		t := s.cfg.Clock.NewTimer(s.sampleInterval())
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C():
		}
		s.mu.Lock()
		s.samplePoolsLocked()
		s.mu.Unlock()
	}
}
