package service

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// idleProvider starts nothing: benchmarks of the service alone.
type idleProvider struct{}

func (idleProvider) Name() string                                   { return "idle" }
func (idleProvider) Start(context.Context, provider.NodeSpec) error { return nil }
func (idleProvider) Stop(context.Context, provider.NodeSpec) error  { return nil }
func (idleProvider) Images() []provider.Image                       { return nil }

func newBenchService(b *testing.B) *Service {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s, err := New(ctx, Config{Store: st, Provider: idleProvider{}, AccountURL: func(string) string { return "http://127.0.0.1:8080" }})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.EnsureAccount(ctx, "bench", ""); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkTaskAddCollection measures adding tasks 100 at a time to a job
// whose pool has no nodes (so the tasks stay queued), store included.
func BenchmarkTaskAddCollection(b *testing.B) {
	s := newBenchService(b)
	ctx := context.Background()
	if _, err := s.JobAdd(ctx, "bench", &azbatch.CreateJobContent{ID: ptr("job"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("nopool")}}); err != nil {
		b.Fatal(err)
	}
	n := 0
	b.ResetTimer()
	for b.Loop() {
		tasks := make([]azbatch.CreateTaskContent, 100)
		for i := range tasks {
			tasks[i] = azbatch.CreateTaskContent{ID: ptr(fmt.Sprintf("t%d", n)), CommandLine: ptr("/bin/sh -c 'echo hello world from a benchmark task'")}
			n++
		}
		res, err := s.TaskAddCollection(ctx, "bench", "job", tasks)
		if err != nil || *res[0].Status != azbatch.TaskAddStatusSuccess {
			b.Fatal(err, res[0].Error)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkTaskAddCollectionParallel is BenchmarkTaskAddCollection from
// several goroutines, as concurrent clients would call it.
func BenchmarkTaskAddCollectionParallel(b *testing.B) {
	s := newBenchService(b)
	ctx := context.Background()
	if _, err := s.JobAdd(ctx, "bench", &azbatch.CreateJobContent{ID: ptr("job"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("nopool")}}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tasks := make([]azbatch.CreateTaskContent, 100)
			for i := range tasks {
				tasks[i] = azbatch.CreateTaskContent{ID: ptr(fmt.Sprintf("t%d", next.Add(1))), CommandLine: ptr("/bin/sh -c 'echo hello world from a benchmark task'")}
			}
			if _, err := s.TaskAddCollection(ctx, "bench", "job", tasks); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(next.Load())/b.Elapsed().Seconds(), "tasks/s")
}
