// Package slurm is the node provider of Slurm-backed pools: every Kiln
// compute node is one Slurm batch job that runs `kiln agent` on a node of
// the cluster. Start submits the job (sbatch), Stop cancels it (scancel),
// and Watch follows the jobs (squeue, scontrol) to report the nodes whose
// job was preempted, requeued, failed or cancelled by someone else.
//
// A job is named kiln-<node id>, so the provider finds the jobs of its
// nodes again after a server restart. Slurm accounting may be off: only
// squeue (which lists ended jobs for slurmctld's MinJobAge) and scontrol
// are used.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/provider"
)

// JobPrefix starts the name of every Slurm job of a Kiln node.
const JobPrefix = "kiln-"

// Defaults.
const (
	RootDirDefault       = "/tmp/kiln-slurm"
	AgentListenDefault   = "0.0.0.0:0"
	OrphanTimeoutDefault = 10 * time.Minute
	PollIntervalDefault  = 5 * time.Second
)

// Config configures the Slurm provider.
type Config struct {
	// Partition is passed to sbatch --partition (empty: the cluster's
	// default partition).
	Partition string
	// SbatchArgs are extra sbatch arguments, such as --time=1-00:00:00,
	// --cpus-per-task=8, --mem=16G or --account=proj.
	SbatchArgs []string
	// LowPrioritySbatchArgs are more sbatch arguments for the jobs of
	// Spot/low-priority nodes (after SbatchArgs: the last of a repeated
	// option wins), such as --partition=scavenger or --qos=preemptible: a
	// preemptible partition or QOS is what Azure's Spot VMs are.
	LowPrioritySbatchArgs []string
	// AgentBinary is the path of the kiln binary on the Slurm nodes
	// (default: this process's own executable, for clusters where it is on
	// a shared file system at the same path).
	AgentBinary string
	// RootDir holds the node root directories on the Slurm nodes:
	// RootDir/<node id>, and the agent's log RootDir/<node id>.log (kept
	// only when the agent failed). Default RootDirDefault.
	RootDir string
	// AgentListen is the agent's file server address on the Slurm node
	// (default AgentListenDefault: all interfaces, a free port; the agent
	// reports the address it reaches the server from).
	AgentListen string
	// OrphanTimeout is passed to agents (default OrphanTimeoutDefault).
	OrphanTimeout time.Duration
	// ServerFingerprint, when the server serves HTTPS with a self-signed
	// certificate, is pinned by the agents.
	ServerFingerprint string
	// PollInterval is how often Watch asks squeue (PollIntervalDefault).
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Provider runs nodes as Slurm jobs.
type Provider struct {
	cfg Config

	mu sync.Mutex
	// jobs are the Slurm jobs of nodes, by node id: submitted by this
	// process or found by squeue.
	jobs map[string]*job
	// settled holds the ids of jobs whose end is no (more) event: those
	// this provider cancelled and those already reported, with the time,
	// for settledKept.
	settled map[string]time.Time
}

type job struct {
	id      string
	state   string
	running bool // seen running since it was last queued
	ended   bool // an event was reported for its end
	missing int  // answers of squeue in a row without it
}

// New returns a Slurm provider. It checks that sbatch is there.
func New(cfg Config) (*Provider, error) {
	if cfg.AgentBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("slurm provider: find own executable: %w", err)
		}
		cfg.AgentBinary = exe
	}
	if cfg.RootDir == "" {
		cfg.RootDir = RootDirDefault
	}
	if cfg.AgentListen == "" {
		cfg.AgentListen = AgentListenDefault
	}
	if cfg.OrphanTimeout == 0 {
		cfg.OrphanTimeout = OrphanTimeoutDefault
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = PollIntervalDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, tool := range []string{"sbatch", "squeue", "scancel", "scontrol"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("slurm provider: %s not found in PATH (install the Slurm client commands, e.g. apt-get install slurm-client): %w", tool, err)
		}
	}
	return &Provider{cfg: cfg, jobs: map[string]*job{}, settled: map[string]time.Time{}}, nil
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Preempter = (*Provider)(nil)
	_ provider.Watcher   = (*Provider)(nil)
)

func (p *Provider) Name() string { return "slurm" }

// JobName is the Slurm job name of a node.
func JobName(nodeID string) string { return JobPrefix + nodeID }

// Start submits the node's batch job.
func (p *Provider) Start(ctx context.Context, n provider.NodeSpec) error {
	args := []string{"--parsable", "--job-name=" + JobName(n.NodeID),
		"--comment=kiln node " + n.NodeID + " of pool " + n.PoolID,
		"--nodes=1", "--ntasks=1", "--output=/dev/null", "--chdir=/tmp", "--export=ALL"}
	if p.cfg.Partition != "" {
		args = append(args, "--partition="+p.cfg.Partition)
	}
	args = append(args, p.cfg.SbatchArgs...)
	if !n.Dedicated {
		args = append(args, p.cfg.LowPrioritySbatchArgs...)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sbatch", args...)
	cmd.Stdin = strings.NewReader(p.script(n))
	// The token travels in the environment (exported to the job), not on
	// a command line. Only what sbatch and the agent need is passed: the
	// server's own secrets stay here.
	cmd.Env = append(submitEnv(os.Environ()), "KILN_AGENT_TOKEN="+n.Token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("sbatch for node %s: %w: %s", n.NodeID, err, strings.TrimSpace(stderr.String()))
	}
	id := strings.TrimSpace(string(out))
	if i := strings.IndexByte(id, ';'); i >= 0 { // "<id>;<cluster>"
		id = id[:i]
	}
	if id == "" {
		return fmt.Errorf("sbatch for node %s printed no job id", n.NodeID)
	}
	p.mu.Lock()
	p.jobs[n.NodeID] = &job{id: id, state: "PENDING"}
	p.mu.Unlock()
	p.cfg.Logger.Info("submitted Slurm job for node", "node", n.NodeID, "pool", n.PoolID, "job", id)
	return nil
}

// script is the batch script of a node: it runs the agent in the node's
// root directory, logs to RootDir/<node>.log, and on the way out removes the
// root directory (the node's local disk) and, when the agent ended well
// (shut down or cancelled), the log.
func (p *Provider) script(n provider.NodeSpec) string {
	root := strings.TrimRight(p.cfg.RootDir, "/")
	if root == "" {
		root = "/"
	}
	agent := []string{quote(p.cfg.AgentBinary), "agent",
		"--server", quote(n.ServerURL),
		"--pool", quote(n.PoolID),
		"--node-id", quote(n.NodeID),
		"--root-dir", `"$root"`,
		"--listen", quote(p.cfg.AgentListen),
		"--orphan-timeout", quote(p.cfg.OrphanTimeout.String()),
	}
	if p.cfg.ServerFingerprint != "" {
		agent = append(agent, "--server-fingerprint", quote(p.cfg.ServerFingerprint))
	}
	return `#!/bin/sh
# Kiln compute node ` + n.NodeID + ` of pool ` + n.PoolID + `
root=` + quote(root+"/"+n.NodeID) + `
log=` + quote(root+"/"+n.NodeID+".log") + `
mkdir -p "$root" || exit 1
exec >>"$log" 2>&1
echo "kiln: Slurm job $SLURM_JOB_ID on $(hostname) runs node ` + n.NodeID + `"
` + strings.Join(agent, " ") + ` &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM INT
wait $pid
rc=$?
while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
rm -rf "$root"
if [ $rc -eq 0 ]; then rm -f "$log"; fi
exit $rc
`
}

// quote quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// submitEnv keeps of the server's environment what sbatch and the job
// need: the basics and Slurm's own variables.
func submitEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "USER", name == "LOGNAME", name == "LANG", name == "TZ", name == "TMPDIR",
			strings.HasPrefix(name, "LC_"), strings.HasPrefix(name, "SLURM_"), strings.HasPrefix(name, "SBATCH_"):
			out = append(out, kv)
		}
	}
	return out
}

// Stop cancels the node's job; a job already gone is fine.
func (p *Provider) Stop(ctx context.Context, n provider.NodeSpec) error {
	p.mu.Lock()
	j := p.jobs[n.NodeID]
	delete(p.jobs, n.NodeID)
	if j != nil {
		p.settled[j.id] = time.Now()
	}
	p.mu.Unlock()
	// By name too: a job submitted by an earlier server process, or one
	// whose sbatch answer was lost, is not in p.jobs.
	ids, err := p.jobIDs(ctx, n.NodeID)
	if err != nil {
		return err
	}
	if j != nil && !contains(ids, j.id) {
		ids = append(ids, j.id)
	}
	if len(ids) == 0 {
		return nil
	}
	p.mu.Lock()
	for _, id := range ids {
		p.settled[id] = time.Now()
	}
	p.mu.Unlock()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "scancel", ids...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		// Ended jobs: not an error.
		if strings.Contains(msg, "already completing or completed") || strings.Contains(msg, "Invalid job id") {
			return nil
		}
		return fmt.Errorf("scancel %s (node %s): %w: %s", strings.Join(ids, " "), n.NodeID, err, strings.TrimSpace(msg))
	}
	p.cfg.Logger.Info("cancelled Slurm job of node", "node", n.NodeID, "jobs", ids)
	return nil
}

// Preempt evicts a node at once: its job is cancelled like on Stop.
func (p *Provider) Preempt(ctx context.Context, n provider.NodeSpec) error { return p.Stop(ctx, n) }

// jobIDs lists the ids of the node's jobs that have not ended.
func (p *Provider) jobIDs(ctx context.Context, nodeID string) ([]string, error) {
	out, err := run(ctx, "squeue", "-h", "--name="+JobName(nodeID), "-o", "%i|%T")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		id, state, ok := strings.Cut(strings.TrimSpace(line), "|")
		if ok && !terminal(state) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// run runs a Slurm command and returns its standard output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return string(out), nil
}

// Images lists the one image Slurm nodes run: the cluster's own OS.
func (p *Provider) Images() []provider.Image {
	return []provider.Image{{
		NodeAgentSKUID: "batch.node.kiln.slurm",
		Publisher:      "kiln",
		Offer:          "slurm",
		SKU:            "cluster",
		Version:        "latest",
		OSType:         "linux",
	}}
}
