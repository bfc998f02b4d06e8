package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kilnbatch/kiln/internal/provider"
)

var _ provider.Preempter = (*Provider)(nil)

// Preempt evicts a node as Azure evicts a Spot VM: the agent and every task
// process of its session are killed at once (no shutdown order, no grace
// period), and its root directory, the VM's local disk, is deleted.
func (p *Provider) Preempt(ctx context.Context, n provider.NodeSpec) error {
	root := p.RootDir(n.NodeID)
	p.mu.Lock()
	proc := p.proc[n.NodeID]
	delete(p.proc, n.NodeID)
	p.mu.Unlock()
	pid := 0
	if proc != nil {
		pid = proc.Pid
	} else if b, err := os.ReadFile(filepath.Join(root, "agent.pid")); err == nil {
		// An agent started by an earlier server process.
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && !isAgent(pid, root) {
			pid = 0
		}
	}
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		KillSession(pid)
	}
	if err := os.RemoveAll(root); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p.cfg.Logger.Info("preempted local node", "node", n.NodeID, "pool", n.PoolID, "pid", pid)
	return nil
}
