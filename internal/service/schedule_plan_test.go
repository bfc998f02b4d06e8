package service

import (
	"testing"
	"time"
)

func TestSchedulePlan(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var zero time.Time
	type in struct {
		timing  scheduleTiming
		now     time.Time
		ran     bool
		lastDue time.Time
	}
	cases := []struct {
		name string
		in   in
		want schedulePlan
	}{
		{"OnceNow", in{timing: scheduleTiming{start: t0}, now: t0},
			schedulePlan{Due: t0, NextRun: t0}},
		{"OnceLater", in{timing: scheduleTiming{start: at(time.Minute)}, now: t0},
			schedulePlan{NextRun: at(time.Minute), WakeAt: at(time.Minute)}},
		{"OnceRan", in{timing: scheduleTiming{start: t0}, now: at(time.Hour), ran: true, lastDue: t0},
			schedulePlan{Done: true}},
		{"OnceWindowOpen", in{timing: scheduleTiming{start: t0, window: time.Minute}, now: at(30 * time.Second)},
			schedulePlan{Due: t0, NextRun: t0, WakeAt: at(time.Minute)}},
		{"OnceWindowMissed", in{timing: scheduleTiming{start: t0, window: time.Minute}, now: at(61 * time.Second)},
			schedulePlan{Done: true}},
		{"RecurFirst", in{timing: scheduleTiming{start: t0, recurrence: time.Minute}, now: t0},
			schedulePlan{Due: t0, NextRun: t0, WakeAt: at(time.Minute)}},
		{"RecurRanWaitsForNext", in{timing: scheduleTiming{start: t0, recurrence: time.Minute}, now: at(10 * time.Second), ran: true, lastDue: t0},
			schedulePlan{NextRun: at(time.Minute), WakeAt: at(time.Minute)}},
		{"RecurSecondDue", in{timing: scheduleTiming{start: t0, recurrence: time.Minute}, now: at(61 * time.Second), ran: true, lastDue: t0},
			schedulePlan{Due: at(time.Minute), NextRun: at(time.Minute), WakeAt: at(2 * time.Minute)}},
		{"RecurSkipsMissedIntervals", in{timing: scheduleTiming{start: t0, recurrence: time.Minute}, now: at(5*time.Minute + time.Second), ran: true, lastDue: t0},
			schedulePlan{Due: at(5 * time.Minute), NextRun: at(5 * time.Minute), WakeAt: at(6 * time.Minute)}},
		{"RecurWindowCloses", in{timing: scheduleTiming{start: t0, recurrence: 10 * time.Minute, window: time.Minute}, now: at(10*time.Minute + 30*time.Second), ran: true, lastDue: t0},
			schedulePlan{Due: at(10 * time.Minute), NextRun: at(10 * time.Minute), WakeAt: at(11 * time.Minute)}},
		{"RecurWindowMissed", in{timing: scheduleTiming{start: t0, recurrence: 10 * time.Minute, window: time.Minute}, now: at(11*time.Minute + time.Second), ran: true, lastDue: t0},
			schedulePlan{NextRun: at(20 * time.Minute), WakeAt: at(20 * time.Minute)}},
		{"RecurWindowLongerThanInterval", in{timing: scheduleTiming{start: t0, recurrence: time.Minute, window: time.Hour}, now: at(90 * time.Second), ran: true, lastDue: t0},
			schedulePlan{Due: at(time.Minute), NextRun: at(time.Minute), WakeAt: at(2 * time.Minute)}},
		{"AfterCapsNextRun", in{timing: scheduleTiming{start: t0, recurrence: time.Minute, after: at(90 * time.Second)}, now: at(10 * time.Second), ran: true, lastDue: t0},
			schedulePlan{NextRun: at(time.Minute), WakeAt: at(time.Minute)}},
		{"AfterHidesLaterRun", in{timing: scheduleTiming{start: t0, recurrence: time.Minute, after: at(90 * time.Second)}, now: at(70 * time.Second), ran: true, lastDue: at(time.Minute)},
			schedulePlan{NextRun: zero, WakeAt: at(90 * time.Second)}},
		{"AfterPassed", in{timing: scheduleTiming{start: t0, recurrence: time.Minute, after: at(90 * time.Second)}, now: at(90 * time.Second), ran: true, lastDue: at(time.Minute)},
			schedulePlan{Done: true}},
		{"OnceAfterWakes", in{timing: scheduleTiming{start: t0, after: at(time.Hour)}, now: t0},
			schedulePlan{Due: t0, NextRun: t0, WakeAt: at(time.Hour)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.in.timing.plan(c.in.now, c.in.ran, c.in.lastDue)
			if !got.Due.Equal(c.want.Due) || !got.NextRun.Equal(c.want.NextRun) || !got.WakeAt.Equal(c.want.WakeAt) || got.Done != c.want.Done {
				t.Fatalf("plan = %+v, want %+v", got, c.want)
			}
		})
	}
}
