package autoscale

import (
	"math"
	"strconv"
	"strings"
	"time"
)

type kind uint8

const (
	kDouble kind = iota
	kVec
	kString
	kTimestamp
	kInterval
)

func (k kind) String() string {
	return [...]string{"double", "doubleVec", "string", "timestamp", "timeinterval"}[k]
}

// value is one formula value. doubleVecList never exists as a value: function
// arguments are flattened into a doubleVec where the list is consumed.
type value struct {
	k   kind
	d   float64
	vec []float64
	s   string
	t   time.Time
	iv  time.Duration
}

func double(d float64) value         { return value{k: kDouble, d: d} }
func vector(v []float64) value       { return value{k: kVec, vec: v} }
func str(s string) value             { return value{k: kString, s: s} }
func timestamp(t time.Time) value    { return value{k: kTimestamp, t: t} }
func interval(d time.Duration) value { return value{k: kInterval, iv: d} }

func boolean(b bool) value {
	if b {
		return double(1)
	}
	return double(0)
}

// timeIntervals are the TimeInterval_ constants. A year is 365 days, as in
// .NET's TimeSpan arithmetic that the service is built on.
var timeIntervals = map[string]time.Duration{
	"TimeInterval_Zero":        0,
	"TimeInterval_100ns":       100 * time.Nanosecond,
	"TimeInterval_Microsecond": time.Microsecond,
	"TimeInterval_Millisecond": time.Millisecond,
	"TimeInterval_Second":      time.Second,
	"TimeInterval_Minute":      time.Minute,
	"TimeInterval_Hour":        time.Hour,
	"TimeInterval_Day":         24 * time.Hour,
	"TimeInterval_Week":        7 * 24 * time.Hour,
	"TimeInterval_Year":        365 * 24 * time.Hour,
}

// deallocationOptions are the values $NodeDeallocationOption accepts; the
// docs write them as bare words ("$NodeDeallocationOption = taskcompletion;").
var deallocationOptions = map[string]bool{
	"requeue": true, "terminate": true, "taskcompletion": true, "retaineddata": true,
}

// format renders a value as Azure does in autoScaleRun.results: doubles in
// shortest form ("1", "2.5"), timestamps as UTC ISO 8601 with milliseconds
// ("2016-10-13T19:18:47.805Z"), vectors in brackets ("[1,1,1]").
func (v value) format() string {
	switch v.k {
	case kDouble:
		return formatDouble(v.d)
	case kVec:
		parts := make([]string, len(v.vec))
		for i, d := range v.vec {
			parts[i] = formatDouble(d)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case kString:
		return v.s
	case kTimestamp:
		return v.t.UTC().Format("2006-01-02T15:04:05.000Z")
	default:
		return formatInterval(v.iv)
	}
}

// formatDouble mimics .NET's default double.ToString() (15 significant
// digits, "1E+20" exponents, "Infinity"), which is what the service prints:
// 10 * 1.1 is "11", not "11.000000000000002".
func formatDouble(d float64) string {
	switch {
	case math.IsInf(d, 1):
		return "Infinity"
	case math.IsInf(d, -1):
		return "-Infinity"
	case math.IsNaN(d):
		return "NaN"
	}
	return strings.ToUpper(strconv.FormatFloat(d, 'g', 15, 64))
}

// formatInterval writes a .NET TimeSpan's default form, [-][d.]hh:mm:ss[.fffffff],
// since the service renders timeintervals with TimeSpan.ToString().
func formatInterval(d time.Duration) string {
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = uint64(-d)
	}
	ticks := u / 100
	days := ticks / (24 * 3600 * 1e7)
	ticks -= days * 24 * 3600 * 1e7
	if days > 0 {
		b.WriteString(strconv.FormatUint(days, 10) + ".")
	}
	h, m, s := ticks/(3600*1e7), ticks/(60*1e7)%60, ticks/1e7%60
	frac := ticks % 1e7
	b.WriteString(pad2(h) + ":" + pad2(m) + ":" + pad2(s))
	if frac > 0 {
		f := strconv.FormatUint(frac, 10)
		b.WriteString("." + strings.Repeat("0", 7-len(f)) + f)
	}
	return b.String()
}

func pad2(n uint64) string {
	if n < 10 {
		return "0" + strconv.FormatUint(n, 10)
	}
	return strconv.FormatUint(n, 10)
}
