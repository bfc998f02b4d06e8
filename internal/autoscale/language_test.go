package autoscale

import (
	"math"
	"strings"
	"testing"
	"time"
)

// evalExpr evaluates one expression (with prior statements allowed, the last
// statement is the expression) and returns its formatted value and kind.
func evalExpr(t *testing.T, src string, in Inputs) (value, error) {
	t.Helper()
	f, err := Parse(src)
	if err != nil {
		return value{}, err
	}
	e := &env{in: &in, vars: map[string]value{
		varTargetDedicated:   double(in.TargetDedicatedNodes),
		varTargetLowPriority: double(in.TargetLowPriorityNodes),
		varDeallocation:      str("requeue"),
	}, assigned: map[string]bool{}, at: map[string]pos{}}
	last := f.stmts[len(f.stmts)-1]
	for _, st := range f.stmts[:len(f.stmts)-1] {
		if err := e.exec(st); err != nil {
			return value{}, err
		}
	}
	return e.eval(last.x)
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"1 + 2 * 3", "7"},
		{"(1 + 2) * 3", "9"},
		{"10 - 4 - 3", "3"},
		{"24 / 4 / 3", "2"},
		{"-2 * 3", "-6"},
		{"- -2", "2"},
		{"!0 + 1", "2"},
		{"!(0 + 1)", "0"},
		{"1 + 2 < 4", "1"},
		{"1 < 2 == 1", "1"},
		{"2 == 2 && 3 > 4", "0"},
		{"1 || 0 && 0", "1"},
		{"0 && 1 || 1", "1"},
		{"1 ? 2 : 3", "2"},
		{"0 ? 2 : 3", "3"},
		{"0 ? 1 : 0 ? 2 : 3", "3"},
		{"1 ? 0 ? 4 : 5 : 6", "5"},
		{"1 + 1 > 1 ? 10 : 20", "10"},
		{"1 - 1 ? 10 : 20", "20"},
		{"+3", "3"},
		{"1e3 + .5", "1000.5"},
		{"2.5E-1", "0.25"},
		{"1 != 2", "1"},
		{"3 >= 3", "1"},
		{"3 <= 2", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			v, err := evalExpr(t, tt.src, Inputs{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if got := v.format(); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
			}
		})
	}
}

// TestOperatorTypes walks the docs' "Operations" table: every listed
// combination works with the listed result type; others are errors.
func TestOperatorTypes(t *testing.T) {
	t.Parallel()
	pre := `v = $CPUPercent.GetSample(3); w = $CPUPercent.GetSample(3) * 2; ts = time("2026-11-25T13:00:00Z"); ` +
		`iv = TimeInterval_Minute; s = "abc"; u = $CPUPercent.GetSample(2); `
	in := Inputs{Now: now, Samples: map[string][]Sample{"CPUPercent": values(now, 1, 2, 3)}}
	ok := []struct{ src, want string }{
		{"3 + 4", "7"}, {"3 - 4", "-1"}, {"3 * 4", "12"}, {"3 / 4", "0.75"},
		{"2 * iv", "00:02:00"},
		{"v + 1", "[2,3,4]"}, {"v - 1", "[0,1,2]"}, {"v * 2", "[2,4,6]"}, {"v / 2", "[0.5,1,1.5]"},
		{"v + w", "[3,6,9]"}, {"w - v", "[1,2,3]"}, {"v * w", "[2,8,18]"}, {"w / v", "[2,2,2]"},
		{"iv * 3", "00:03:00"}, {"iv / 4", "00:00:15"},
		{"iv + iv", "00:02:00"}, {"iv - 2 * iv", "-00:01:00"},
		{"iv + ts", "2026-11-25T13:01:00.000Z"}, {"ts + iv", "2026-11-25T13:01:00.000Z"},
		{"ts - time(\"2026-11-24T12:00:00Z\")", "1.01:00:00"},
		{"-3", "-3"}, {"!3", "0"}, {"!0", "1"}, {"-iv", "-00:01:00"},
		{"1 < 2", "1"}, {"s < \"abd\"", "1"}, {"s == \"abc\"", "1"}, {"s != \"abc\"", "0"}, {"s >= \"b\"", "0"},
		{"ts > time(\"2026-01-01\")", "1"}, {"ts == ts", "1"},
		{"iv < TimeInterval_Hour", "1"}, {"iv == 60 * TimeInterval_Second", "1"},
		{"2 && 3", "1"}, {"2 && 0", "0"}, {"0 || 0", "0"}, {"0 || -1", "1"},
		{"TimeInterval_100ns", "00:00:00.0000001"}, {"TimeInterval_Week", "7.00:00:00"},
		{"TimeInterval_Year", "365.00:00:00"}, {"TimeInterval_Zero", "00:00:00"},
		{"TimeInterval_Millisecond * 1.5", "00:00:00.0015000"},
		{"TimeInterval_Microsecond", "00:00:00.0000010"},
		{"TimeInterval_Day + TimeInterval_Hour", "1.01:00:00"},
	}
	for _, tt := range ok {
		t.Run("OK/"+tt.src, func(t *testing.T) {
			v, err := evalExpr(t, pre+tt.src, in)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.format(); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
			}
		})
	}
	bad := []struct{ src, msg string }{
		{"1 + v", "operator + cannot be applied to double and doubleVec"},
		{"iv * iv", "operator * cannot be applied to timeinterval and timeinterval"},
		{"iv / iv", "timeinterval and timeinterval"},
		{"iv * 2 + 1", "timeinterval and double"},
		{"iv - ts", "timeinterval and timestamp"},
		{"ts - iv", "timestamp and timeinterval"},
		{"ts + ts", "timestamp and timestamp"},
		{"s + s", "string and string"},
		{"s + 1", "string and double"},
		{"v < 1", "operator < cannot be applied to doubleVec and double"},
		{"v == v", "doubleVec and doubleVec"},
		{"1 == s", "double and string"},
		{"ts < iv", "timestamp and timeinterval"},
		{"iv && 1", "operator && cannot be applied to timeinterval and double"},
		{"v || 1", "doubleVec and double"},
		{"s && s", "string and string"},
		{"-s", "operator - cannot be applied to a string"},
		{"!iv", "operator ! cannot be applied to a timeinterval"},
		{"-v", "operator - cannot be applied to a doubleVec"},
		{"!ts", "timestamp"},
		{"v + u", "doubleVec lengths differ: 3 and 2"},
		{"s ? 1 : 2", "the condition of '?:' must be a double, not a string"},
		{"v ? 1 : 2", "not a doubleVec"},
		{"ts.hours", "timestamp has no member hours"},
		{"iv.hour", "member hour needs a timestamp, not a timeinterval"},
	}
	for _, tt := range bad {
		t.Run("Err/"+tt.src, func(t *testing.T) {
			_, err := evalExpr(t, pre+tt.src, in)
			if err == nil {
				t.Fatalf("%s: no error", tt.src)
			}
			e := asError(t, err)
			if e.Code != CodeEvaluationError || !strings.Contains(errMessage(e), tt.msg) {
				t.Errorf("%s: error %v, want %q", tt.src, e, tt.msg)
			}
		})
	}
}

func TestTimestampFields(t *testing.T) {
	t.Parallel()
	ts := `t = time("2026-11-29T21:07:09.5Z"); ` // a Sunday
	for field, want := range map[string]string{
		"year": "2026", "month": "11", "day": "29", "weekday": "0", "hour": "21", "minute": "7", "second": "9",
	} {
		v, err := evalExpr(t, ts+"t."+field, Inputs{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if got := v.format(); got != want {
			t.Errorf("t.%s = %s, want %s", field, got, want)
		}
	}
	v, err := evalExpr(t, "time().weekday", Inputs{Now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	if err != nil || v.d != 1 {
		t.Errorf("Monday weekday = %v, %v; want 1", v.format(), err)
	}
}

func TestFormatDouble(t *testing.T) {
	t.Parallel()
	for d, want := range map[float64]string{
		0: "0", 1: "1", -2.5: "-2.5", 10 * 1.1: "11", 0.1 + 0.2: "0.3", 1e20: "1E+20", 1.5e-7: "1.5E-07",
		123456789012345: "123456789012345", 0.0001: "0.0001",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity", math.NaN(): "NaN",
	} {
		if got := formatDouble(d); got != want {
			t.Errorf("formatDouble(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	in := Inputs{Now: now, CurrentDedicatedNodes: 4, CurrentLowPriorityNodes: 5, PreemptedNodeCount: 1,
		TaskSlotsPerNode: 8, UsableNodeCount: 3, TargetDedicatedNodes: 6, TargetLowPriorityNodes: 7}
	tests := []struct{ src, want string }{
		{"$CurrentDedicatedNodes", "4"},
		{"$CurrentDedicated", "4"},
		{"$CurrentLowPriorityNodes", "5"},
		{"$PreemptedNodeCount", "1"},
		{"$TaskSlotsPerNode", "8"},
		{"$UsableNodeCount", "3"},
		{"$TargetDedicatedNodes", "6"},
		{"$TargetDedicated", "6"},
		{"$TargetLowPriorityNodes", "7"},
		{"$TargetLowPriority", "7"},
		{"$NodeDeallocationOption", "requeue"},
		{"$TargetDedicated = 2; $TargetDedicated", "2"},
		{"$TargetDedicated = 2; $TargetDedicatedNodes", "6"},
		{"x = 1; $x = 2; x", "1"}, // "$" is part of a user variable's name
		{"x = 1; $x = 2; $x", "2"},
		{"x = 1; x = x + 1; x", "2"},
		{"taskcompletion", "taskcompletion"},
		{"requeue = 3; requeue", "3"},
	}
	for _, tt := range tests {
		v, err := evalExpr(t, tt.src, in)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got := v.format(); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
		}
	}
	for src, msg := range map[string]string{
		"nope + 1":          "Line 1, Col 1: undefined variable nope",
		"1 + $nope":         "Line 1, Col 5: undefined variable $nope",
		"$CPUPercent":       "$CPUPercent is a sampled metric",
		"$PendingTasks * 2": "$PendingTasks is a sampled metric",
	} {
		_, err := evalExpr(t, src, in)
		if err == nil || !strings.Contains(errMessage(asError(t, err)), msg) {
			t.Errorf("%s: error %v, want %q", src, err, msg)
		}
	}
}

func TestResultTargets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src       string
		in        Inputs
		dedicated int
		low       int
		dealloc   string
		results   string
		err       string
	}{
		{src: "", in: Inputs{TargetDedicatedNodes: 3, TargetLowPriorityNodes: 2}, dedicated: 3, low: 2, dealloc: "requeue",
			results: "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=2;$NodeDeallocationOption=requeue"},
		// Azure's own evaluation of "$TargetDedicatedNodes=3" (azure-sdk-for-js and -python tests).
		{src: "$TargetDedicatedNodes=3", dedicated: 3, dealloc: "requeue",
			results: "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"},
		// ... and of "something_useless", which Azure accepts.
		{src: "something_useless", in: Inputs{TargetDedicatedNodes: 2}, dedicated: 2, dealloc: "requeue",
			results: "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"},
		{src: "$TargetDedicatedNodes = 2.9; $TargetLowPriorityNodes = -4", dedicated: 2, low: 0, dealloc: "requeue",
			results: "$TargetDedicatedNodes=2.9;$TargetLowPriorityNodes=-4;$NodeDeallocationOption=requeue"},
		{src: "$TargetDedicated = 5; $TargetDedicatedNodes = 7; $TargetLowPriority = 1", dedicated: 7, low: 1, dealloc: "requeue",
			results: "$TargetDedicatedNodes=7;$TargetLowPriorityNodes=1;$NodeDeallocationOption=requeue"},
		{src: "$TargetDedicatedNodes = 1e12", dedicated: math.MaxInt32, dealloc: "requeue"},
		{src: `$NodeDeallocationOption = "Terminate"`, dealloc: "terminate"},
		{src: "$NodeDeallocationOption = retaineddata", dealloc: "retaineddata"},
		{src: "$NodeDeallocationOption = requeue", dealloc: "requeue"},
		{src: "$NodeDeallocationOption = drain", err: "undefined variable drain"},
		{src: `$NodeDeallocationOption = "drain"`, err: "$NodeDeallocationOption must be one of"},
		{src: "$NodeDeallocationOption = 1", err: "$NodeDeallocationOption must be one of"},
		{src: "$TargetDedicatedNodes = time()", err: "$TargetDedicatedNodes must be a double, not a timestamp"},
		{src: "$TargetLowPriority = TimeInterval_Hour", err: "$TargetLowPriority must be a double, not a timeinterval"},
		{src: "$TargetDedicatedNodes = $PendingTasks.GetSample(1)", err: "must be a double, not a doubleVec"},
		{src: "a = 1;\n $TargetDedicatedNodes = 1/0", err: "Line 2, Col 2: $TargetDedicatedNodes is not a finite number: Infinity"},
		{src: "$TargetDedicatedNodes = 0/0", err: "not a finite number: NaN"},
		// stop() keeps what was assigned before it and skips the rest.
		{src: "$TargetDedicatedNodes = 4; a = 1; stop(); $TargetDedicatedNodes = 9; b = 2", dedicated: 4, dealloc: "requeue",
			results: "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;a=1"},
		{src: "x = 0 ? stop() : 3; $TargetDedicatedNodes = x", dedicated: 3, dealloc: "requeue"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			f := mustParse(t, tt.src)
			tt.in.Now = now
			res, err := f.Evaluate(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(errMessage(asError(t, err)), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.TargetDedicatedNodes != tt.dedicated || res.TargetLowPriorityNodes != tt.low || res.NodeDeallocationOption != tt.dealloc {
				t.Errorf("got %d %d %s, want %d %d %s", res.TargetDedicatedNodes, res.TargetLowPriorityNodes,
					res.NodeDeallocationOption, tt.dedicated, tt.low, tt.dealloc)
			}
			if tt.results != "" && res.Results != tt.results {
				t.Errorf("results %s, want %s", res.Results, tt.results)
			}
			if strings.Contains(tt.src, "stop()") && !strings.Contains(tt.src, "0 ?") != res.Stopped {
				t.Errorf("Stopped = %v", res.Stopped)
			}
		})
	}
}

// TestEvaluateErrorKeepsResults checks that a failed run still reports the
// variables computed before the failure, as Azure's autoScaleRun does.
func TestEvaluateErrorKeepsResults(t *testing.T) {
	t.Parallel()
	f := mustParse(t, "a = 2;\n  b = $CPUPercent.GetSample(TimeInterval_Minute * 10, 50);")
	res, err := f.Evaluate(Inputs{Now: now})
	e := asError(t, err)
	want := Error{Code: CodeInsufficientSampleData, Message: "Autoscale evaluation failed due to insufficient sample data",
		Values: []NameValue{{Name: "Message", Value: "Line 2, Col 7: Insufficient data from data set: $CPUPercent wanted 50%, received 0%"}}}
	if e.Code != want.Code || e.Message != want.Message || len(e.Values) != 1 || e.Values[0] != want.Values[0] {
		t.Errorf("error = %#v\nwant %#v", *e, want)
	}
	if res.Results != "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;a=2" {
		t.Errorf("results = %s", res.Results)
	}
	if !strings.Contains(e.Error(), "InsufficientSampleData") {
		t.Errorf("Error() = %s", e.Error())
	}
}

func TestFormulaConcurrentEvaluate(t *testing.T) {
	t.Parallel()
	f := mustParse(t, readFormula(t, "example2-task-based.formula"))
	in := Inputs{Now: now, Samples: map[string][]Sample{"PendingTasks": every(now, 5*time.Second, 30, 8)}}
	done := make(chan int)
	for range 8 {
		go func() {
			r, _ := f.Evaluate(in)
			done <- r.TargetDedicatedNodes
		}()
	}
	for range 8 {
		if got := <-done; got != 8 {
			t.Errorf("target = %d, want 8", got)
		}
	}
	if f.String() == "" {
		t.Error("String() is empty")
	}
}

func TestEvaluateZeroNowIsWallClock(t *testing.T) {
	t.Parallel()
	before := time.Now().UTC().Truncate(time.Millisecond)
	res, err := mustParse(t, "t = time(); $TargetDedicatedNodes = t.year").Evaluate(Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetDedicatedNodes != before.Year() && res.TargetDedicatedNodes != before.Year()+1 {
		t.Errorf("year = %d, want %d", res.TargetDedicatedNodes, before.Year())
	}
}
