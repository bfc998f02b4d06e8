package service

import (
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// fanInTasks is the size of BenchmarkDependencyFanIn's job.
const fanInTasks = 100_000

// BenchmarkDependencyFanIn measures what a completion costs in a job of
// 100,000 tasks with integer ids and one final task that depends on all of
// them through one range. The figure to watch is ns/completion: it must not
// grow with the number of tasks (no scan per completion).
//
//   - index: the dependency index alone (parentSatisfiedLocked per parent).
//   - service/deps: the whole path, store included: the tasks run on one
//     node of 256 slots whose agent (played by the benchmark through the
//     agent protocol's server side) completes 256 attempts per sync.
//   - service/nodeps: the same job without dependencies, the baseline.
//   - load/deps, load/nodeps: a restart that rebuilds the job when half of
//     its tasks completed and the other half wait, each for the previous
//     one (a chain), next to the final task's range.
func BenchmarkDependencyFanIn(b *testing.B) {
	b.Run("index", func(b *testing.B) {
		j := &jobState{account: depsAccount, doc: &azbatch.Job{ID: ptr("job"), UsesTaskDependencies: ptr(true), State: ptr(azbatch.JobStateActive)}}
		s := &Service{tasks: map[string]*taskState{}}
		completions := 0
		for b.Loop() {
			b.StopTimer()
			j.deps = nil
			final := &taskState{job: j, tid: "final", slots: 1}
			s.tasks[final.key()] = final
			s.jobDepsLocked(j).register(final, dependsOn(nil, [2]int32{1, fanInTasks}))
			ids := make([]string, fanInTasks)
			for i := range ids {
				ids[i] = strconv.Itoa(i + 1)
			}
			b.StartTimer()
			for _, id := range ids {
				s.parentSatisfiedLocked(j, id)
			}
			completions += fanInTasks
			if !final.queued {
				b.Fatal("the final task was not released")
			}
			j.queue, j.head = nil, 0
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(completions), "ns/completion")
	})
	for _, deps := range []bool{true, false} {
		name := "service/nodeps"
		if deps {
			name = "service/deps"
		}
		b.Run(name, func(b *testing.B) {
			completions := 0
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				bb := newDepsBundle(b, 256)
				bb.addJob("job", func(c *azbatch.CreateJobContent) { c.UsesTaskDependencies = ptr(deps) })
				tasks := make([]azbatch.CreateTaskContent, 0, fanInTasks+1)
				for i := 1; i <= fanInTasks; i++ {
					tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr(strconv.Itoa(i)), CommandLine: ptr("true")})
				}
				final := azbatch.CreateTaskContent{ID: ptr("final"), CommandLine: ptr("true")}
				if deps {
					final.DependsOn = dependsOn(nil, [2]int32{1, fanInTasks})
				}
				tasks = append(tasks, final)
				bb.addTasks("job", tasks)
				b.StartTimer()
				start := time.Now()
				done := 0
				for done < fanInTasks+1 {
					ids := bb.assigned()
					if len(ids) == 0 {
						b.Fatalf("nothing to run after %d completions", done)
					}
					bb.complete(exited(0), ids...)
					done += len(ids)
				}
				elapsed += time.Since(start)
				completions += done
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(completions), "ns/completion")
		})
	}
	for _, deps := range []bool{true, false} {
		name := "load/nodeps"
		if deps {
			name = "load/deps"
		}
		b.Run(name, func(b *testing.B) {
			bb := newDepsBundle(b, 256)
			bb.addJob("job", func(c *azbatch.CreateJobContent) { c.UsesTaskDependencies = ptr(deps) })
			tasks := make([]azbatch.CreateTaskContent, 0, fanInTasks+1)
			for i := 1; i <= fanInTasks; i++ {
				c := azbatch.CreateTaskContent{ID: ptr(strconv.Itoa(i)), CommandLine: ptr("true")}
				if deps && i > fanInTasks/2 {
					c.DependsOn = dependsOn([]string{strconv.Itoa(i - 1)})
				}
				tasks = append(tasks, c)
			}
			final := azbatch.CreateTaskContent{ID: ptr("final"), CommandLine: ptr("true")}
			if deps {
				final.DependsOn = dependsOn(nil, [2]int32{1, fanInTasks})
			}
			bb.addTasks("job", append(tasks, final))
			for done := 0; done < fanInTasks/2; {
				ids := bb.assigned()
				bb.complete(exited(0), ids...)
				done += len(ids)
			}
			for b.Loop() {
				bb.restart()
			}
		})
	}
}
