package service

import "time"

// Clock is the time source of the job schedule runner: the current time, and
// timers to wait for the next due time. Tests give the service a fake clock
// (Config.Clock) and advance it to see a minute's recurrences in
// milliseconds.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed (at once when
	// d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	// C receives the time when the timer fires.
	C() <-chan time.Time
	// Stop stops the timer; it reports whether the timer was pending.
	Stop() bool
}

// SystemClock is the real clock, the default.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }
