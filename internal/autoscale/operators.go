package autoscale

import (
	"math"
	"time"
)

// The operator rules are the docs' "Operations" table, exactly: any operand
// combination not listed there is an evaluation error, so formulas that
// Azure rejects are rejected here too.

func applyUnary(x *unary, v value) (value, error) {
	switch {
	case x.op == "-" && v.k == kDouble:
		return double(-v.d), nil
	case x.op == "!" && v.k == kDouble:
		return boolean(v.d == 0), nil
	case x.op == "-" && v.k == kInterval:
		return interval(-v.iv), nil
	}
	return value{}, evalErrorf(x.p, "operator %s cannot be applied to a %s", x.op, v.k)
}

func applyBinary(x *binary, l, r value) (value, error) {
	switch x.op {
	case "+", "-", "*", "/":
		if v, ok := arithmetic(x.op, l, r); ok {
			if v.k == kVec && v.vec == nil {
				return value{}, evalErrorf(x.p, "doubleVec lengths differ: %d and %d", len(l.vec), len(r.vec))
			}
			return v, nil
		}
	case "<", "<=", "==", ">=", ">", "!=":
		if c, ok := compare(l, r); ok {
			return boolean(cmpHolds(x.op, c)), nil
		}
	case "&&", "||":
		if l.k == kDouble && r.k == kDouble {
			if x.op == "&&" {
				return boolean(l.d != 0 && r.d != 0), nil
			}
			return boolean(l.d != 0 || r.d != 0), nil
		}
	}
	return value{}, evalErrorf(x.p, "operator %s cannot be applied to %s and %s", x.op, l.k, r.k)
}

func arithmetic(op string, l, r value) (value, bool) {
	switch {
	case l.k == kDouble && r.k == kDouble:
		return double(arith(op, l.d, r.d)), true
	case l.k == kVec && r.k == kDouble:
		out := make([]float64, len(l.vec))
		for i, d := range l.vec {
			out[i] = arith(op, d, r.d)
		}
		return vector(out), true
	case l.k == kVec && r.k == kVec:
		if len(l.vec) != len(r.vec) {
			return vector(nil), true // length mismatch, reported by the caller
		}
		out := make([]float64, len(l.vec))
		for i := range l.vec {
			out[i] = arith(op, l.vec[i], r.vec[i])
		}
		return vector(out), true
	case l.k == kDouble && r.k == kInterval && op == "*":
		return interval(scale(r.iv, l.d)), true
	case l.k == kInterval && r.k == kDouble && (op == "*" || op == "/"):
		if op == "/" {
			return interval(scale(l.iv, 1/r.d)), true
		}
		return interval(scale(l.iv, r.d)), true
	case l.k == kInterval && r.k == kInterval && (op == "+" || op == "-"):
		if op == "-" {
			return interval(l.iv - r.iv), true
		}
		return interval(l.iv + r.iv), true
	case l.k == kInterval && r.k == kTimestamp && op == "+":
		return timestamp(r.t.Add(l.iv)), true
	case l.k == kTimestamp && r.k == kInterval && op == "+":
		return timestamp(l.t.Add(r.iv)), true
	case l.k == kTimestamp && r.k == kTimestamp && op == "-":
		return interval(l.t.Sub(r.t)), true
	}
	return value{}, false
}

func arith(op string, a, b float64) float64 {
	switch op {
	case "+":
		return a + b
	case "-":
		return a - b
	case "*":
		return a * b
	}
	return a / b
}

// scale multiplies an interval, saturating instead of overflowing so that
// huge factors cannot wrap around to a negative look-back.
func scale(d time.Duration, f float64) time.Duration {
	p := float64(d) * f
	switch {
	case math.IsNaN(p):
		return 0
	case p >= math.MaxInt64:
		return math.MaxInt64
	case p <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(p)
}

// compare orders two values of a comparable pair from the table; the bool is
// false for pairs the table does not list.
func compare(l, r value) (int, bool) {
	if l.k != r.k {
		return 0, false
	}
	switch l.k {
	case kDouble:
		switch {
		case l.d < r.d:
			return -1, true
		case l.d > r.d:
			return 1, true
		case l.d == r.d:
			return 0, true
		}
		return 2, true // NaN: unordered, only != holds
	case kString:
		return cmp3(l.s < r.s, l.s > r.s), true
	case kTimestamp:
		return l.t.Compare(r.t), true
	case kInterval:
		return cmp3(l.iv < r.iv, l.iv > r.iv), true
	}
	return 0, false
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func cmpHolds(op string, c int) bool {
	if c == 2 {
		return op == "!="
	}
	switch op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case "==":
		return c == 0
	case ">=":
		return c >= 0
	case ">":
		return c > 0
	}
	return c != 0
}
