// Package simagent is a simulated node agent for load tests: it speaks the
// real agent protocol (package protocol, docs/agent-protocol.md) but runs no
// process. Every assignment "runs" at once: the agent queues a started and a
// completed event (exit code Config.ExitCode) as soon as it accepts it, and
// its next sync, sent at once, carries them.
//
// It keeps the protocol's bookkeeping exactly: a sync Seq that grows by one
// per request, an outbox of events with their own Seq kept until
// acknowledged, Known (attempts accepted whose completion is not yet
// acknowledged), Applied (the last answer acted on), each attempt accepted
// at most once, registering again on 401 or Reregister, and a final sync
// after Shutdown. It has no file server and no node directory; it reports a
// file server URL that refuses connections.
//
// One process can run a thousand of them (kiln bench, scenario "agents").
package simagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Defaults.
const (
	// HeartbeatIntervalDefault is used when the server's RegisterResponse
	// has no heartbeat interval.
	HeartbeatIntervalDefault = 10 * time.Second
	// syncSlack bounds a sync request beyond its long-poll wait.
	syncSlack = 10 * time.Second
	// requestTimeout bounds a register and the final sync.
	requestTimeout = 30 * time.Second
	// AgentVersion is what simulated agents report.
	AgentVersion = "simagent"
)

// Config configures Run.
type Config struct {
	// ServerURL, PoolID, NodeID and Token are what a provider gives a real
	// agent (see sim.Spec). ServerURL and NodeID are required.
	ServerURL, PoolID, NodeID, Token string
	// HTTPClient sends every request. Default: a client on
	// http.DefaultTransport. Many agents in one process should share one
	// client whose transport keeps an idle connection per agent
	// (MaxIdleConnsPerHost at least the number of agents).
	HTTPClient *http.Client
	// ExitCode is the exit code every attempt reports.
	ExitCode int
	// Logger receives the agent's logs. Default: discarded.
	Logger *slog.Logger
	// OnComplete, if set, is called once for every attempt the agent
	// completes (from Run's goroutine).
	OnComplete func(protocol.Assignment)
}

// Run registers the node and syncs until ctx ends or the server orders a
// shutdown; both return nil. It returns an error if the server refuses the
// registration (4xx other than 408 and 429). Network errors and other
// statuses are retried with backoff (100ms doubling to 2s).
func Run(ctx context.Context, cfg Config) error {
	if cfg.ServerURL == "" || cfg.NodeID == "" {
		return errors.New("simagent: ServerURL and NodeID are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &agent{
		cfg:       cfg,
		log:       cfg.Logger.With("node", cfg.NodeID),
		url:       strings.TrimSuffix(cfg.ServerURL, "/"),
		nodeID:    cfg.NodeID,
		heartbeat: HeartbeatIntervalDefault,
		known:     map[string]int64{},
		seen:      map[string]struct{}{},
	}
	return a.run(ctx)
}

// agent is the state of one Run; only Run's goroutine touches it.
type agent struct {
	cfg       Config
	log       *slog.Logger
	url       string
	nodeID    string
	token     string
	heartbeat time.Duration

	syncSeq  int64               // Seq of the last sync sent
	applied  int64               // Seq of the last sync whose answer was acted on
	eventSeq int64               // Seq of the last event queued
	outbox   []protocol.Event    // unacknowledged events, in Seq order
	known    map[string]int64    // accepted attempts -> Seq of their completed event
	seen     map[string]struct{} // every attempt ever accepted
}

func (a *agent) run(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var bo backoff
	for {
		resp, err := a.sync(ctx, a.heartbeat)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
		case isStatus(err, http.StatusUnauthorized):
			a.log.Info("sync unauthorized; registering again")
			if err := a.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		default:
			a.log.Warn("sync failed; retrying", "err", err)
			if !sleep(ctx, bo.next()) {
				return nil
			}
			continue
		}
		bo.reset()
		a.apply(resp)
		a.applied = a.syncSeq
		if resp.Shutdown {
			a.finalSync(ctx)
			return nil
		}
		if resp.Reregister {
			a.log.Info("server asked to register again")
			if err := a.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// register registers the node, retrying until it succeeds, ctx ends or the
// server refuses it.
func (a *agent) register(ctx context.Context) error {
	var bo backoff
	for {
		req := protocol.RegisterRequest{
			ProtocolVersion: protocol.Version,
			PoolID:          a.cfg.PoolID,
			NodeID:          a.cfg.NodeID,
			Token:           a.cfg.Token,
			Hostname:        "sim-" + a.cfg.NodeID,
			IP:              "127.0.0.1",
			// Port 1 refuses connections: node file requests fail fast.
			FileServerURL: "http://127.0.0.1:1",
			RootDir:       "/nonexistent/simagent/" + a.cfg.NodeID,
			AgentVersion:  AgentVersion,
			Known:         a.knownIDs(),
		}
		var resp protocol.RegisterResponse
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := a.post(rctx, protocol.PathRegister, "", req, &resp)
		cancel()
		if err == nil {
			if resp.NodeID != "" {
				a.nodeID = resp.NodeID
			}
			a.token = resp.NodeToken
			a.heartbeat = time.Duration(resp.HeartbeatInterval)
			if a.heartbeat <= 0 {
				a.heartbeat = HeartbeatIntervalDefault
			}
			return nil
		}
		if se := (*StatusError)(nil); errors.As(err, &se) && se.Fatal() {
			return fmt.Errorf("simagent %s: registration refused: %w", a.cfg.NodeID, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("register failed; retrying", "err", err)
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

// sync sends the next SyncRequest, with the whole outbox and Known, and
// returns the answer.
func (a *agent) sync(ctx context.Context, wait time.Duration) (*protocol.SyncResponse, error) {
	a.syncSeq++
	req := protocol.SyncRequest{
		NodeID:     a.nodeID,
		Seq:        a.syncSeq,
		Events:     slices.Clone(a.outbox),
		Known:      a.knownIDs(),
		WaitMillis: int(wait / time.Millisecond),
		Applied:    a.applied,
	}
	rctx, cancel := context.WithTimeout(ctx, wait+syncSlack)
	defer cancel()
	var resp protocol.SyncResponse
	if err := a.post(rctx, protocol.PathSync, a.token, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// finalSync reports the outbox once more after a Shutdown order, without
// waiting (best effort).
func (a *agent) finalSync(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if resp, err := a.sync(fctx, 0); err == nil {
		a.ack(resp.Ack)
	}
}

// apply acts on an answer: acknowledgement, then assignments (not when the
// answer orders a shutdown: the final sync's Known lacks them, so the
// server requeues them). Kill orders need nothing: every attempt is over as
// soon as it is accepted. Clean orders need nothing either: there are no
// directories.
func (a *agent) apply(resp *protocol.SyncResponse) {
	a.ack(resp.Ack)
	if resp.Shutdown {
		return
	}
	for _, as := range resp.Assignments {
		if _, ok := a.seen[as.AttemptID]; ok {
			continue // rule 1: an attempt runs at most once
		}
		a.seen[as.AttemptID] = struct{}{}
		now := time.Now().UTC()
		a.emit(protocol.Event{AttemptID: as.AttemptID, Kind: protocol.EventStarted, Time: now})
		exit := a.cfg.ExitCode
		a.known[as.AttemptID] = a.emit(protocol.Event{
			AttemptID: as.AttemptID, Kind: protocol.EventCompleted, Time: now,
			StartTime: now, ExitCode: &exit,
		})
		if a.cfg.OnComplete != nil {
			a.cfg.OnComplete(as)
		}
	}
}

// emit queues an event and returns its Seq.
func (a *agent) emit(ev protocol.Event) int64 {
	a.eventSeq++
	ev.Seq = a.eventSeq
	a.outbox = append(a.outbox, ev)
	return ev.Seq
}

// ack drops the events with Seq <= n, and the attempts whose completion is
// among them leave Known.
func (a *agent) ack(n int64) {
	a.outbox = slices.DeleteFunc(a.outbox, func(ev protocol.Event) bool { return ev.Seq <= n })
	for id, completed := range a.known {
		if completed <= n {
			delete(a.known, id)
		}
	}
}

func (a *agent) knownIDs() []string {
	ids := make([]string, 0, len(a.known))
	for id := range a.known {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// post sends one protocol call (see protocol.Post).
func (a *agent) post(ctx context.Context, path, token string, in, out any) error {
	return protocol.Post(ctx, a.cfg.HTTPClient, a.url, path, token, in, out)
}

// StatusError is a non-2xx answer from the server.
type StatusError = protocol.StatusError

func isStatus(err error, code int) bool {
	se := (*StatusError)(nil)
	return errors.As(err, &se) && se.Code == code
}

// backoff: 100ms doubling to 2s, plus up to 20% jitter.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = 100 * time.Millisecond
	case b.d < 2*time.Second:
		b.d = min(2*b.d, 2*time.Second)
	}
	return b.d + rand.N(b.d/5)
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
