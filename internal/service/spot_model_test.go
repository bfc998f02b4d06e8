package service

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// seq returns a random source that yields vals in turn.
func seq(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[i%len(vals)]
		i++
		return v
	}
}

func TestSpotModel_Rate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("FirstStepOnlyStartsTheClock", func(t *testing.T) {
		m := newSpotModel(SpotConfig{Rate: 1}, t0)
		if got := m.step(t0, []string{"a"}, seq(0)); len(got) != 0 {
			t.Fatalf("first step preempted %v", got)
		}
	})
	t.Run("ProbabilityPerElapsedTime", func(t *testing.T) {
		m := newSpotModel(SpotConfig{Rate: 0.5}, t0)
		m.step(t0, nil, seq(0))
		// One minute at 0.5 per minute: p = 0.5; draws 0.4 and 0.6.
		if got := m.step(t0.Add(time.Minute), []string{"a", "b"}, seq(0.4, 0.6)); fmt.Sprint(got) != "[a]" {
			t.Fatalf("got %v, want [a]", got)
		}
		// Two more minutes: p = 1 - 0.5^2 = 0.75.
		if got := m.step(t0.Add(3*time.Minute), []string{"a", "b"}, seq(0.74, 0.76)); fmt.Sprint(got) != "[a]" {
			t.Fatalf("got %v, want [a]", got)
		}
		if p := m.perNode(30 * time.Second); p < 0.2928 || p > 0.2930 {
			t.Fatalf("perNode(30s) = %v, want 1-sqrt(0.5)", p)
		}
	})
	t.Run("ZeroRateNeverPreempts", func(t *testing.T) {
		m := newSpotModel(SpotConfig{}, t0)
		m.step(t0, nil, seq(0))
		if got := m.step(t0.Add(time.Hour), []string{"a"}, seq(0)); len(got) != 0 {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("MeanOverManyNodes", func(t *testing.T) {
		// 2,000 nodes at 0.1 per minute, stepped every second for a
		// minute, each node leaving once preempted: about 200 preempted
		// (standard deviation about 13).
		r := rand.New(rand.NewPCG(1, 2))
		m := newSpotModel(SpotConfig{Rate: 0.1}, t0)
		alive := map[string]bool{}
		var nodes []string
		for i := 0; i < 2000; i++ {
			id := fmt.Sprintf("n%04d", i)
			alive[id] = true
			nodes = append(nodes, id)
		}
		total := 0
		for s := 0; s <= 60; s++ {
			var cands []string
			for _, id := range nodes {
				if alive[id] {
					cands = append(cands, id)
				}
			}
			for _, id := range m.step(t0.Add(time.Duration(s)*time.Second), cands, r.Float64) {
				alive[id] = false
				total++
			}
		}
		if total < 150 || total > 250 {
			t.Fatalf("%d of 2000 nodes preempted in a minute at rate 0.1, want about 200", total)
		}
	})
}

func TestSpotModel_Schedule(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sched, err := ParseSpotSchedule(" 20s, 10s,20s ")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sched) != "[10s 20s 20s]" {
		t.Fatalf("parsed %v", sched)
	}
	m := newSpotModel(SpotConfig{Schedule: sched}, t0)
	nodes := []string{"a", "b", "c"}
	if got := m.step(t0.Add(5*time.Second), nodes, seq(0)); len(got) != 0 {
		t.Fatalf("before the first entry: %v", got)
	}
	if got := m.step(t0.Add(10*time.Second), nodes, seq(0.5)); fmt.Sprint(got) != "[b]" {
		t.Fatalf("at 10s: %v, want [b]", got)
	}
	// Both 20s entries fire at once, on two different nodes.
	if got := m.step(t0.Add(25*time.Second), nodes, seq(0.99, 0.99)); fmt.Sprint(got) != "[c b]" {
		t.Fatalf("at 25s: %v, want [c b]", got)
	}
	if got := m.step(t0.Add(time.Hour), nodes, seq(0)); len(got) != 0 {
		t.Fatalf("after the schedule: %v", got)
	}
	// An entry that finds no node waits for one.
	m = newSpotModel(SpotConfig{Schedule: []time.Duration{0}}, t0)
	if got := m.step(t0, nil, seq(0)); len(got) != 0 {
		t.Fatal(got)
	}
	if got := m.step(t0.Add(time.Second), nodes, seq(0)); fmt.Sprint(got) != "[a]" {
		t.Fatalf("the waiting entry: %v, want [a]", got)
	}
	if got := m.step(t0.Add(2*time.Second), nodes, seq(0)); len(got) != 0 {
		t.Fatalf("the entry fired twice: %v", got)
	}
	for _, bad := range []string{"5", "-1s", "soon"} {
		if _, err := ParseSpotSchedule(bad); err == nil {
			t.Errorf("ParseSpotSchedule(%q) accepted", bad)
		}
	}
}
