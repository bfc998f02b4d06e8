package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

const (
	// syncSlack is added to the long-poll wait to bound a sync request.
	syncSlack = 10 * time.Second
	// finalSyncTimeout bounds the best-effort sync sent after a Shutdown order.
	finalSyncTimeout = 5 * time.Second
)

var (
	// errInterrupted: the agent cancelled its own long poll to send an event.
	errInterrupted = errors.New("agent: long poll interrupted for a new event")
	// errUnauthorized: the server answered a sync with 401.
	errUnauthorized = errors.New("agent: sync unauthorized")
)

// loop registers and then syncs until ctx ends, a Shutdown order, the orphan
// timeout or a refused registration.
func (a *agent) loop(ctx context.Context) error {
	a.lastContact = time.Now()
	if err := a.register(ctx); err != nil {
		return a.exit(ctx, err)
	}
	var bo backoff
	for {
		if a.takeFenced() {
			// Register again with what the agent still knows: the
			// server then requeues the fenced attempts as new ones
			// (a plain sync would have it deliver the same attempt ids
			// again, which an agent never runs twice).
			if err := a.register(ctx); err != nil {
				return a.exit(ctx, err)
			}
		}
		sent := time.Now()
		resp, err := a.sync(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case a.orphaned():
			return a.exit(ctx, errOrphaned)
		case errors.Is(err, errInterrupted):
			continue
		case errors.Is(err, errUnauthorized):
			a.log.Info("sync unauthorized; registering again")
			if err := a.register(ctx); err != nil {
				return a.exit(ctx, err)
			}
			continue
		default:
			a.log.Warn("sync failed; retrying", "err", err)
			a.sleep(ctx, bo.next())
			continue
		}
		bo.reset()
		a.lastContact = time.Now()
		a.contact(sent) // fence.go
		a.apply(resp)
		a.applied = a.syncSeq // the request just answered; only this goroutine sends syncs
		if resp.Shutdown {
			a.shutdown(ctx)
			return nil
		}
		if resp.Reregister {
			a.log.Info("server asked to register again")
			if err := a.register(ctx); err != nil {
				return a.exit(ctx, err)
			}
		}
	}
}

// exit turns the error that ended the loop into Run's result.
func (a *agent) exit(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, errOrphaned):
		a.log.Error("server unreachable for the orphan timeout; killing all tasks and exiting", "timeout", a.cfg.OrphanTimeout)
		return nil
	}
	return err
}

// sync sends one SyncRequest and returns the response. While the request is
// open, a newly queued event interrupts it (errInterrupted) once it has been
// open for Config.SyncInterruptDelay; a response that was not completely
// read is then discarded, never applied.
func (a *agent) sync(ctx context.Context) (*protocol.SyncResponse, error) {
	req, covered := a.nextSyncRequest(a.pollWait())
	ictx, interrupt := context.WithCancelCause(ctx)
	defer interrupt(nil)
	rctx, cancel := a.requestContext(ictx, a.pollWait()+syncSlack)
	defer cancel()
	if a.cfg.SyncInterruptDelay >= 0 {
		done := make(chan struct{})
		defer close(done)
		go a.interruptOnEvent(covered, time.Now(), done, interrupt)
	}

	var resp protocol.SyncResponse
	err := a.post(rctx, protocol.PathSync, a.token, req, &resp)
	if err == nil {
		a.log.Debug("sync", "seq", req.Seq, "events", len(req.Events), "known", len(req.Known), "ack", resp.Ack,
			"assignments", len(resp.Assignments), "kill", len(resp.Kill), "clean", len(resp.Clean))
		return &resp, nil
	}
	a.log.Debug("sync failed", "seq", req.Seq, "events", len(req.Events), "err", err)
	if se := (*protocol.StatusError)(nil); errors.As(err, &se) {
		if se.Code == http.StatusUnauthorized {
			return nil, errUnauthorized
		}
		return nil, err // a real answer, even if an interrupt came too late
	}
	if context.Cause(ictx) == errInterrupted && ctx.Err() == nil {
		return nil, errInterrupted
	}
	return nil, err
}

// interruptOnEvent cancels the open sync (with cause errInterrupted) when an
// event newer than covered (the last one the request carries) is queued, but
// not before the request is SyncInterruptDelay old:
// right after a sync is sent the server is still applying its events and
// may be about to answer with work, and cancelling then would only make it
// requeue that work. An interrupt that loses the race with the answer does
// nothing: the answer is applied and the event goes out with the next sync.
func (a *agent) interruptOnEvent(covered int64, sent time.Time, done <-chan struct{}, interrupt context.CancelCauseFunc) {
	for {
		newer, queued := a.eventsAfter(covered)
		if newer {
			break
		}
		select {
		case <-done:
			return
		case <-queued:
		}
	}
	if d := a.cfg.SyncInterruptDelay - time.Since(sent); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
	interrupt(errInterrupted)
}

// pollWait is the WaitMillis of a sync: the heartbeat interval, but at most
// half the orphan timeout, so that a healthy server always answers well
// before the agent would consider itself orphaned.
func (a *agent) pollWait() time.Duration {
	w := a.heartbeat
	if a.cfg.OrphanTimeout > 0 {
		w = min(w, a.cfg.OrphanTimeout/2)
	}
	// Fencing counts from the sending of the last answered sync, so a long
	// poll must be short next to the node timeout (fence.go).
	a.mu.Lock()
	nt := a.nodeTimeout
	a.mu.Unlock()
	if nt > 0 {
		w = min(w, nt/4)
	}
	return w
}

// apply acts on a SyncResponse: acknowledgement, then clean orders, then new
// assignments (ignored when the response also orders a shutdown: the final
// sync's Known lacks them, so the server requeues them), then kill orders.
func (a *agent) apply(resp *protocol.SyncResponse) {
	a.ack(resp.Ack)
	// Clean orders are registered first, so that an assignment of the same
	// response into a directory being cleaned (a deleted job or task created
	// again) waits for the removal instead of losing its files to it.
	for _, dir := range resp.Clean {
		a.clean(dir)
	}
	if !resp.Shutdown {
		for _, as := range resp.Assignments {
			a.accept(as)
		}
	}
	for _, id := range resp.Kill {
		a.kill(id)
	}
}

// shutdown handles a Shutdown order: kill everything, wait for the
// completions, and report them in one last best-effort sync.
func (a *agent) shutdown(ctx context.Context) {
	a.log.Info("server ordered shutdown; killing all tasks")
	a.stopTasks()
	// The node leaves its pool: the user accounts made on it go too.
	if err := a.removeUsers(); err != nil {
		a.log.Warn("remove node users", "err", err)
	}
	req, _ := a.nextSyncRequest(0)
	sctx, cancel := context.WithTimeout(ctx, finalSyncTimeout)
	defer cancel()
	var resp protocol.SyncResponse
	if err := a.post(sctx, protocol.PathSync, a.token, req, &resp); err != nil {
		a.log.Warn("final sync failed", "err", err, "events", len(req.Events))
		return
	}
	a.ack(resp.Ack)
}
