package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// registerTimeout bounds one register request.
const registerTimeout = 30 * time.Second

// errOrphaned: the server was unreachable for Config.OrphanTimeout.
var errOrphaned = errors.New("agent: no contact with the server within the orphan timeout")

// register registers the node, retrying with backoff until it succeeds, ctx
// ends (ctx.Err()), the orphan timeout passes (errOrphaned) or the server
// refuses it (a fatal *protocol.StatusError).
func (a *agent) register(ctx context.Context) error {
	var bo backoff
	for {
		err := a.registerOnce(ctx)
		if err == nil {
			return nil
		}
		if wait, ok := a.standbyWait(err); ok { // join.go
			if !a.sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		if se := (*protocol.StatusError)(nil); errors.As(err, &se) && se.Fatal() {
			return fmt.Errorf("agent: registration refused: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if a.orphaned() {
			return errOrphaned
		}
		a.log.Warn("register failed; retrying", "err", err)
		a.sleep(ctx, bo.next())
	}
}

func (a *agent) registerOnce(ctx context.Context) error {
	req := protocol.RegisterRequest{
		ProtocolVersion: protocol.Version,
		PoolID:          a.cfg.PoolID,
		NodeID:          a.cfg.NodeID,
		Token:           a.cfg.Token,
		Hostname:        a.hostname,
		IP:              a.ip,
		FileServerURL:   a.fileServerURL,
		RootDir:         a.rootDir,
		AgentVersion:    agentVersion(),
		Known:           a.knownIDs(),
		Join:            a.cfg.Join,
		LowPriority:     a.cfg.LowPriority,
	}
	var resp protocol.RegisterResponse
	rctx, cancel := a.requestContext(ctx, registerTimeout)
	defer cancel()
	sent := time.Now()
	if err := a.post(rctx, protocol.PathRegister, "", req, &resp); err != nil {
		return err
	}
	a.contact(sent) // fence.go
	if a.cfg.Join {
		if err := a.joined(&resp); err != nil { // join.go: standby, or the node id to keep
			return err
		}
	}
	if resp.NodeID != "" {
		a.nodeID = resp.NodeID
	}
	a.token = resp.NodeToken
	a.heartbeat = time.Duration(resp.HeartbeatInterval)
	a.mu.Lock()
	a.nodeTimeout = time.Duration(resp.NodeTimeout)
	a.mu.Unlock()
	if a.heartbeat <= 0 {
		a.heartbeat = HeartbeatIntervalDefault
	}
	a.mu.Lock()
	a.node = resp.Node
	a.mu.Unlock()
	secret := resp.Node.NodeSecret
	a.secret.Store(&secret)
	a.lastContact = time.Now()
	a.log.Info("registered", "nodeId", a.nodeID, "heartbeat", a.heartbeat, "known", len(req.Known))
	a.installNodePackages(resp.Node.Packages)
	if err := a.installCertificates(resp.Node.Certificates); err != nil {
		a.log.Warn("install certificates", "err", err)
	}
	return nil
}

// installNodePackages installs the pool's application packages in the
// background, as Azure does when a node joins. Attempts install them again
// before they run (a no-op once installed; it waits for an install in
// progress), so a start task delivered with the registration still starts
// after them, and a failed install is retried by the next attempt, which
// fails with ApplicationPackageError if it fails again.
func (a *agent) installNodePackages(pkgs []protocol.Package) {
	if len(pkgs) == 0 {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.pkgs.installAll(a.tasksCtx, pkgs); err != nil && a.tasksCtx.Err() == nil {
			a.log.Warn("pool application packages not installed", "err", err)
		}
	}()
}

// post sends one protocol call (see protocol.Post).
func (a *agent) post(ctx context.Context, path, token string, in, out any) error {
	return protocol.Post(ctx, a.client, a.cfg.ServerURL, path, token, in, out)
}
