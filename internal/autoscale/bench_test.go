package autoscale

import (
	"testing"
	"time"
)

// BenchmarkEvaluate runs the docs' task-based formula (Example 2) over a
// full 15-minute sample history, the typical per-pool evaluation.
func BenchmarkEvaluate(b *testing.B) {
	f := mustParse(b, readFormula(b, "example2-task-based.formula"))
	in := Inputs{Now: now, TargetDedicatedNodes: 4,
		Samples: map[string][]Sample{"PendingTasks": every(now, 5*time.Second, 120, 9)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Evaluate(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse parses the same formula, comments included.
func BenchmarkParse(b *testing.B) {
	src := readFormula(b, "example2-task-based.formula")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
