package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Joining agents (bring-your-own nodes, docs/remote-agents.md): an agent run
// by hand with a pool's join token registers with Join set. The server
// admits it as a node of the pool, or answers Standby while the pool has
// all the nodes its target asks for; the agent then registers again every
// RetryAfter. When its node leaves the pool (Shutdown), the agent stops its
// tasks and waits as standby again, in a fresh agent (RunJoin), instead of
// exiting. Its node id is kept in NodeIDFile in the root directory, so that
// a restarted agent is the same node again.

// NodeIDFile is the file in the node root directory that keeps a joining
// agent's node id.
const NodeIDFile = "kiln-node-id"

var nodeIDShape = regexp.MustCompile(`^tvmps_[0-9a-f]{32,64}_[dp]$`)

// errBackToStandby: an agent that was a node is told to wait as standby
// (the server lost its node): its tasks stop and a fresh agent waits.
var errBackToStandby = errors.New("agent: the node is no longer in the pool; waiting as standby")

// standbyError is a Standby answer to a registration.
type standbyError struct {
	retry   time.Duration
	message string
}

func (e *standbyError) Error() string { return "standby: " + e.message }

// RunJoin runs a joining agent (cfg.Join is implied) until ctx is done, the
// server refuses it (wrong or revoked join token: the error says so) or the
// orphan timeout passes. Between two lives as a node it waits as standby.
func RunJoin(ctx context.Context, cfg Config) error {
	cfg.Join = true
	if cfg.ServerURL == "" || cfg.PoolID == "" || cfg.Token == "" || cfg.RootDir == "" {
		return errors.New("agent: joining a pool needs a server URL, a pool id, its join token and a root directory")
	}
	for {
		id, err := loadNodeID(cfg.RootDir, !cfg.LowPriority)
		if err != nil {
			return err
		}
		cfg.NodeID = id
		a, err := newAgent(cfg)
		if err != nil {
			return err
		}
		err = a.run(ctx)
		a.root.Close()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errBackToStandby):
			a.log.Info("the server no longer has this node; its tasks were stopped; waiting as standby")
			continue
		case err != nil:
			a.log.Error("agent stops", "err", err)
			return err
		case a.orphaned():
			return nil
		}
		a.log.Info("the node left the pool; waiting as standby")
	}
}

// joined handles the answer to a joining registration: a Standby answer
// becomes a *standbyError; the node id the server gives is kept.
func (a *agent) joined(resp *protocol.RegisterResponse) error {
	if resp.NodeID != "" && resp.NodeID != a.cfg.NodeID {
		if err := saveNodeID(a.rootDir, resp.NodeID); err != nil {
			a.log.Warn("keep node id", "err", err)
		}
		a.cfg.NodeID = resp.NodeID
	}
	if !resp.Standby {
		return nil
	}
	a.lastContact = time.Now()
	if a.token != "" {
		return errBackToStandby
	}
	retry := time.Duration(resp.RetryAfter)
	if retry <= 0 {
		retry = 2 * time.Second
	}
	return &standbyError{retry: retry, message: resp.Message}
}

// standbyWait reports whether err is a Standby answer, and how long to wait.
func (a *agent) standbyWait(err error) (time.Duration, bool) {
	var se *standbyError
	if !errors.As(err, &se) {
		return 0, false
	}
	if !a.standbyLogged {
		a.log.Info("waiting as standby", "pool", a.cfg.PoolID, "why", se.message, "retry", se.retry)
		a.standbyLogged = true
	}
	return se.retry, true
}

// loadNodeID returns the node id kept in root, or a new one (kept).
func loadNodeID(root string, dedicated bool) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("agent: root directory: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(root, NodeIDFile))
	if id := strings.TrimSpace(string(b)); err == nil && nodeIDShape.MatchString(id) {
		return id, nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	suffix := "_d"
	if !dedicated {
		suffix = "_p"
	}
	id := "tvmps_" + hex.EncodeToString(buf) + suffix
	return id, saveNodeID(root, id)
}

func saveNodeID(root, id string) error {
	tmp := filepath.Join(root, NodeIDFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(root, NodeIDFile))
}
