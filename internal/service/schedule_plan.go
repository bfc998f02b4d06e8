package service

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// schedulePlan is what a schedule's timing says at one moment. It is a pure
// function of the schedule, so the rules are tested without a clock.
//
// Azure's rules (JobScheduleConfiguration in the REST reference):
//   - The first run is due at doNotRunUntil, or at once. Without a
//     recurrenceInterval there is that one run, and the schedule completes
//     when its job does.
//   - A recurring schedule's runs are due every recurrenceInterval after the
//     first. A run due while the previous job is still active waits for it;
//     a run is lost when its job cannot be created within startWindow
//     (default: no limit) of its due time, and a run is never carried into
//     the next interval.
//   - No run is due at or after doNotRunAfter; the schedule then completes
//     as soon as it has no active job.
type schedulePlan struct {
	// Due is the due time of the run that should have its job now (zero:
	// none). Whether the job can be created also depends on the active job.
	Due time.Time
	// NextRun is the nextRunTime to show (zero: none).
	NextRun time.Time
	// WakeAt is when the plan changes by itself next (zero: never).
	WakeAt time.Time
	// Done is set when no run will ever be due again.
	Done bool
}

// scheduleTiming is a schedule configuration with its durations parsed.
type scheduleTiming struct {
	start, after time.Time // after: zero when there is no doNotRunAfter
	recurrence   time.Duration
	window       time.Duration // 0: no limit
}

func newScheduleTiming(c *azbatch.JobScheduleConfiguration, created time.Time) scheduleTiming {
	t := scheduleTiming{start: created}
	if c == nil {
		return t
	}
	if c.DoNotRunUntil != nil {
		t.start = *c.DoNotRunUntil
	}
	if c.DoNotRunAfter != nil {
		t.after = *c.DoNotRunAfter
	}
	// Values were checked when they were set; MaxDuration means no limit.
	if c.RecurrenceInterval != nil {
		if d, err := batch.ParseDuration(*c.RecurrenceInterval); err == nil && d < batch.MaxDuration {
			t.recurrence = d
		}
	}
	if c.StartWindow != nil {
		if d, err := batch.ParseDuration(*c.StartWindow); err == nil && d < batch.MaxDuration {
			t.window = d
		}
	}
	return t
}

// dueAt returns the due time of the run whose interval holds at (at >=
// start): the latest due time not after at.
func (t scheduleTiming) dueAt(at time.Time) time.Time {
	if t.recurrence <= 0 || at.Before(t.start) {
		return t.start
	}
	k := at.Sub(t.start) / t.recurrence
	return t.start.Add(k * t.recurrence)
}

// plan computes the plan at now. ran tells whether any job was created yet,
// lastDue the due time of the latest run that had its job (or was given
// up).
func (t scheduleTiming) plan(now time.Time, ran bool, lastDue time.Time) schedulePlan {
	var p schedulePlan
	if !t.after.IsZero() && !now.Before(t.after) {
		p.Done = true
		return p
	}
	switch {
	case now.Before(t.start):
		p.NextRun, p.WakeAt = t.start, t.start
	case t.recurrence <= 0:
		if ran || t.window > 0 && now.Sub(t.start) > t.window {
			p.Done = true
			return p
		}
		p.Due, p.NextRun = t.start, t.start
		if t.window > 0 {
			p.WakeAt = t.start.Add(t.window)
		}
	default:
		due := t.dueAt(now)
		next := due.Add(t.recurrence)
		fresh := !ran || due.After(lastDue)
		if fresh && (t.window <= 0 || now.Sub(due) <= t.window) {
			p.Due, p.NextRun, p.WakeAt = due, due, next
			if t.window > 0 && due.Add(t.window).Before(next) {
				// The run is lost at the end of its window.
				p.WakeAt = due.Add(t.window)
			}
		} else {
			p.NextRun, p.WakeAt = next, next
		}
	}
	if !t.after.IsZero() {
		if !p.NextRun.Before(t.after) {
			p.NextRun = time.Time{}
		}
		if p.WakeAt.IsZero() || p.WakeAt.After(t.after) {
			p.WakeAt = t.after
		}
	}
	return p
}
