package autoscale

import (
	"strings"
	"testing"
	"time"
)

func TestSampleMethods(t *testing.T) {
	t.Parallel()
	// Ten samples 1..10, one every 30 s, the newest 5 s ago; 20 samples of
	// MemoryBytes over the last 10 minutes with the last minute missing.
	in := Inputs{Now: now, Samples: map[string][]Sample{
		"PendingTasks": values(now, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
		"MemoryBytes":  every(now, 65*time.Second, 18, 100),
	}}
	tests := []struct{ src, want string }{
		// GetSample(count): the most recent samples, oldest first.
		{"$PendingTasks.GetSample(1)", "[10]"},
		{"$PendingTasks.GetSample(3)", "[8,9,10]"},
		{"$PendingTasks.GetSample(2.7)", "[9,10]"},
		{"$PendingTasks.GetSample(0)", "[]"},
		{"$PendingTasks.GetSample(100)", "[1,2,3,4,5,6,7,8,9,10]"},
		{"$CPUPercent.GetSample(5)", "[]"},
		// GetSample(look-back interval): samples newer than now - interval.
		{"$PendingTasks.GetSample(TimeInterval_Minute)", "[9,10]"},
		{"$PendingTasks.GetSample(TimeInterval_Second * 100)", "[7,8,9,10]"},
		{"$PendingTasks.GetSample(TimeInterval_Hour)", "[1,2,3,4,5,6,7,8,9,10]"},
		// (start, end) look-back range, in either order.
		{"$PendingTasks.GetSample(TimeInterval_Minute, 2 * TimeInterval_Minute)", "[7,8]"},
		{"$PendingTasks.GetSample(2 * TimeInterval_Minute, TimeInterval_Minute)", "[7,8]"},
		{"$PendingTasks.GetSample(TimeInterval_Minute * 0, TimeInterval_Minute * 10)", "[1,2,3,4,5,6,7,8,9,10]"},
		// Timestamps: absolute start (and end).
		{`$PendingTasks.GetSample(time("2026-11-25T12:58:00Z"))`, "[7,8,9,10]"},
		{`$PendingTasks.GetSample(time("2026-11-25T12:58:00Z"), time() + (-TimeInterval_Minute))`, "[7,8]"},
		{`$PendingTasks.GetSample(time("2026-11-25T12:58:00Z"), TimeInterval_Minute)`, "[7,8]"},
		// Percent requirements met.
		{"$PendingTasks.GetSample(TimeInterval_Minute * 5, 100)", "[1,2,3,4,5,6,7,8,9,10]"},
		{"$MemoryBytes.GetSample(TimeInterval_Minute * 10, 90)", "[100,100,100,100,100,100,100,100,100,100,100,100,100,100,100,100,100,100]"},
		{"$MemoryBytes.GetSample(TimeInterval_Minute * 10, TimeInterval_Minute * 2, 100)", "[100,100,100,100,100,100,100,100,100,100,100,100,100,100,100,100]"},
		{"$CPUPercent.GetSample(TimeInterval_Minute, 0)", "[]"},
		// GetSamplePercent.
		{"$PendingTasks.GetSamplePercent(TimeInterval_Minute * 5)", "100"},
		{"$PendingTasks.GetSamplePercent(TimeInterval_Minute * 10)", "50"},
		{"$MemoryBytes.GetSamplePercent(TimeInterval_Minute * 10)", "90"},
		{"$MemoryBytes.GetSamplePercent(TimeInterval_Minute * 0, TimeInterval_Minute * 10)", "90"},
		{"$CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)", "0"},
		{"$PendingTasks.GetSamplePercent(TimeInterval_Zero)", "0"},
		// GetSamplePeriod, Count, HistoryBeginTime.
		{"$PendingTasks.GetSamplePeriod()", "00:00:30"},
		{"$CPUPercent.GetSamplePeriod() * 2", "00:01:00"},
		{"$PendingTasks.Count()", "10"},
		{"$CPUPercent.Count()", "0"},
		{"$PendingTasks.HistoryBeginTime()", "2026-11-25T12:55:25.000Z"},
		{"time() - $PendingTasks.HistoryBeginTime() > TimeInterval_Minute * 4", "1"},
		// Node counts have sample methods as well as plain values.
		{"$CurrentDedicatedNodes.Count()", "0"},
		{"$PreemptedNodeCount.GetSample(1)", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			v, err := evalExpr(t, tt.src, in)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.format(); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
			}
		})
	}
	bad := []struct{ src, code, msg string }{
		{"$PendingTasks.GetSample(TimeInterval_Minute * 10, 60)", CodeInsufficientSampleData,
			"Line 1, Col 1: Insufficient data from data set: $PendingTasks wanted 60%, received 50%"},
		{"x = 1;\n   $MemoryBytes.GetSample(TimeInterval_Minute * 10, 95)", CodeInsufficientSampleData,
			"Line 2, Col 4: Insufficient data from data set: $MemoryBytes wanted 95%, received 90%"},
		{"$CPUPercent.GetSample(TimeInterval_Minute, 0.5)", CodeInsufficientSampleData, "$CPUPercent wanted 0.5%, received 0%"},
		{"$PendingTasks.GetSample(-1)", CodeEvaluationError, "GetSample count must not be negative"},
		{"$PendingTasks.GetSample()", CodeEvaluationError, "GetSample needs a start time"},
		{`$PendingTasks.GetSample("x")`, CodeEvaluationError, "GetSample needs a timestamp or timeinterval, not a string"},
		{"$PendingTasks.GetSample(1, 2)", CodeEvaluationError, "GetSample needs a timestamp or timeinterval, not a double"},
		{"$PendingTasks.GetSample(TimeInterval_Minute, TimeInterval_Hour, 1, 2)", CodeEvaluationError, "GetSample takes at most"},
		{`$PendingTasks.GetSample(TimeInterval_Minute, "50")`, CodeEvaluationError, "sample percentage must be a double, not a string"},
		{"$PendingTasks.GetSamplePercent()", CodeEvaluationError, "GetSamplePercent needs a start time"},
		{"$PendingTasks.GetSamplePercent(TimeInterval_Minute, 5)", CodeEvaluationError, "GetSamplePercent takes a start and an optional end time"},
		{"$PendingTasks.GetSamplePeriod(1)", CodeEvaluationError, "GetSamplePeriod takes no arguments"},
		{"$PendingTasks.Count(1)", CodeEvaluationError, "Count takes no arguments"},
		{"$PendingTasks.HistoryBeginTime(1)", CodeEvaluationError, "HistoryBeginTime takes no arguments"},
		{"$CPUPercent.HistoryBeginTime()", CodeEvaluationError, "$CPUPercent has no samples"},
		{"$PendingTasks.GetSamples(1)", CodeEvaluationError, "unknown method GetSamples"},
		{"x = 1; x.GetSample(1)", CodeEvaluationError, "x has no method GetSample: only service-defined variables have sample methods"},
		{"$x = 1; $x.Count()", CodeEvaluationError, "$x has no method Count: it is not a read-only service-defined variable"},
		{"$TargetDedicatedNodes.GetSample(1)", CodeEvaluationError, "not a read-only service-defined variable"},
	}
	for _, tt := range bad {
		t.Run("Err/"+tt.src, func(t *testing.T) {
			_, err := evalExpr(t, tt.src, in)
			if err == nil {
				t.Fatal("no error")
			}
			if e := asError(t, err); e.Code != tt.code || !strings.Contains(errMessage(e), tt.msg) {
				t.Errorf("error %v, want %s %q", e, tt.code, tt.msg)
			}
		})
	}
}
