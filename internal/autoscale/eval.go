package autoscale

import "strings"

func (e *env) eval(x expr) (value, error) {
	switch x := x.(type) {
	case *numberLit:
		return double(x.v), nil
	case *stringLit:
		return str(x.v), nil
	case *ident:
		return e.lookup(x)
	case *unary:
		v, err := e.eval(x.x)
		if err != nil {
			return value{}, err
		}
		return applyUnary(x, v)
	case *binary:
		l, err := e.eval(x.l)
		if err != nil {
			return value{}, err
		}
		r, err := e.eval(x.r)
		if err != nil {
			return value{}, err
		}
		return applyBinary(x, l, r)
	case *ternary:
		c, err := e.eval(x.cond)
		if err != nil {
			return value{}, err
		}
		if c.k != kDouble {
			return value{}, evalErrorf(x.p, "the condition of '?:' must be a double, not a %s", c.k)
		}
		// "nonzero is true, and zero is false"; only the chosen branch runs.
		if c.d != 0 {
			return e.eval(x.then)
		}
		return e.eval(x.els)
	case *call:
		return e.call(x)
	case *field:
		v, err := e.eval(x.x)
		if err != nil {
			return value{}, err
		}
		return timestampField(x, v)
	case *method:
		return e.sampleMethod(x)
	}
	panic("autoscale: unknown expression node")
}

func (e *env) lookup(id *ident) (value, error) {
	if v, ok := e.vars[id.name]; ok {
		// An alias reads the full name until the alias itself is assigned.
		return v, nil
	}
	switch id.name {
	case aliasDedicated:
		return e.vars[varTargetDedicated], nil
	case aliasLowPriority:
		return e.vars[varTargetLowPriority], nil
	}
	if d, ok := timeIntervals[id.name]; ok {
		return interval(d), nil
	}
	if strings.HasPrefix(id.name, "$") {
		if m, ok := metricVars[id.name[1:]]; ok {
			if m.plain == nil {
				return value{}, evalErrorf(id.p, "%s is a sampled metric: read it with a method such as %s.GetSample(TimeInterval_Minute * 5)", id.name, id.name)
			}
			return double(m.plain(e.in)), nil
		}
	}
	if deallocationOptions[id.name] {
		return str(id.name), nil
	}
	return value{}, evalErrorf(id.p, "undefined variable %s", id.name)
}

func timestampField(x *field, v value) (value, error) {
	if v.k != kTimestamp {
		return value{}, evalErrorf(x.p, "member %s needs a timestamp, not a %s", x.name, v.k)
	}
	t := v.t.UTC()
	switch x.name {
	case "year":
		return double(float64(t.Year())), nil
	case "month":
		return double(float64(t.Month())), nil
	case "day":
		return double(float64(t.Day())), nil
	case "weekday":
		// "1 for Monday": .NET's DayOfWeek numbering, Sunday is 0.
		return double(float64(t.Weekday())), nil
	case "hour":
		return double(float64(t.Hour())), nil
	case "minute":
		return double(float64(t.Minute())), nil
	case "second":
		return double(float64(t.Second())), nil
	}
	return value{}, evalErrorf(x.p, "timestamp has no member %s (year, month, day, weekday, hour, minute, second)", x.name)
}
