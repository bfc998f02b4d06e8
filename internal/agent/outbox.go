package agent

import (
	"slices"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// emit queues an event of attempt at in the outbox and wakes the sync loop
// (by closing and replacing a.queued).
// The event stays queued, and is sent with every sync, until a SyncResponse
// acknowledges its Seq.
func (a *agent) emit(at *attempt, ev protocol.Event) {
	ev.AttemptID = at.as.AttemptID
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	a.mu.Lock()
	if at.fenced {
		a.mu.Unlock()
		return // fence.go: the server hears nothing more of it
	}
	a.eventSeq++
	ev.Seq = a.eventSeq
	a.outbox = append(a.outbox, ev)
	if ev.Kind == protocol.EventCompleted {
		at.completedSeq = ev.Seq
	}
	close(a.queued)
	a.queued = make(chan struct{})
	a.mu.Unlock()
}

// ack drops every event with Seq <= n, and forgets attempts whose completion
// is among them: they leave Known.
func (a *agent) ack(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outbox = slices.DeleteFunc(a.outbox, func(ev protocol.Event) bool { return ev.Seq <= n })
	for id, at := range a.known {
		if at.completedSeq != 0 && at.completedSeq <= n {
			delete(a.known, id)
		}
	}
}

// nextSyncRequest builds the next SyncRequest: a new Seq, the whole outbox
// and every known attempt. It also returns the last event Seq assigned so
// far: every event up to it is in the request or already acknowledged.
func (a *agent) nextSyncRequest(wait time.Duration) (protocol.SyncRequest, int64) {
	metrics := a.metrics.sample() // reads /proc: not under a.mu
	a.mu.Lock()
	defer a.mu.Unlock()
	a.syncSeq++
	return protocol.SyncRequest{
		NodeID:     a.nodeID,
		Seq:        a.syncSeq,
		Events:     slices.Clone(a.outbox),
		Known:      a.knownIDsLocked(),
		WaitMillis: int(wait / time.Millisecond),
		Applied:    a.applied,
		Metrics:    metrics,
	}, a.eventSeq
}

// eventsAfter reports whether an event newer than seq has been queued, and
// returns a channel closed when the next event is queued.
func (a *agent) eventsAfter(seq int64) (bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.eventSeq > seq, a.queued
}

func (a *agent) knownIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.knownIDsLocked()
}

func (a *agent) knownIDsLocked() []string {
	ids := make([]string, 0, len(a.known))
	for id := range a.known {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
