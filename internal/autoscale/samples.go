package autoscale

import (
	"math"
	"strconv"
	"time"
)

// SamplePeriod is how often Azure records a metric sample: "samples are
// obtained every 30 seconds". Sample percentages compare the samples present
// in a window with the window's length divided by this period.
const SamplePeriod = 30 * time.Second

// metricVar is a read-only service variable. All of them have sample
// methods; the node counts can also be used as plain doubles
// ("$CurrentDedicatedNodes * 1.1"), which plain provides.
type metricVar struct {
	plain func(*Inputs) float64
}

var metricVars = map[string]metricVar{
	"CPUPercent":       {},
	"WallClockSeconds": {},
	"MemoryBytes":      {},
	"DiskBytes":        {},
	"DiskReadBytes":    {},
	"DiskWriteBytes":   {},
	"DiskReadOps":      {},
	"DiskWriteOps":     {},
	"NetworkInBytes":   {},
	"NetworkOutBytes":  {},
	"SampleNodeCount":  {},
	"ActiveTasks":      {},
	"RunningTasks":     {},
	"PendingTasks":     {},
	"SucceededTasks":   {},
	"FailedTasks":      {},
	"TaskSlotsPerNode": {plain: func(in *Inputs) float64 { return in.TaskSlotsPerNode }},
	"CurrentDedicatedNodes": {plain: func(in *Inputs) float64 {
		return in.CurrentDedicatedNodes
	}},
	// CurrentDedicated is the old name of CurrentDedicatedNodes, still used
	// by the Az.Batch cmdlet examples ("$CurrentDedicated*1.1").
	"CurrentDedicated": {plain: func(in *Inputs) float64 {
		return in.CurrentDedicatedNodes
	}},
	"CurrentLowPriorityNodes": {plain: func(in *Inputs) float64 {
		return in.CurrentLowPriorityNodes
	}},
	"UsableNodeCount":    {plain: func(in *Inputs) float64 { return in.UsableNodeCount }},
	"PreemptedNodeCount": {plain: func(in *Inputs) float64 { return in.PreemptedNodeCount }},
}

func (e *env) sampleMethod(m *method) (value, error) {
	name := m.v.name
	if len(name) < 2 || name[0] != '$' {
		return value{}, evalErrorf(m.p, "%s has no method %s: only service-defined variables have sample methods", name, m.name)
	}
	if _, ok := metricVars[name[1:]]; !ok {
		return value{}, evalErrorf(m.p, "%s has no method %s: it is not a read-only service-defined variable", name, m.name)
	}
	args := make([]value, len(m.args))
	for i, a := range m.args {
		v, err := e.eval(a)
		if err != nil {
			return value{}, err
		}
		args[i] = v
	}
	h := history{name: name, samples: e.in.Samples[name[1:]], now: e.in.Now}
	switch m.name {
	case "GetSample":
		return h.getSample(m, args)
	case "GetSamplePercent":
		w, rest, err := h.window(m, args)
		if err != nil {
			return value{}, err
		}
		if len(rest) > 0 {
			return value{}, evalErrorf(m.p, "GetSamplePercent takes a start and an optional end time")
		}
		_, pct := h.in(w)
		return double(pct), nil
	case "GetSamplePeriod":
		if len(args) != 0 {
			return value{}, evalErrorf(m.p, "GetSamplePeriod takes no arguments")
		}
		return interval(SamplePeriod), nil
	case "Count":
		if len(args) != 0 {
			return value{}, evalErrorf(m.p, "Count takes no arguments")
		}
		return double(float64(len(h.samples))), nil
	case "HistoryBeginTime":
		if len(args) != 0 {
			return value{}, evalErrorf(m.p, "HistoryBeginTime takes no arguments")
		}
		if len(h.samples) == 0 {
			return value{}, evalErrorf(m.p, "%s has no samples", name)
		}
		return timestamp(h.samples[0].Time.UTC()), nil
	}
	return value{}, evalErrorf(m.p, "unknown method %s (GetSample, GetSamplePercent, GetSamplePeriod, Count, HistoryBeginTime)", m.name)
}

type history struct {
	name    string
	samples []Sample
	now     time.Time
}

// span is a window of history: samples with from < Time <= to.
type span struct{ from, to time.Time }

// window reads "(timestamp or timeinterval) startTime [, (timestamp or
// timeinterval) endTime]" from the front of args. An interval is a look-back
// from now; GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute) is
// the five minutes ending one minute ago, whichever order the two come in.
func (h history) window(m *method, args []value) (span, []value, error) {
	if len(args) == 0 {
		return span{}, nil, evalErrorf(m.p, "%s needs a start time", m.name)
	}
	a, ok := h.instant(args[0])
	if !ok {
		return span{}, nil, evalErrorf(m.args[0].at(), "%s needs a timestamp or timeinterval, not a %s", m.name, args[0].k)
	}
	b, rest := h.now, args[1:]
	if len(rest) > 0 {
		if t, ok := h.instant(rest[0]); ok {
			b, rest = t, rest[1:]
		}
	}
	if b.Before(a) {
		a, b = b, a
	}
	return span{a, b}, rest, nil
}

func (h history) instant(v value) (time.Time, bool) {
	switch v.k {
	case kInterval:
		return h.now.Add(-v.iv), true
	case kTimestamp:
		return v.t, true
	}
	return time.Time{}, false
}

// in returns the samples in w and the percentage of the expected samples
// (the window length over SamplePeriod) they make up, capped at 100.
func (h history) in(w span) ([]float64, float64) {
	var out []float64
	for _, s := range h.samples {
		if s.Time.After(w.from) && !s.Time.After(w.to) {
			out = append(out, s.Value)
		}
	}
	want := math.Floor(float64(w.to.Sub(w.from)) / float64(SamplePeriod))
	if want <= 0 {
		if len(out) > 0 {
			return out, 100
		}
		return out, 0
	}
	return out, math.Min(100, float64(len(out))/want*100)
}

// getSample implements GetSample(count), GetSample(start [, percent]) and
// GetSample(start, end [, percent]). With a percentage, too few samples
// fail the evaluation with InsufficientSampleData, worded as Azure's
// "Insufficient data from data set: $RunningTasks wanted 70%, received 50%".
func (h history) getSample(m *method, args []value) (value, error) {
	if len(args) == 1 && args[0].k == kDouble {
		n := args[0].d
		if !(n >= 0) {
			return value{}, evalErrorf(m.args[0].at(), "GetSample count must not be negative")
		}
		k := len(h.samples)
		if n < float64(k) {
			k = int(n)
		}
		out := make([]float64, k)
		for i, s := range h.samples[len(h.samples)-k:] {
			out[i] = s.Value
		}
		return vector(out), nil
	}
	w, rest, err := h.window(m, args)
	if err != nil {
		return value{}, err
	}
	got, pct := h.in(w)
	switch {
	case len(rest) > 1:
		return value{}, evalErrorf(m.p, "GetSample takes at most a start, an end and a sample percentage")
	case len(rest) == 1:
		if rest[0].k != kDouble {
			return value{}, evalErrorf(m.args[len(args)-1].at(), "GetSample's sample percentage must be a double, not a %s", rest[0].k)
		}
		if want := rest[0].d; pct < want {
			return value{}, newError(CodeInsufficientSampleData, "Autoscale evaluation failed due to insufficient sample data", m.v.p,
				"Insufficient data from data set: %s wanted %s%%, received %s%%", h.name, formatDouble(want), strconv.Itoa(int(pct)))
		}
	}
	if got == nil {
		got = []float64{}
	}
	return vector(got), nil
}
