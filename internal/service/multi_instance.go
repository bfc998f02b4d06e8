package service

import (
	"context"
	"net"
	"net/url"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/scheduler"
	"github.com/kilnbatch/kiln/internal/store"
)

// Multi-instance tasks (Azure's "Use multi-instance tasks to run Message
// Passing Interface (MPI) applications in Batch"). A task with
// multiInstanceSettings needs numberOfInstances nodes at once: the
// dispatcher places it only when that many nodes of the pool are free, and
// keeps the free ones for it meanwhile (no task after it in its job, nor of
// a job of lower priority, takes them). Each node gets one subtask (id 0 on
// the master, where the primary runs): it downloads the common resource
// files and runs the coordination command (multi_instance_run.go). Once
// every coordination command has exited with 0, the primary's application
// command (the task's command line) runs on the master; when it ends, the
// subtasks are killed and the task completes with its exit code. A subtask
// that fails fails the task, which is retried as a whole.
//
// As in Azure, the pool must have enableInterNodeCommunication and
// taskSlotsPerNode 1, or the task is never scheduled and stays active.

// validateMultiInstance checks a task's multiInstanceSettings.
func (s *Service) validateMultiInstance(c *azbatch.CreateTaskContent) error {
	mi := c.MultiInstanceSettings
	if mi == nil {
		return nil
	}
	if err := validateCommandLine("multiInstanceSettings.coordinationCommandLine", deref(mi.CoordinationCommandLine)); err != nil {
		return err
	}
	if n := mi.NumberOfInstances; n != nil && (*n < 1 || *n > MaxNodesPerPool) {
		return batch.InvalidProperty("multiInstanceSettings.numberOfInstances", itoa(*n), "The number of instances must be between 1 and the largest pool size.")
	}
	if c.RequiredSlots != nil && *c.RequiredSlots != 1 {
		return batch.InvalidProperty("requiredSlots", itoa(*c.RequiredSlots), "A multi-instance task requires exactly 1 slot.")
	}
	return s.validateResourceFiles("multiInstanceSettings.commonResourceFiles", mi.CommonResourceFiles)
}

// multiInstanceDoc is the settings as the task keeps them, with the
// default numberOfInstances.
func multiInstanceDoc(mi *azbatch.MultiInstanceSettings) *azbatch.MultiInstanceSettings {
	if mi == nil {
		return nil
	}
	out := *mi
	if out.NumberOfInstances == nil {
		out.NumberOfInstances = ptr(int32(1))
	}
	return &out
}

// multiInstanceLocked reports whether a queued task is a multi-instance
// task, loading its document.
func (s *Service) multiInstanceLocked(t *taskState) bool {
	if _, err := s.docLocked(context.Background(), t); err != nil {
		return false
	}
	return instancesOf(t) > 0
}

func instancesOf(t *taskState) int {
	if t.doc == nil || t.doc.MultiInstanceSettings == nil {
		return 0
	}
	return int(max(deref(t.doc.MultiInstanceSettings.NumberOfInstances), 1))
}

// hostsMultiInstance reports whether the pool can ever run a multi-instance
// task (Azure's requirements).
func hostsMultiInstance(p *poolState) bool {
	return deref(p.doc.EnableInterNodeCommunication) && p.slotsPerNode() == 1
}

// dispatchMultiInstanceLocked is dispatchLocked's step for the task at the
// head of a job's queue: handled reports that it is a multi-instance task,
// placed that it was placed (and popped). A task that cannot be placed yet
// reserves the pool's free nodes for this pass when the pool has enough
// nodes to run it some day.
func (s *Service) dispatchMultiInstanceLocked(p *poolState, j *jobState, t *taskState, nodes []*nodeState, cands []scheduler.Candidate, w *store.Writes) (handled, placed bool) {
	if _, err := s.docLocked(context.Background(), t); err != nil {
		return false, false // the ordinary path reports it
	}
	want := instancesOf(t)
	if want == 0 {
		return false, false
	}
	if !hostsMultiInstance(p) {
		return true, false
	}
	var free []int
	for i := range nodes {
		if cands[i].Free > 0 {
			free = append(free, i)
		}
	}
	if len(free) < want {
		usable := 0
		for _, n := range p.nodes {
			if n.schedulable() && !prepFailedOn(n, j) {
				usable++
			}
		}
		if usable >= want {
			for _, i := range free {
				cands[i].Free = 0
			}
		}
		return true, false
	}
	j.pop()
	chosen := make([]*nodeState, want)
	for k, i := range free[:want] {
		chosen[k] = nodes[i]
	}
	s.placeMultiInstanceLocked(t, chosen, w)
	for _, i := range free[:want] {
		cands[i].Free = nodes[i].free()
	}
	return true, true
}

// placeMultiInstanceLocked starts a run of t on nodes, the first being the
// master: the primary's attempt (held until every subtask coordinated) and
// one subtask per node.
func (s *Service) placeMultiInstanceLocked(t *taskState, nodes []*nodeState, w *store.Writes) {
	s.forgetSubtasksLocked(t.key(), false, w) // a retry replaces the last run's
	run := &multiRun{task: t}
	for _, n := range nodes {
		run.hosts = append(run.hosts, nodeIP(n))
	}
	run.master = net.JoinHostPort(run.hosts[0], nodePort(nodes[0]))
	s.assignLocked(t, nodes[0], w)
	app := t.attempt
	app.held = true
	app.assignment.MultiInstance = run.info(0)
	if s.multi == nil {
		s.multi = map[*taskState]*multiRun{}
	}
	s.multi[t] = run
	for i, n := range nodes {
		sub := &subtask{run: run, id: i, node: n, account: t.job.account, jobID: t.job.id(), taskID: t.id()}
		run.subs = append(run.subs, sub)
		s.startSubtaskLocked(sub, "", w)
	}
}

// nodeIP is the address a node registered with (local nodes: the loopback
// address they reach the server from).
func nodeIP(n *nodeState) string {
	if ip := deref(n.doc.IPAddress); ip != "" {
		return ip
	}
	return "127.0.0.1"
}

// nodePort is the port of the node's agent file server: reserved for Kiln,
// as Azure's AZ_BATCH_MASTER_NODE port is for the Batch service.
func nodePort(n *nodeState) string {
	if u, err := url.Parse(n.fileURL); err == nil && u.Port() != "" {
		return u.Port()
	}
	return "6000"
}

// multiRun is one run of a multi-instance task: its subtasks, by id.
type multiRun struct {
	task   *taskState
	subs   []*subtask
	hosts  []string // by subtask id: the master first
	master string   // ip:port
}

func (r *multiRun) info(id int) *protocol.MultiInstance {
	return &protocol.MultiInstance{SubtaskID: id, Hosts: r.hosts, Master: r.master}
}

func (r *multiRun) coordinated() bool {
	for _, sub := range r.subs {
		if !sub.coordinated {
			return false
		}
	}
	return true
}
