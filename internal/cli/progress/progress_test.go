package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	t.Parallel()
	cases := []struct {
		done, total, width int
		want               string
	}{
		{0, 10, 10, "[..........]"},
		{5, 10, 10, "[#####.....]"},
		{10, 10, 10, "[##########]"},
		{12, 10, 10, "[##########]"},
		{-1, 10, 10, "[..........]"},
		{3, 0, 4, "[....]"},
		{1, 3, 6, "[##....]"},
	}
	for _, c := range cases {
		if got := Bar(c.done, c.total, c.width); got != c.want {
			t.Errorf("Bar(%d, %d, %d) = %q, want %q", c.done, c.total, c.width, got, c.want)
		}
	}
	if got := Bar(1, 2, 0); len(got) != BarWidthDefault+2 {
		t.Errorf("default width bar %q", got)
	}
}

func TestPercentElapsed(t *testing.T) {
	t.Parallel()
	if Percent(1, 3) != 33 || Percent(0, 0) != 0 || Percent(5, 4) != 100 {
		t.Error("Percent")
	}
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		1400 * time.Millisecond: "1s",
		65 * time.Second:        "1m05s",
		2*time.Hour + 3*time.Minute + 4*time.Second: "2h03m04s",
	} {
		if got := Elapsed(d); got != want {
			t.Errorf("Elapsed(%v) = %q, want %q", d, got, want)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestReporter(t *testing.T) {
	t.Parallel()

	t.Run("PlainPrintsChangesAtMostOncePerInterval", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		clk := &fakeClock{t: time.Unix(1000, 0)}
		r := NewAt(&buf, false, clk.now)
		r.Update("a") // first: printed
		clk.advance(200 * time.Millisecond)
		r.Update("b") // changed but too soon: skipped
		clk.advance(900 * time.Millisecond)
		r.Update("b") // changed since last print, interval passed: printed
		clk.advance(5 * time.Second)
		r.Update("b") // unchanged: skipped
		clk.advance(30 * time.Second)
		r.Update("b") // heartbeat: printed
		clk.advance(time.Second)
		r.Finish("done") // final: printed
		r.Update("ignored")
		want := "a  0s\nb  1s\nb  36s\ndone  37s\n"
		if got := buf.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("PlainFinishSkipsRepeat", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		clk := &fakeClock{t: time.Unix(0, 0)}
		r := NewAt(&buf, false, clk.now)
		r.Update("same")
		r.Finish("same")
		if got := buf.String(); got != "same  0s\n" {
			t.Errorf("got %q", got)
		}
	})

	t.Run("TTYRedrawsInPlace", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		clk := &fakeClock{t: time.Unix(0, 0)}
		r := NewAt(&buf, true, clk.now)
		r.Update("one")
		clk.advance(2 * time.Second)
		r.Update("two")
		r.Finish("three")
		want := "\rone  0s\x1b[K\rtwo  2s\x1b[K\rthree  2s\x1b[K\n"
		if got := buf.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("TTYAbortEndsLine", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		r := NewAt(&buf, true, time.Now)
		r.Update("x")
		r.Abort()
		r.Finish("not shown")
		if got := buf.String(); !strings.HasSuffix(got, "\x1b[K\n") || strings.Contains(got, "not shown") {
			t.Errorf("got %q", got)
		}
	})

	t.Run("BufferIsNotATerminal", func(t *testing.T) {
		t.Parallel()
		if IsTerminal(&bytes.Buffer{}) {
			t.Error("bytes.Buffer reported as a terminal")
		}
	})
}
