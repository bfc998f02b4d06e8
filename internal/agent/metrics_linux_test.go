package agent

import "testing"

// TestMetricsSampler reads the machine's figures from /proc: memory and the
// node root's file system are in use, CPU is a percentage, and a second
// sample within metricsEvery is the cached one.
func TestMetricsSampler(t *testing.T) {
	t.Parallel()
	m := &metricsSampler{dir: t.TempDir()}
	first := m.sample()
	if first == nil {
		t.Fatal("no metrics on Linux")
	}
	if first.MemoryBytes <= 0 || first.DiskBytes <= 0 {
		t.Errorf("memory %d disk %d bytes, want both in use", first.MemoryBytes, first.DiskBytes)
	}
	if first.CPUPercent < 0 || first.CPUPercent > 100 {
		t.Errorf("cpu %v%%", first.CPUPercent)
	}
	if first.DiskReadOps < 0 || first.NetworkInBytes < 0 {
		t.Errorf("negative counters: %+v", first)
	}
	if again := m.sample(); *again != *first {
		t.Errorf("second sample %+v differs from the cached %+v", again, first)
	}
}
