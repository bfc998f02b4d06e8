package local

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/kilnbatch/kiln/internal/provider"
)

var _ provider.Preempter = (*Provider)(nil)

// Preempt evicts a node as Azure evicts a Spot VM: the agent and every task
// process of its session are killed at once (no shutdown order, no grace
// period), and its root directory, the VM's local disk, is deleted.
func (p *Provider) Preempt(ctx context.Context, n provider.NodeSpec) error {
	root := p.RootDir(n.NodeID)
	pid := p.forget(n.NodeID, root)
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
