package autoscale

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// now is the fixed evaluation time of most tests: Wednesday 2026-11-25 13:00 UTC.
var now = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// every returns n samples of value v, one every SamplePeriod, the newest
// `lag` before at, oldest first as Inputs.Samples wants them.
func every(at time.Time, lag time.Duration, n int, v float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Time: at.Add(-lag - time.Duration(n-1-i)*SamplePeriod), Value: v}
	}
	return out
}

// values returns samples with the given values, one every SamplePeriod,
// the newest 5 seconds before at.
func values(at time.Time, vs ...float64) []Sample {
	out := every(at, 5*time.Second, len(vs), 0)
	for i, v := range vs {
		out[i].Value = v
	}
	return out
}

func readFormula(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t testing.TB, src string) *Formula {
	t.Helper()
	f, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return f
}

// asError unwraps an *Error, failing the test if err is anything else.
func asError(t testing.TB, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func errMessage(e *Error) string {
	if len(e.Values) == 0 {
		return ""
	}
	return e.Values[0].Value
}
