package autoscale

import (
	"strings"
	"testing"
)

func TestFunctions(t *testing.T) {
	t.Parallel()
	pre := "v = $CPUPercent.GetSample(4); e = $DiskBytes.GetSample(5); "
	in := Inputs{Now: now, Samples: map[string][]Sample{"CPUPercent": values(now, 2, 4, 4, 6)},
		Rand: func() float64 { return 0.25 }}
	tests := []struct{ src, want string }{
		// doubleVecList flattening: avg(v, 7) is avg(2,4,4,6,7).
		{"avg(v)", "4"}, {"avg(v, 7)", "4.6"}, {"avg(1, 2)", "1.5"}, {"avg(v, v)", "4"},
		{"len(v)", "4"}, {"len(v, 1, v)", "9"}, {"len(e)", "0"}, {"len()", "0"},
		{"max(v)", "6"}, {"max(v, 10)", "10"}, {"max(0, e)", "0"}, {"min(v)", "2"}, {"min(v, -1)", "-1"},
		{"norm(3, 4)", "5"}, {"norm(e)", "0"},
		{"range(v)", "4"}, {"range(5)", "0"},
		{"std(v)", "1.63299316185545"}, {"std(1)", "0"}, {"std(e)", "0"},
		{"sum(v)", "16"}, {"sum(v, 1)", "17"}, {"sum(e)", "0"},
		{"lg(8)", "3"}, {"lg(v)", "[1,2,2,2.58496250072116]"}, {"lg(2, 4)", "[1,2]"},
		{"ln(1)", "0"}, {"ln(v)", "[0.693147180559945,1.38629436111989,1.38629436111989,1.79175946922805]"},
		{"log(1000)", "3"}, {"log(v * 25)", "[1.69897000433602,2,2,2.17609125905568]"},
		{"log(0)", "-Infinity"},
		{"percentile(v, 50)", "4"}, {"percentile(v, 100)", "6"}, {"percentile(v, 0)", "2"},
		{"percentile(v, 75)", "4"}, {"percentile(v, 76)", "6"}, {"percentile(3, 90)", "3"},
		{"rand()", "0.25"},
		{"time()", "2026-11-25T13:00:00.000Z"},
		{`time("")`, "2026-11-25T13:00:00.000Z"},
		{`time("2026-03-01T08:30:00Z")`, "2026-03-01T08:30:00.000Z"},
		{`time("2026-03-01T08:30:00.25+02:00")`, "2026-03-01T06:30:00.250Z"},
		{`time("2026-03-01T08:30+01:00")`, "2026-03-01T07:30:00.000Z"},
		{`time("2026-03-01")`, "2026-03-01T00:00:00.000Z"},
		{`time("2026-03")`, "2026-03-01T00:00:00.000Z"},
		{`time("2026")`, "2026-01-01T00:00:00.000Z"},
		{`time("Sun, 01 Mar 2026 08:30:00 GMT")`, "2026-03-01T08:30:00.000Z"},
		{`time('Sun, 01 Mar 2026 08:30:00 +0100')`, "2026-03-01T07:30:00.000Z"},
		{"val(v, 0)", "2"}, {"val(v, 3)", "6"}, {"val(v, 1.9)", "4"}, {"val(7, 0)", "7"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
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
		{"avg(e)", "avg of an empty list"}, {"avg()", "avg of an empty list"},
		{"max(e)", "max of an empty list"}, {"min()", "min of an empty list"}, {"range(e)", "range of an empty list"},
		{"avg(time())", "avg takes doubles and doubleVecs, not a timestamp"},
		{`sum(1, "x")`, "sum takes doubles and doubleVecs, not a string"},
		{"len(TimeInterval_Hour)", "not a timeinterval"},
		{"lg()", "lg takes an argument"}, {"ln(time())", "not a timestamp"},
		{"percentile(v)", "percentile takes 2 arguments, not 1"},
		{"percentile(v, 101)", "percentile must be between 0 and 100"},
		{"percentile(v, -1)", "between 0 and 100"},
		{"percentile(e, 50)", "percentile of an empty doubleVec"},
		{`percentile("x", 50)`, "percentile needs a doubleVec, not a string"},
		{"percentile(v, v)", "percentile needs a double, not a doubleVec"},
		{"rand(1)", "rand takes 0 arguments, not 1"},
		{"stop(1)", "stop takes 0 arguments"},
		{"time(1)", "time needs a string, not a double"},
		{`time("a", "b")`, "time takes 1 arguments, not 2"},
		{`time("yesterday")`, `"yesterday" is not a W3C-DTF or RFC 1123 date and time`},
		{"val(v, 4)", "index 4 is out of range for a doubleVec of length 4"},
		{"val(v, -1)", "index -1 is out of range"},
		{"val(e, 0)", "out of range for a doubleVec of length 0"},
		{"val(v)", "val takes 2 arguments"},
		{"val(time(), 0)", "val needs a doubleVec, not a timestamp"},
	}
	for _, tt := range bad {
		t.Run("Err/"+tt.src, func(t *testing.T) {
			_, err := evalExpr(t, pre+tt.src, in)
			if err == nil {
				t.Fatal("no error")
			}
			if e := asError(t, err); e.Code != CodeEvaluationError || !strings.Contains(errMessage(e), tt.msg) {
				t.Errorf("error %v, want %q", e, tt.msg)
			}
		})
	}
}

func TestRandDefault(t *testing.T) {
	t.Parallel()
	for range 100 {
		v, err := evalExpr(t, "rand()", Inputs{Now: now})
		if err != nil || v.d < 0 || v.d >= 1 {
			t.Fatalf("rand() = %v, %v", v.d, err)
		}
	}
}
