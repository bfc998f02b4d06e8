// Package local is the node provider of the embedded default: every compute
// node is a real `kiln agent` process on this machine, with its own root
// directory under the data directory.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kilnbatch/kiln/internal/provider"
)

// OrphanTimeoutDefault is how long a local agent keeps running without
// reaching the server before it stops its tasks and exits. It outlives a
// server restart by far, so restarts never lose running work.
const OrphanTimeoutDefault = 10 * time.Minute

// Config configures the local provider.
type Config struct {
	// NodesDir holds one root directory per node: NodesDir/<nodeID>.
	NodesDir string
	// Executable is the kiln binary to run as `kiln agent` (default: this
	// process's own executable).
	Executable string
	// OrphanTimeout is passed to agents (default OrphanTimeoutDefault).
	OrphanTimeout time.Duration
	// ServerFingerprint, when the server serves HTTPS, is its certificate's
	// fingerprint: agents pin it (--server-fingerprint), so they trust a
	// self-signed certificate, or one from a private authority, at once.
	ServerFingerprint string
	Logger            *slog.Logger
}

// Provider starts nodes as local agent processes.
type Provider struct {
	cfg  Config
	mu   sync.Mutex
	proc map[string]*os.Process
}

// New returns a local provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local provider: find own executable: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.OrphanTimeout == 0 {
		cfg.OrphanTimeout = OrphanTimeoutDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.NodesDir, 0o755); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, proc: map[string]*os.Process{}}, nil
}

func (p *Provider) Name() string { return "local" }

// RootDir is the node root directory of a node.
func (p *Provider) RootDir(nodeID string) string { return filepath.Join(p.cfg.NodesDir, nodeID) }

// Start launches `kiln agent` for the node in its own session, so that it
// survives a restart of the server and can be adopted again.
func (p *Provider) Start(ctx context.Context, n provider.NodeSpec) error {
	root := p.RootDir(n.NodeID)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(root, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(p.cfg.Executable, "agent",
		"--server", n.ServerURL,
		"--pool", n.PoolID,
		"--node-id", n.NodeID,
		"--root-dir", root,
		"--orphan-timeout", p.cfg.OrphanTimeout.String(),
	)
	if p.cfg.ServerFingerprint != "" {
		cmd.Args = append(cmd.Args, "--server-fingerprint", p.cfg.ServerFingerprint)
	}
	// The token travels in the environment, not on the command line where
	// every user of the machine could read it.
	cmd.Env = append(os.Environ(), "KILN_AGENT_TOKEN="+n.Token)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent for node %s: %w", n.NodeID, err)
	}
	pid := cmd.Process.Pid
	_ = os.WriteFile(filepath.Join(root, "agent.pid"), []byte(strconv.Itoa(pid)), 0o644)
	p.mu.Lock()
	p.proc[n.NodeID] = cmd.Process
	p.mu.Unlock()
	go func() { _ = cmd.Wait() }() // reap
	p.cfg.Logger.Info("started local node", "node", n.NodeID, "pool", n.PoolID, "pid", pid)
	return nil
}

// forget drops the node's process handle and returns its agent's pid: the
// process this provider started, or one an earlier server process started
// (from agent.pid, if it is still that node's agent); 0 when none.
func (p *Provider) forget(nodeID, root string) int {
	p.mu.Lock()
	proc := p.proc[nodeID]
	delete(p.proc, nodeID)
	p.mu.Unlock()
	if proc != nil {
		return proc.Pid
	}
	b, err := os.ReadFile(filepath.Join(root, "agent.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && !isAgent(pid, root) {
		return 0
	}
	return pid
}

// Stop ends the node's agent (if still alive) and removes its root directory.
func (p *Provider) Stop(ctx context.Context, n provider.NodeSpec) error {
	root := p.RootDir(n.NodeID)
	pid := p.forget(n.NodeID, root)
	if pid > 0 {
		// The agent was asked to shut down; give it a moment, then kill its
		// whole session (its tasks run in their own process groups, which
		// the agent kills on shutdown).
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		KillSession(pid)
	}
	if err := os.RemoveAll(root); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// isAgent checks that pid is a kiln agent of this node root, not a reused pid.
func isAgent(pid int, root string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), root)
}

// Images lists the one image local nodes run: this machine's own OS.
func (p *Provider) Images() []provider.Image {
	return []provider.Image{{
		NodeAgentSKUID: "batch.node.kiln.local",
		Publisher:      "kiln",
		Offer:          "local",
		SKU:            "host",
		Version:        "latest",
		OSType:         "linux",
	}}
}

// KillSession kills every process of the session led by sid: an agent
// started by this provider leads its own session, and its tasks (each in
// its own process group) stay in it, so this also ends the tasks of an
// agent that died without stopping them.
func KillSession(sid int) {
	if sid <= 0 {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start
		// after the last ')': state ppid pgrp session ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 4 {
			continue
		}
		if got, err := strconv.Atoi(f[3]); err == nil && got == sid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
