package autoscale

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseEvaluate feeds arbitrary formulas to Parse and Evaluate: neither
// may panic, errors must be *Error, parsing must be deterministic, and a
// successful run must produce sane targets and a results string.
//
//	go test -run '^$' -fuzz FuzzParseEvaluate ./internal/autoscale
func FuzzParseEvaluate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "docs", "*.formula"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		"", ";", "x", "$TargetDedicatedNodes = 1/0", "a = 0/0; $TargetLowPriorityNodes = a",
		"v = $CPUPercent.GetSample(3); val(v, 2) + percentile(v, 50) + std(v, 1)",
		"t = time(\"2026-01-01\"); t.weekday + (time() - t > TimeInterval_Week)",
		"$NodeDeallocationOption = \"x\"", "stop(); $TargetDedicatedNodes = 3",
		"x = TimeInterval_Year * 1e300; y = time() + x",
		"x = -TimeInterval_Year * 1e300; $CPUPercent.GetSample(x, x, 50)",
		"$PendingTasks.GetSample(1e308)", "$PendingTasks.GetSample(-0)", "lg(-1)", "/* */ // \n",
		"$TargetDedicated = 1; $TargetLowPriority = $TargetDedicated * 2",
	} {
		f.Add(s)
	}
	in := Inputs{
		Now: now,
		Samples: map[string][]Sample{
			"CPUPercent":   every(now, 5*time.Second, 40, 55),
			"PendingTasks": values(now, 1, 0, 3, 7),
			"ActiveTasks":  every(now, 2*time.Minute, 10, 2),
		},
		CurrentDedicatedNodes: 3, TargetDedicatedNodes: 3, TaskSlotsPerNode: 4,
		Rand: func() float64 { return 0.5 },
	}
	f.Fuzz(func(t *testing.T, src string) {
		form, err := Parse(src)
		_, err2 := Parse(src)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Parse not deterministic: %v vs %v", err, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || len(e.Values) == 0 {
				t.Fatalf("Parse error %v (%T) is not a complete *Error", err, err)
			}
			return
		}
		res, err := form.Evaluate(in)
		if res.Results == "" {
			t.Fatal("empty results string")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || len(e.Values) == 0 {
				t.Fatalf("Evaluate error %v (%T) is not a complete *Error", err, err)
			}
			return
		}
		if res.TargetDedicatedNodes < 0 || res.TargetLowPriorityNodes < 0 {
			t.Fatalf("negative target: %+v", res)
		}
		if !deallocationOptions[res.NodeDeallocationOption] {
			t.Fatalf("bad deallocation option %q", res.NodeDeallocationOption)
		}
	})
}
