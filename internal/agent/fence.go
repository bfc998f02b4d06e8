package agent

import (
	"context"
	"slices"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Fencing. The server marks a node unusable, and requeues its attempts on
// other nodes, once the node has been silent for the node timeout (measured
// from the arrival of its last sync). An agent cut off from the server
// cannot tell a dead server from a cut link, but it knows when it last
// reached it: once it has had no answer for nearly the node timeout, counted
// from when it *sent* the last request that was answered (never later than
// its arrival), it stops every attempt still running and forgets it. The
// fenced attempts report nothing, and the agent registers again once it
// reaches a server: if the server did requeue them it expects nothing more;
// if it did not (it restarted and gave the node a fresh timeout) their
// absence from the registration's Known makes it requeue them then, as new
// attempts. Either way no task runs on two nodes at once. Attempts that completed before the
// fence keep their buffered completion, which the server applies or, for an
// attempt it already requeued, ignores.

// fenceMargin is how much earlier than the node timeout the agent fences:
// the time it needs to kill its processes, with room for the server's
// maintenance tick. It is at most a quarter of the timeout.
const fenceMargin = 2 * time.Second

// fenceAfter is how long after its last answered request the agent fences
// (0: never, when the server did not say its node timeout).
func fenceAfter(nodeTimeout time.Duration) time.Duration {
	if nodeTimeout <= 0 {
		return 0
	}
	return nodeTimeout - min(fenceMargin, nodeTimeout/4)
}

// contact records that a request sent at sent was answered.
func (a *agent) contact(sent time.Time) {
	a.mu.Lock()
	if sent.After(a.contactSent) {
		a.contactSent = sent
	}
	a.mu.Unlock()
}

// watchFence fences the agent's attempts whenever the server has not
// answered for fenceAfter(the node timeout), until ctx ends.
func (a *agent) watchFence(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var fencedAt time.Time // the contact the last fence was for
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		after, last := fenceAfter(a.nodeTimeout), a.contactSent
		a.mu.Unlock()
		if after <= 0 || last.IsZero() || last.Equal(fencedAt) || time.Since(last) < after {
			continue
		}
		fencedAt = last
		a.fence(time.Since(last))
	}
}

// takeFenced reports (once) that attempts were fenced since it was last
// asked: the sync loop then registers again.
func (a *agent) takeFenced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.fencedAny
	a.fencedAny = false
	return f
}

// fence stops and forgets every attempt that has not completed.
func (a *agent) fence(silent time.Duration) {
	a.mu.Lock()
	var victims []*attempt
	for id, at := range a.known {
		if at.completedSeq != 0 {
			continue // completed: its result stays buffered
		}
		at.fenced = true
		delete(a.known, id)
		victims = append(victims, at)
	}
	if len(victims) > 0 {
		a.fencedAny = true
	}
	if len(victims) > 0 {
		a.outbox = slices.DeleteFunc(a.outbox, func(ev protocol.Event) bool {
			return slices.ContainsFunc(victims, func(at *attempt) bool { return at.as.AttemptID == ev.AttemptID })
		})
	}
	a.mu.Unlock()
	if len(victims) == 0 {
		return
	}
	a.log.Warn("no answer from the server for nearly its node timeout; stopping running attempts (the server requeues them)",
		"silent", silent.Round(time.Millisecond), "attempts", len(victims))
	for _, at := range victims {
		at.cancel()
	}
}
