package autoscale

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDocExamples runs every formula from Azure's autoscale documentation
// (testdata/docs) against realistic pool inputs.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	monday := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	friday10 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	saturday10 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	docTime := time.Date(2016, 10, 13, 19, 18, 47, 805e6, time.UTC)

	tests := []struct {
		name      string
		file      string
		in        Inputs
		dedicated int
		low       int
		dealloc   string
		results   string // checked when not empty
		errCode   string // expected *Error code from Parse or Evaluate
		errMsg    string // substring of the error's Message value
	}{
		{name: "PendingTasksAverage", file: "sample-pending-tasks.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PendingTasks": values(now, 10, 12, 14, 16, 18, 20)}},
			dedicated: 15, dealloc: "taskcompletion",
			results: "$TargetDedicatedNodes=15;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;" +
				"maxNumberofVMs=25;pendingTaskSamplePercent=100;pendingTaskSamples=15;startingNumberOfVMs=1"},
		{name: "PendingTasksNoSamplesStartsWithOne", file: "sample-pending-tasks.formula",
			in: Inputs{Now: now}, dedicated: 1, dealloc: "taskcompletion"},
		{name: "PendingTasksCappedAt25", file: "sample-pending-tasks.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PendingTasks": every(now, 5*time.Second, 6, 300)}},
			dedicated: 25, dealloc: "taskcompletion"},
		{name: "PendingTasksTooFewSamples", file: "sample-pending-tasks.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PendingTasks": values(now, 40, 40, 40, 40)}},
			dedicated: 1, dealloc: "taskcompletion"},
		{name: "PreemptedReplacedByDedicated", file: "sample-preempted-nodes.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PreemptedNodeCount": every(now, 5*time.Second, 6, 3)}},
			dedicated: 3, low: 22, dealloc: "taskcompletion"},
		{name: "PreemptedNone", file: "sample-preempted-nodes.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PreemptedNodeCount": every(now, 5*time.Second, 6, 0)}},
			dedicated: 0, low: 25, dealloc: "taskcompletion"},
		{name: "StatementFormPlaceholder", file: "statement-form.invalid.formula",
			errCode: CodeSyntaxError, errMsg: "Line 3, Col 18: unknown function function"},
		{name: "StatementChainPlaceholder", file: "statement-chain.invalid.formula",
			errCode: CodeSyntaxError, errMsg: "unknown function function1"},
		{name: "GetSampleFiveMinutes", file: "getsample-cpu-5min.formula",
			in:        Inputs{Now: now, TargetDedicatedNodes: 2, Samples: map[string][]Sample{"CPUPercent": every(now, time.Minute, 20, 50)}},
			dedicated: 2, dealloc: "requeue",
			results: "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"},
		{name: "GetSampleLookBackRange", file: "getsample-range.formula",
			in:      Inputs{Now: now, Samples: map[string][]Sample{"RunningTasks": every(now, 0, 40, 1)}},
			dealloc: "requeue",
			// The docs show this statement yielding "[1,1,1,1,1,1,1,1,1,1]".
			results: "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;" +
				"$runningTasksSample=[1,1,1,1,1,1,1,1,1,1]"},
		{name: "GetSampleRangePercentMet", file: "getsample-range-percent.formula",
			in:      Inputs{Now: now, Samples: map[string][]Sample{"RunningTasks": every(now, 0, 10, 2)}},
			dealloc: "requeue"},
		{name: "GetSampleRangePercentMissed", file: "getsample-range-percent.formula",
			in:      Inputs{Now: now, Samples: map[string][]Sample{"RunningTasks": every(now, 0, 2, 2)}},
			errCode: CodeInsufficientSampleData,
			errMsg:  "Line 3, Col 23: Insufficient data from data set: $RunningTasks wanted 75%, received 0%"},
		// "$CPUPercent.GetSample(TimeInterval_Minute * 10) would return 20
		// samples ... If the last minute of history was not available,
		// however, only 18 samples would be returned. In this case ... 95
		// would fail because only 90 percent of the samples are available.
		// ... 80 would succeed."
		{name: "NinetyPercentFailsAt95", file: "getsample-cpu-10min-95.formula",
			in:      Inputs{Now: now, Samples: map[string][]Sample{"CPUPercent": every(now, 75*time.Second, 18, 40)}},
			errCode: CodeInsufficientSampleData,
			errMsg:  "Insufficient data from data set: $CPUPercent wanted 95%, received 90%"},
		{name: "NinetyPercentPassesAt80", file: "getsample-cpu-10min-80.formula",
			in:      Inputs{Now: now, Samples: map[string][]Sample{"CPUPercent": every(now, 75*time.Second, 18, 40)}},
			dealloc: "requeue"},
		{name: "WriteStep1HighCPU", file: "write-cpu-step1.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 10, TargetDedicatedNodes: 10,
				Samples: map[string][]Sample{"CPUPercent": every(now, 5*time.Second, 20, 85)}},
			dedicated: 10, dealloc: "requeue",
			results: "$TargetDedicatedNodes=10;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;$totalDedicatedNodes=11"},
		{name: "WriteCompleteHighCPUGrows", file: "write-cpu-complete-2019.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 10,
				Samples: map[string][]Sample{"CPUPercent": every(now, 5*time.Second, 120, 85)}},
			dedicated: 11, dealloc: "requeue"},
		{name: "WriteCompleteLowCPUShrinks", file: "write-cpu-complete-2019.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 10,
				Samples: map[string][]Sample{"CPUPercent": every(now, 5*time.Second, 120, 0.1)}},
			dedicated: 9, dealloc: "requeue"},
		{name: "WriteCompleteCappedAt400", file: "write-cpu-complete-2019.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 390,
				Samples: map[string][]Sample{"CPUPercent": every(now, 5*time.Second, 120, 85)}},
			dedicated: 400, dealloc: "requeue"},
		{name: "WriteComplete2021MissingSemicolon", file: "write-cpu-complete-2021.invalid.formula",
			errCode: CodeSyntaxError, errMsg: `Line 10, Col 1: expected ';' but found "$NodeDeallocationOption"`},
		{name: "MondayFive", file: "dotnet-monday.formula", in: Inputs{Now: monday}, dedicated: 5, dealloc: "requeue"},
		{name: "WednesdayOne", file: "dotnet-monday.formula", in: Inputs{Now: now}, dedicated: 1, dealloc: "requeue"},
		{name: "PythonAliasWorkingHours", file: "python-working-hours.formula", in: Inputs{Now: friday10},
			dedicated: 20, dealloc: "requeue",
			results: "$TargetDedicatedNodes=20;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;" +
				"$curTime=2026-11-27T10:00:00.000Z;$isWeekday=1;$isWorkingWeekdayHour=1;$workHours=1"},
		{name: "PythonAliasWeekend", file: "python-working-hours.formula", in: Inputs{Now: saturday10},
			dedicated: 10, dealloc: "requeue"},
		{name: "EvaluateZero", file: "evaluate-zero.formula", in: Inputs{Now: now, TargetDedicatedNodes: 3},
			dedicated: 0, dealloc: "requeue"},
		{name: "EvaluateCurrent", file: "evaluate-current.formula", in: Inputs{Now: now, CurrentDedicatedNodes: 7},
			dedicated: 7, dealloc: "requeue"},
		// The docs' sample output for this formula, at its timestamp, plus
		// $TargetLowPriorityNodes, which today's service always reports.
		{name: "EvaluateDocOutput", file: "evaluate-myformula.formula", in: Inputs{Now: docTime},
			dedicated: 10, dealloc: "requeue",
			results: "$TargetDedicatedNodes=10;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;" +
				"$curTime=2016-10-13T19:18:47.805Z;$isWeekday=1;$isWorkingWeekdayHour=0;$workHours=0"},
		{name: "Example1WorkingHours", file: "example1-time-based.formula", in: Inputs{Now: friday10},
			dedicated: 20, dealloc: "taskcompletion"},
		{name: "Example1Evening", file: "example1-time-based.formula", in: Inputs{Now: time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)},
			dedicated: 10, dealloc: "taskcompletion"},
		{name: "Example1Weekend", file: "example1-time-based.formula", in: Inputs{Now: saturday10},
			dedicated: 10, dealloc: "taskcompletion"},
		{name: "Example1MountainTime", file: "example1-mdt.formula", in: Inputs{Now: now},
			dealloc: "requeue",
			results: "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;$curTime=2026-11-25T07:00:00.000Z"},
		{name: "Example2Pending", file: "example2-task-based.formula",
			in:        Inputs{Now: now, TargetDedicatedNodes: 2, Samples: map[string][]Sample{"PendingTasks": every(now, 5*time.Second, 30, 8)}},
			dedicated: 8, dealloc: "taskcompletion"},
		{name: "Example2LatestAboveAverage", file: "example2-task-based.formula",
			in: Inputs{Now: now, TargetDedicatedNodes: 2, Samples: map[string][]Sample{
				"PendingTasks": append(every(now.Add(-30*time.Second), 5*time.Second, 29, 4), Sample{Time: now.Add(-5 * time.Second), Value: 12})}},
			dedicated: 12, dealloc: "taskcompletion"},
		{name: "Example2NoSamplesHalves", file: "example2-task-based.formula",
			in: Inputs{Now: now, TargetDedicatedNodes: 6}, dedicated: 3, dealloc: "taskcompletion"},
		{name: "Example2CappedAt20", file: "example2-task-based.formula",
			in:        Inputs{Now: now, Samples: map[string][]Sample{"PendingTasks": every(now, 5*time.Second, 30, 50)}},
			dedicated: 20, dealloc: "taskcompletion"},
		{name: "Example3Grows", file: "example3-parallel-tasks.formula",
			in:        Inputs{Now: now, TargetDedicatedNodes: 1, Samples: map[string][]Sample{"ActiveTasks": every(now, 5*time.Second, 30, 10)}},
			dedicated: 3, dealloc: "taskcompletion",
			results: "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;" +
				"$cores=4;$extraVMs=2.25;$samples=100;$targetVMs=3.25;$tasks=10"},
		{name: "Example3Shrinks", file: "example3-parallel-tasks.formula",
			in:        Inputs{Now: now, TargetDedicatedNodes: 3, Samples: map[string][]Sample{"ActiveTasks": every(now, 5*time.Second, 30, 5)}},
			dedicated: 2, dealloc: "taskcompletion"},
		{name: "Example3NoSamples", file: "example3-parallel-tasks.formula",
			in: Inputs{Now: now, TargetDedicatedNodes: 2}, dedicated: 0, dealloc: "taskcompletion"},
		{name: "Example4Startup", file: "example4-initial-size.formula",
			in: Inputs{Now: time.Date(2026, 11, 25, 12, 5, 0, 0, time.UTC)}, dedicated: 4, dealloc: "requeue"},
		{name: "Example4IdleScalesToZero", file: "example4-initial-size.formula",
			in: Inputs{Now: now, Samples: map[string][]Sample{
				"RunningTasks": every(now, 5*time.Second, 120, 0), "ActiveTasks": every(now, 5*time.Second, 120, 0)}},
			dedicated: 0, dealloc: "requeue"},
		{name: "Example4BusyKeepsFour", file: "example4-initial-size.formula",
			in: Inputs{Now: now, Samples: map[string][]Sample{
				"RunningTasks": every(now, 5*time.Second, 120, 3), "ActiveTasks": every(now, 5*time.Second, 120, 0)}},
			dedicated: 4, dealloc: "requeue"},
		{name: "Example4MissingHistory", file: "example4-initial-size.formula",
			in: Inputs{Now: now, Samples: map[string][]Sample{
				"RunningTasks": every(now, 5*time.Second, 40, 3), "ActiveTasks": every(now, 5*time.Second, 120, 0)}},
			errCode: CodeInsufficientSampleData, errMsg: "$RunningTasks wanted 50%, received 33%"},
		// Test-AzBatchAutoScale shows "$TargetDedicated=5;$NodeDeallocationOption=
		// requeue;totalNodes=5" for this formula on a pool without samples.
		{name: "PowerShellNoSamples", file: "powershell-cpu.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 3}, dedicated: 5, dealloc: "requeue",
			results: "$TargetDedicatedNodes=5;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;totalNodes=5"},
		{name: "PowerShellBusy", file: "powershell-cpu.formula",
			in: Inputs{Now: now, CurrentDedicatedNodes: 20,
				Samples: map[string][]Sample{"CPUPercent": every(now, 5*time.Second, 20, 90)}},
			dedicated: 22, dealloc: "requeue"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse(readFormula(t, tt.file))
			var res Result
			if err == nil {
				res, err = f.Evaluate(tt.in)
			}
			if tt.errCode != "" {
				if err == nil {
					t.Fatalf("no error, want %s; results %s", tt.errCode, res.Results)
				}
				e := asError(t, err)
				if e.Code != tt.errCode || !strings.Contains(errMessage(e), tt.errMsg) {
					t.Fatalf("error = %v, want code %s with %q", e, tt.errCode, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.TargetDedicatedNodes != tt.dedicated || res.TargetLowPriorityNodes != tt.low || res.NodeDeallocationOption != tt.dealloc {
				t.Errorf("got dedicated=%d low=%d dealloc=%s, want %d %d %s; results %s",
					res.TargetDedicatedNodes, res.TargetLowPriorityNodes, res.NodeDeallocationOption,
					tt.dedicated, tt.low, tt.dealloc, res.Results)
			}
			if tt.results != "" && res.Results != tt.results {
				t.Errorf("results\n got %s\nwant %s", res.Results, tt.results)
			}
		})
	}
	// Every copied doc formula must have a case.
	files, _ := filepath.Glob(filepath.Join("testdata", "docs", "*.formula"))
	for _, p := range files {
		if !seen[filepath.Base(p)] {
			t.Errorf("%s has no test case", p)
		}
	}
	if len(files) == 0 {
		t.Fatal("no doc formulas found")
	}
}
