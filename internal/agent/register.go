package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// registerTimeout bounds one register request.
const registerTimeout = 30 * time.Second

// errOrphaned: the server was unreachable for Config.OrphanTimeout.
var errOrphaned = errors.New("agent: no contact with the server within the orphan timeout")

// register registers the node, retrying with backoff until it succeeds, ctx
// ends (ctx.Err()), the orphan timeout passes (errOrphaned) or the server
// refuses it (a fatal *statusError).
func (a *agent) register(ctx context.Context) error {
	var bo backoff
	for {
		err := a.registerOnce(ctx)
		if err == nil {
			return nil
		}
		if se := (*statusError)(nil); errors.As(err, &se) && se.fatal() {
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
	}
	var resp protocol.RegisterResponse
	rctx, cancel := a.requestContext(ctx, registerTimeout)
	defer cancel()
	if err := a.post(rctx, protocol.PathRegister, "", req, &resp); err != nil {
		return err
	}
	if resp.NodeID != "" {
		a.nodeID = resp.NodeID
	}
	a.token = resp.NodeToken
	a.heartbeat = time.Duration(resp.HeartbeatInterval)
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
	return nil
}

// post sends one JSON request and decodes a 2xx answer into out. Other
// statuses give a *statusError.
func (a *agent) post(ctx context.Context, path, token string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.cfg.ServerURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}
