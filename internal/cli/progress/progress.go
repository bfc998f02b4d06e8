// Package progress draws live progress for long-running CLI commands. On a
// terminal it redraws one line in place with \r; elsewhere (pipes, CI logs,
// tests) it prints plain lines, only when the status changes and at most once
// per MinInterval, plus a heartbeat line every Heartbeat while nothing changes.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Defaults for a Reporter in plain (non-terminal) mode.
const (
	MinIntervalDefault = time.Second
	HeartbeatDefault   = 30 * time.Second
)

// BarWidthDefault is the number of cells in a bar drawn by Bar.
const BarWidthDefault = 30

// Bar renders done out of total as "[#######.......]" with width cells.
// total <= 0 draws an empty bar; done is clamped to [0, total].
func Bar(done, total, width int) string {
	if width <= 0 {
		width = BarWidthDefault
	}
	filled := 0
	if total > 0 {
		done = max(0, min(done, total))
		filled = done * width / total
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

// Percent returns done/total as a whole percentage, 0 when total <= 0.
func Percent(done, total int) int {
	if total <= 0 {
		return 0
	}
	return max(0, min(100, done*100/total))
}

// Elapsed formats d compactly: 7s, 1m05s, 2h03m04s.
func Elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Reporter writes status lines, each followed by the time elapsed since the
// Reporter was created.
type Reporter struct {
	// TTY selects in-place redrawing; New sets it from IsTerminal.
	TTY bool
	// MinInterval and Heartbeat apply in plain mode; see the package doc.
	MinInterval time.Duration
	Heartbeat   time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time

	w        io.Writer
	start    time.Time
	last     string // last status printed
	lastAt   time.Time
	printed  bool
	finished bool
}

// New returns a Reporter writing to w, redrawing in place if w is a terminal.
func New(w io.Writer) *Reporter {
	return NewAt(w, IsTerminal(w), time.Now)
}

// NewAt returns a Reporter with an explicit mode and clock.
func NewAt(w io.Writer, tty bool, now func() time.Time) *Reporter {
	return &Reporter{
		TTY:         tty,
		MinInterval: MinIntervalDefault,
		Heartbeat:   HeartbeatDefault,
		Now:         now,
		w:           w,
		start:       now(),
	}
}

func (r *Reporter) line(status string) string {
	return status + "  " + Elapsed(r.Now().Sub(r.start))
}

// Update shows status (without a time; the Reporter appends the elapsed time).
func (r *Reporter) Update(status string) {
	if r.finished {
		return
	}
	now := r.Now()
	if r.TTY {
		fmt.Fprint(r.w, "\r"+r.line(status)+"\x1b[K")
		r.last, r.lastAt, r.printed = status, now, true
		return
	}
	since := now.Sub(r.lastAt)
	changed := !r.printed || status != r.last
	if (changed && (!r.printed || since >= r.MinInterval)) || since >= r.Heartbeat {
		fmt.Fprintln(r.w, r.line(status))
		r.last, r.lastAt, r.printed = status, now, true
	}
}

// Finish shows the final status and ends the line. Later calls do nothing.
func (r *Reporter) Finish(status string) {
	if r.finished {
		return
	}
	r.finished = true
	if r.TTY {
		fmt.Fprint(r.w, "\r"+r.line(status)+"\x1b[K\n")
		return
	}
	if !r.printed || status != r.last {
		fmt.Fprintln(r.w, r.line(status))
	}
}

// Abort ends a terminal line without a final status (on errors), so that
// whatever is printed next starts on a fresh line.
func (r *Reporter) Abort() {
	if r.finished {
		return
	}
	r.finished = true
	if r.TTY && r.printed {
		fmt.Fprintln(r.w)
	}
}
