package autoscale

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"
)

// fn is a built-in function: it gets the call (for positions) and evaluated
// arguments.
type fn func(e *env, c *call, args []value) (value, error)

// functions is the docs' function table. Parse rejects calls to anything else.
var functions map[string]fn

func init() {
	functions = map[string]fn{
		"avg":        reduce(func(v []float64) float64 { return sum(v) / float64(len(v)) }, true),
		"len":        reduce(func(v []float64) float64 { return float64(len(v)) }, false),
		"max":        reduce(maxOf, true),
		"min":        reduce(minOf, true),
		"norm":       reduce(norm, false),
		"range":      reduce(func(v []float64) float64 { return maxOf(v) - minOf(v) }, true),
		"std":        reduce(stddev, false),
		"sum":        reduce(sum, false),
		"lg":         logFn(math.Log2),
		"ln":         logFn(math.Log),
		"log":        logFn(math.Log10),
		"percentile": percentile,
		"rand":       randFn,
		"stop":       stopFn,
		"time":       timeFn,
		"val":        val,
	}
}

// flatten turns a doubleVecList — "any combination of double and doubleVec"
// — into one doubleVec: avg(v, 7) is avg(1,2,3,7) when v = [1,2,3].
func flatten(c *call, args []value) ([]float64, error) {
	var out []float64
	for i, a := range args {
		switch a.k {
		case kDouble:
			out = append(out, a.d)
		case kVec:
			out = append(out, a.vec...)
		default:
			return nil, evalErrorf(c.args[i].at(), "%s takes doubles and doubleVecs, not a %s", c.name, a.k)
		}
	}
	return out, nil
}

// reduce makes a doubleVecList -> double function. nonEmpty functions have
// no value for an empty list (there is no average of nothing) and fail.
func reduce(f func([]float64) float64, nonEmpty bool) fn {
	return func(_ *env, c *call, args []value) (value, error) {
		v, err := flatten(c, args)
		if err != nil {
			return value{}, err
		}
		if nonEmpty && len(v) == 0 {
			return value{}, evalErrorf(c.p, "%s of an empty list", c.name)
		}
		return double(f(v)), nil
	}
}

func sum(v []float64) float64 {
	s := 0.0
	for _, d := range v {
		s += d
	}
	return s
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, d := range v[1:] {
		m = math.Max(m, d)
	}
	return m
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, d := range v[1:] {
		m = math.Min(m, d)
	}
	return m
}

func norm(v []float64) float64 {
	s := 0.0
	for _, d := range v {
		s += d * d
	}
	return math.Sqrt(s)
}

// stddev is the sample standard deviation (n-1 denominator), per the docs;
// with fewer than two values there is no spread and it is 0.
func stddev(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	mean := sum(v) / float64(len(v))
	ss := 0.0
	for _, d := range v {
		ss += (d - mean) * (d - mean)
	}
	return math.Sqrt(ss / float64(len(v)-1))
}

// logFn is lg, ln or log: a double gives a double; a doubleVec (or a list of
// several arguments) gives the component-wise doubleVec, as documented.
func logFn(f func(float64) float64) fn {
	return func(_ *env, c *call, args []value) (value, error) {
		if len(args) == 1 && args[0].k == kDouble {
			return double(f(args[0].d)), nil
		}
		if len(args) == 0 {
			return value{}, evalErrorf(c.p, "%s takes an argument", c.name)
		}
		v, err := flatten(c, args)
		if err != nil {
			return value{}, err
		}
		out := make([]float64, len(v))
		for i, d := range v {
			out[i] = f(d)
		}
		return vector(out), nil
	}
}

func arity(c *call, args []value, n int) error {
	if len(args) != n {
		return evalErrorf(c.p, "%s takes %d arguments, not %d", c.name, n, len(args))
	}
	return nil
}

func asVec(c *call, v value, i int) ([]float64, error) {
	switch v.k {
	case kVec:
		return v.vec, nil
	case kDouble:
		return []float64{v.d}, nil
	}
	return nil, evalErrorf(c.args[i].at(), "%s needs a doubleVec, not a %s", c.name, v.k)
}

func asDouble(c *call, v value, i int) (float64, error) {
	if v.k != kDouble {
		return 0, evalErrorf(c.args[i].at(), "%s needs a double, not a %s", c.name, v.k)
	}
	return v.d, nil
}

// percentile(v, p) returns an element of v: the nearest-rank p-th percentile
// (p in 0..100), so the result is always one of the samples.
func percentile(_ *env, c *call, args []value) (value, error) {
	if err := arity(c, args, 2); err != nil {
		return value{}, err
	}
	v, err := asVec(c, args[0], 0)
	if err != nil {
		return value{}, err
	}
	p, err := asDouble(c, args[1], 1)
	if err != nil {
		return value{}, err
	}
	if len(v) == 0 {
		return value{}, evalErrorf(c.p, "percentile of an empty doubleVec")
	}
	if !(p >= 0 && p <= 100) {
		return value{}, evalErrorf(c.args[1].at(), "percentile must be between 0 and 100, not %s", formatDouble(p))
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return double(s[max(rank-1, 0)]), nil
}

func randFn(e *env, c *call, args []value) (value, error) {
	if err := arity(c, args, 0); err != nil {
		return value{}, err
	}
	if e.in.Rand != nil {
		return double(e.in.Rand()), nil
	}
	return double(rand.Float64()), nil
}

// stopFn ends the evaluation; the assignments made so far stand.
func stopFn(_ *env, c *call, args []value) (value, error) {
	if err := arity(c, args, 0); err != nil {
		return value{}, err
	}
	return value{}, errStop
}

// timeLayouts are W3C-DTF (the ISO 8601 profile: year, year-month, date,
// date with hours and minutes, seconds, fractions) and RFC 1123, the formats
// the docs name for time(string).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
	"2006-01",
	"2006",
	http.TimeFormat,
	time.RFC1123,
	time.RFC1123Z,
}

func timeFn(e *env, c *call, args []value) (value, error) {
	if len(args) == 0 {
		return timestamp(e.in.Now.UTC()), nil
	}
	if err := arity(c, args, 1); err != nil {
		return value{}, err
	}
	if args[0].k != kString {
		return value{}, evalErrorf(c.args[0].at(), "time needs a string, not a %s", args[0].k)
	}
	if args[0].s == "" {
		return timestamp(e.in.Now.UTC()), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, args[0].s); err == nil {
			return timestamp(t.UTC()), nil
		}
	}
	return value{}, evalErrorf(c.args[0].at(), "%q is not a W3C-DTF or RFC 1123 date and time", args[0].s)
}

// val(v, i) is v[i], zero-based; i is truncated to an integer.
func val(_ *env, c *call, args []value) (value, error) {
	if err := arity(c, args, 2); err != nil {
		return value{}, err
	}
	v, err := asVec(c, args[0], 0)
	if err != nil {
		return value{}, err
	}
	i, err := asDouble(c, args[1], 1)
	if err != nil {
		return value{}, err
	}
	if !(i >= 0 && i < float64(len(v))) {
		return value{}, evalErrorf(c.args[1].at(), "index %s is out of range for a doubleVec of length %d", formatDouble(i), len(v))
	}
	return double(v[int(i)]), nil
}

func (e *env) call(c *call) (value, error) {
	args := make([]value, len(c.args))
	for i, a := range c.args {
		v, err := e.eval(a)
		if err != nil {
			return value{}, err
		}
		args[i] = v
	}
	return functions[c.name](e, c, args)
}
