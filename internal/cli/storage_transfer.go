package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/cli/progress"
)

const (
	// storageConcurrencyDefault is how many files upload and download move
	// at a time.
	storageConcurrencyDefault = 4
	// storageBarInterval is how often the progress bar is redrawn.
	storageBarInterval = 200 * time.Millisecond
)

// transferItem is one file moved between the disk and a blob.
type transferItem struct {
	blob string // blob name
	path string // upload: the source file; download: the path below the destination
	size int64  // expected size, for the progress bar
}

// transferFunc moves one item and returns the bytes moved. It calls report
// with its cumulative count of bytes moved so far (which may go back when a
// request is retried), never concurrently.
type transferFunc func(ctx context.Context, it transferItem, report func(done int64)) (int64, error)

// transferSummary is what upload and download print when done.
type transferSummary struct {
	Container   string   `json:"container"`
	Destination string   `json:"destination,omitempty"`
	Files       int      `json:"files"`
	Bytes       int64    `json:"bytes"`
	Seconds     float64  `json:"seconds"`
	Blobs       []string `json:"blobs"`
}

// transfer runs fn over items, concurrency at a time, with one progress bar
// of total bytes on stderr when stderr is a terminal. The first error stops
// the transfers not yet started, cancels those running, and is returned.
func (s *storageOptions) transfer(ctx context.Context, cmd *cobra.Command, items []transferItem, concurrency int, fn transferFunc) (transferSummary, error) {
	start := time.Now()
	sum := transferSummary{Blobs: []string{}}
	var total int64
	for _, it := range items {
		total += it.size
	}
	var moved, filesDone atomic.Int64
	stderr := cmd.ErrOrStderr()
	stopBar := startBar(stderr, s.isTerminal != nil && s.isTerminal(stderr), total, len(items), &moved, &filesDone)

	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		work     = make(chan transferItem)
	)
	for range min(max(concurrency, 1), len(items)) {
		wg.Go(func() {
			for it := range work {
				var last int64
				n, err := fn(ctx, it, func(done int64) {
					moved.Add(done - last)
					last = done
				})
				moved.Add(n - last)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					sum.Files++
					sum.Bytes += n
					sum.Blobs = append(sum.Blobs, it.blob)
				}
				mu.Unlock()
				filesDone.Add(1)
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && int(filesDone.Load()) < len(items) {
		firstErr = parent.Err() // the caller gave up between two files
	}
	stopBar(firstErr == nil)
	sum.Seconds = time.Since(start).Seconds()
	return sum, firstErr
}

// startBar draws "[####....]  45%  12.0 MiB/26.7 MiB  3/12 files  4s" on w
// while a transfer runs, if tty (w is a terminal); a transfer of one file
// has no file count. stop ends the line, with a final state if ok.
func startBar(w io.Writer, tty bool, total int64, files int, moved, filesDone *atomic.Int64) (stop func(ok bool)) {
	if !tty {
		return func(bool) {}
	}
	rep := progress.NewAt(w, true, time.Now)
	line := func() string {
		done := moved.Load()
		// Fractions in thousandths keep int arithmetic safe for any size.
		var num, den int
		if total > 0 {
			num, den = int(max(0, min(done, total))*1000/total), 1000
		} else {
			num, den = int(filesDone.Load()), files
		}
		line := fmt.Sprintf("%s %3d%%  %s/%s", progress.Bar(num, den, 0), progress.Percent(num, den), output.Size(&done), output.Size(&total))
		if files > 1 {
			line += fmt.Sprintf("  %d/%d files", filesDone.Load(), files)
		}
		return line
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(storageBarInterval)
		defer tick.Stop()
		for {
			rep.Update(line())
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	})
	return func(ok bool) {
		close(quit)
		wg.Wait()
		if ok {
			rep.Finish(line())
		} else {
			rep.Abort()
		}
	}
}

// printSummary prints "Uploaded 3 files (20.0 MiB) to inputs in 1.2s
// (16.7 MiB/s)." or, with -o json, the summary itself.
func (s *storageOptions) printSummary(w io.Writer, verb, where string, sum transferSummary) error {
	return s.g.printResult(w, sum, func(w io.Writer) error {
		files := "files"
		if sum.Files == 1 {
			files = "file"
		}
		rate := ""
		if sum.Seconds > 0 && sum.Bytes > 0 {
			r := int64(float64(sum.Bytes) / sum.Seconds)
			rate = " (" + output.Size(&r) + "/s)"
		}
		_, err := fmt.Fprintf(w, "%s %d %s (%s) %s in %s%s.\n", verb, sum.Files, files, output.Size(&sum.Bytes), where, seconds(sum.Seconds), rate)
		return err
	})
}

// seconds formats a duration in seconds: 0.42s, 3.1s, then as
// progress.Elapsed does (1m05s).
func seconds(s float64) string {
	if s < 10 {
		return strconv.FormatFloat(s, 'f', 2, 64) + "s"
	}
	return progress.Elapsed(time.Duration(s * float64(time.Second)))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// countingReader reports the cumulative bytes read through it.
type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.report(c.n)
	}
	return n, err
}
