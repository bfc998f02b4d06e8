package service

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// SpotReplaceDelayDefault is how long a preempted node stays in the
// preempted state before Kiln finds it "replacement capacity" and
// reinitializes it.
const SpotReplaceDelayDefault = 30 * time.Second

// SpotConfig simulates the preemption of Spot/low-priority nodes. Azure
// evicts such VMs whenever it needs the capacity back; Kiln's nodes never
// have to go, so preemption happens only as configured here, or on demand
// (Service.PreemptNodes, `kiln node preempt`).
type SpotConfig struct {
	// Rate is the probability that a given low-priority node is preempted
	// within one minute (0, the default: never at random; 1: within the
	// first second). A node's mean time to preemption is about 1/Rate
	// minutes.
	Rate float64
	// Schedule lists offsets from the server's start: at each, one
	// low-priority node (chosen at random among the running ones of every
	// pool) is preempted; an entry that finds none waits for one.
	Schedule []time.Duration
	// ReplaceDelay is how long a preempted node stays preempted before it
	// is reinitialized under the same id (default SpotReplaceDelayDefault).
	ReplaceDelay time.Duration
	// Rand returns a number in [0, 1); default math/rand/v2. Tests inject
	// their own.
	Rand func() float64
}

// ParseSpotSchedule parses a --spot-preemption-schedule value: a
// comma-separated list of Go durations after the server's start, such as
// "30s,2m,2m,10m" (a duration listed twice preempts two nodes then).
func ParseSpotSchedule(v string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("spot preemption schedule: %q is not a duration such as 90s or 5m", f)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// spotModel decides which nodes are preempted at random or by schedule. It
// is a pure function of its inputs (the time, the candidates and the random
// source), so tests drive it with their own clock and numbers.
type spotModel struct {
	rate     float64
	schedule []time.Duration
	start    time.Time
	next     int       // first schedule entry not yet fired
	last     time.Time // previous step (zero: none yet)
}

func newSpotModel(cfg SpotConfig, start time.Time) *spotModel {
	return &spotModel{rate: cfg.Rate, schedule: cfg.Schedule, start: start}
}

// perNode is the probability that a node is preempted during dt when the
// probability per minute is rate: 1 - (1-rate)^(dt/1m).
func (m *spotModel) perNode(dt time.Duration) float64 {
	switch {
	case m.rate <= 0 || dt <= 0:
		return 0
	case m.rate >= 1:
		return 1
	}
	return 1 - math.Pow(1-m.rate, dt.Minutes())
}

// step returns the candidates (node ids, in a stable order) to preempt at
// now: each with the rate's probability for the time since the previous
// step, plus one at random for every schedule entry that has come due (an
// entry due while there is no candidate left waits for the next step).
func (m *spotModel) step(now time.Time, candidates []string, rnd func() float64) []string {
	var out []string
	picked := map[string]bool{}
	if !m.last.IsZero() {
		p := m.perNode(now.Sub(m.last))
		if p > 0 {
			for _, id := range candidates {
				if rnd() < p {
					out = append(out, id)
					picked[id] = true
				}
			}
		}
	}
	m.last = now
	for m.next < len(m.schedule) && !now.Before(m.start.Add(m.schedule[m.next])) {
		var free []string
		for _, id := range candidates {
			if !picked[id] {
				free = append(free, id)
			}
		}
		if len(free) == 0 {
			break // nothing to preempt yet: the entry waits for a node
		}
		m.next++
		id := free[min(int(rnd()*float64(len(free))), len(free)-1)]
		out = append(out, id)
		picked[id] = true
	}
	return out
}
