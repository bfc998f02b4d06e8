package slurm

import (
	"context"
	"os/user"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/provider"
)

// Job states (squeue %T). Pending and running states are not listed: every
// state that is neither terminal nor queued counts as running.
var (
	terminalStates = map[string]bool{
		"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true, "NODE_FAIL": true,
		"BOOT_FAIL": true, "DEADLINE": true, "OUT_OF_MEMORY": true, "PREEMPTED": true, "SPECIAL_EXIT": true,
		"REVOKED": true,
	}
	queuedStates = map[string]bool{
		"PENDING": true, "REQUEUED": true, "REQUEUE_HOLD": true, "REQUEUE_FED": true, "RESV_DEL_HOLD": true,
	}
)

func terminal(state string) bool { return terminalStates[state] }

// Watch polls squeue every PollInterval and reports the nodes whose job
// was preempted or requeued after it had started (Preempted events), or
// ended in any other way this provider did not ask for: failed, timed out,
// lost its Slurm node, was cancelled by someone else, or (for the agent)
// exited. A job that disappears from squeue between two polls is reported
// as Uncertain. A job waiting in the queue to run for the first time is
// reported as Waiting on every poll.
func (p *Provider) Watch(ctx context.Context, emit func(provider.NodeEvent)) {
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	for {
		if evs, err := p.poll(ctx); err != nil {
			if ctx.Err() == nil {
				p.cfg.Logger.Warn("slurm: squeue failed", "err", err)
			}
		} else {
			for _, ev := range evs {
				emit(ev)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// settledKept is how long the ids of settled jobs are remembered.
const settledKept = time.Hour

type queued struct{ id, name, state, reason string }

// poll reads the jobs of Kiln nodes from squeue (ended ones included, as
// long as slurmctld remembers them) and returns the events since the last
// poll.
func (p *Provider) poll(ctx context.Context) ([]provider.NodeEvent, error) {
	args := []string{"-h", "-t", "all", "-o", "%i|%j|%T|%r"}
	if u, err := user.Current(); err == nil {
		args = append(args, "--user="+u.Username) // the jobs this provider submits
	}
	out, err := run(ctx, "squeue", args...)
	if err != nil {
		return nil, err
	}
	seen := map[string]queued{} // by node id; the newest job of a node wins
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(strings.TrimSpace(line), "|", 4)
		if len(f) < 4 || !strings.HasPrefix(f[1], JobPrefix) {
			continue
		}
		q := queued{id: f[0], name: f[1], state: strings.TrimSuffix(f[2], "+"), reason: f[3]}
		node := strings.TrimPrefix(q.name, JobPrefix)
		if old, ok := seen[node]; ok && newer(old.id, q.id) {
			continue
		}
		seen[node] = q
	}
	var endedIDs []string
	now := time.Now()
	p.mu.Lock()
	var evs []provider.NodeEvent
	for node, q := range seen {
		j := p.jobs[node]
		if j == nil || j.id != q.id {
			if j != nil && newer(j.id, q.id) {
				continue // an older job of a node started again
			}
			if _, ok := p.settled[q.id]; ok {
				continue
			}
			// A job submitted by an earlier server process: adopt it.
			j = &job{id: q.id}
			p.jobs[node] = j
		}
		j.state, j.missing = q.state, 0
		if _, ok := p.settled[j.id]; ok || j.ended {
			continue
		}
		switch {
		case queuedStates[q.state] && !j.running:
			evs = append(evs, provider.NodeEvent{NodeID: node, Waiting: true,
				Reason: "Slurm job " + j.id + " is " + q.state + reasonSuffix(q.reason) + "."})
		case queuedStates[q.state]:
			// Queued again after it ran, requeued (scontrol requeue,
			// preemption with PreemptMode=REQUEUE, a failed Slurm node):
			// the agent and its tasks are gone.
			j.running = false
			j.ended = true
			p.settled[j.id] = now
			evs = append(evs, provider.NodeEvent{NodeID: node, Preempted: true, Code: "SlurmJobRequeued",
				Reason: "Slurm job " + j.id + " was requeued (" + q.state + ", reason " + q.reason + ")."})
		case q.state == "PREEMPTED":
			j.ended = true
			p.settled[j.id] = now
			evs = append(evs, provider.NodeEvent{NodeID: node, Preempted: true, Code: "SlurmJobPreempted",
				Reason: "Slurm job " + j.id + " was preempted."})
		case terminal(q.state):
			j.ended = true
			p.settled[j.id] = now
			endedIDs = append(endedIDs, j.id)
			evs = append(evs, provider.NodeEvent{NodeID: node, Code: "SlurmJobEnded",
				Reason: "Slurm job " + j.id + " ended in state " + q.state + reasonSuffix(q.reason) + "."})
		default:
			j.running = true
		}
	}
	// Jobs that vanished: slurmctld forgot them (MinJobAge) or lost them.
	for node, j := range p.jobs {
		if _, ok := seen[node]; ok {
			continue
		}
		// Missing from two answers in a row: one may miss a job in
		// transition.
		if j.missing++; j.missing < 2 {
			continue
		}
		delete(p.jobs, node)
		if _, ok := p.settled[j.id]; ok || j.ended {
			continue
		}
		p.settled[j.id] = now
		evs = append(evs, provider.NodeEvent{NodeID: node, Code: "SlurmJobLost", Uncertain: true,
			Reason: "Slurm job " + j.id + " is gone from the queue (last seen " + j.state + ")."})
	}
	// Settled ids are kept long after slurmctld forgets the jobs (its
	// MinJobAge, 300s by default): a job missing from one answer of squeue
	// and back in the next is not reported again.
	for id, at := range p.settled {
		if now.Sub(at) > settledKept {
			delete(p.settled, id)
		}
	}
	p.mu.Unlock()
	// Details of ended jobs (exit code), while slurmctld remembers them.
	for i := range evs {
		if evs[i].Code != "SlurmJobEnded" {
			continue
		}
		if detail := p.jobDetail(ctx, endedIDs[0]); detail != "" {
			evs[i].Reason = strings.TrimSuffix(evs[i].Reason, ".") + ", " + detail + "."
		}
		endedIDs = endedIDs[1:]
	}
	return evs, nil
}

// jobDetail is the exit code of an ended job from scontrol show job.
func (p *Provider) jobDetail(ctx context.Context, id string) string {
	out, err := run(ctx, "scontrol", "-o", "show", "job", id)
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "ExitCode="); ok {
			return "exit code " + v
		}
	}
	return ""
}

func reasonSuffix(r string) string {
	if r == "" || r == "None" {
		return ""
	}
	return " (" + r + ")"
}

// newer reports whether job id a is newer than b (ids are numbers that
// grow; array and het job ids are not used for nodes).
func newer(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}
