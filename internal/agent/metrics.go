package agent

import (
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// metricsEvery bounds how often the agent reads the node's figures: syncs
// can follow each other within milliseconds while tasks end, and every one
// of them carries the latest sample.
const metricsEvery = 2 * time.Second

// metricsSampler measures the node for the server's pool metrics (the
// inputs of autoscale formulas). The platform part is readNodeFigures
// (metrics_linux.go; elsewhere nothing is measured).
type metricsSampler struct {
	mu   sync.Mutex
	dir  string // the node root: DiskBytes is what its file system uses
	at   time.Time
	cur  *protocol.NodeMetrics
	prev cpuTimes
}

// cpuTimes are the machine's busy and total CPU time, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// sample returns the node's metrics, measured again when the last
// measurement is older than metricsEvery; nil when nothing can be measured.
func (m *metricsSampler) sample() *protocol.NodeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.cur != nil && now.Sub(m.at) < metricsEvery {
		c := *m.cur
		return &c
	}
	f, cpu, ok := readNodeFigures(m.dir)
	if !ok {
		return nil
	}
	// CPU busy since the previous measurement (since boot the first time).
	if d := cpu.total - m.prev.total; cpu.total > m.prev.total && cpu.busy >= m.prev.busy {
		f.CPUPercent = 100 * float64(cpu.busy-m.prev.busy) / float64(d)
	}
	m.prev = cpu
	m.at, m.cur = now, &f
	c := f
	return &c
}
