package service

import (
	"context"
	"encoding/json"
	"net"
	"sort"
	"strings"

	"github.com/kilnbatch/kiln/internal/store"
)

// subtaskRecord is a node's record of a subtask it runs or ran (in
// nodeRecord.Subtasks): what Task_ListSubtasks shows, and while the run
// goes on, the attempt and whether its coordination command succeeded.
type subtaskRecord struct {
	Account     string          `json:"account"`
	JobID       string          `json:"jobId"`
	TaskID      string          `json:"taskId"`
	ID          int             `json:"id"`
	Attempt     string          `json:"attempt,omitempty"`
	Coordinated bool            `json:"coordinated,omitempty"`
	Info        json.RawMessage `json:"info"` // azbatch.Subtask
}

func (n *nodeState) subtaskRecords() []subtaskRecord {
	if len(n.subtasks) == 0 {
		return nil
	}
	keys := make([]string, 0, len(n.subtasks))
	for k := range n.subtasks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]subtaskRecord, 0, len(keys))
	for _, k := range keys {
		sub := n.subtasks[k]
		rec := subtaskRecord{Account: sub.account, JobID: sub.jobID, TaskID: sub.taskID, ID: sub.id, Coordinated: sub.coordinated}
		rec.Info, _ = sub.info.MarshalJSON()
		if sub.attempt != nil {
			rec.Attempt = sub.attempt.id
		}
		out = append(out, rec)
	}
	return out
}

// loadSubtaskRecordsLocked rebuilds a node's subtasks at start; their
// attempts come back with their runs in loadMultiRunsLocked.
func (s *Service) loadSubtaskRecordsLocked(n *nodeState, recs []subtaskRecord) {
	for _, rec := range recs {
		if s.jobs[key(rec.Account, rec.JobID)] == nil {
			continue
		}
		sub := &subtask{id: rec.ID, node: n, account: rec.Account, jobID: rec.JobID, taskID: rec.TaskID,
			coordinated: rec.Coordinated, loadAttempt: rec.Attempt}
		if err := sub.info.UnmarshalJSON(rec.Info); err != nil {
			s.log.Error("load subtask", "node", n.id, "task", rec.TaskID, "err", err)
			continue
		}
		if n.subtasks == nil {
			n.subtasks = map[string]*subtask{}
		}
		n.subtasks[sub.key()] = sub
	}
}

// loadMultiRunsLocked rebuilds the runs of the multi-instance tasks that
// were running: each subtask's attempt as delivered before the restart,
// and the primary held until every subtask has coordinated. A run that
// lost a subtask (its node is gone) runs again from the start.
func (s *Service) loadMultiRunsLocked(w *store.Writes) {
	byTask := map[string][]*subtask{}
	for _, n := range s.nodes {
		for _, sub := range n.subtasks {
			if sub.loadAttempt != "" {
				k := taskKey(sub.account, sub.jobID, sub.taskID)
				byTask[k] = append(byTask[k], sub)
			}
		}
	}
	for k, subs := range byTask {
		t := s.tasks[k]
		sort.Slice(subs, func(a, b int) bool { return subs[a].id < subs[b].id })
		ok := t != nil && t.attempt != nil && instancesOf(t) == len(subs) && subs[0].node == t.node
		for i, sub := range subs {
			ok = ok && sub.id == i
		}
		if !ok {
			for _, sub := range subs {
				sub.loadAttempt = "" // its agent is told to kill it: no one expects it
			}
			if t != nil && t.attempt != nil && instancesOf(t) > 0 {
				s.requeueTaskLocked(t, w)
			}
			continue
		}
		run := &multiRun{task: t}
		for _, sub := range subs {
			run.hosts = append(run.hosts, nodeIP(sub.node))
		}
		run.master = net.JoinHostPort(run.hosts[0], nodePort(subs[0].node))
		if s.multi == nil {
			s.multi = map[*taskState]*multiRun{}
		}
		s.multi[t] = run
		for _, sub := range subs {
			sub.run = run
			run.subs = append(run.subs, sub)
			id := sub.loadAttempt
			sub.loadAttempt = ""
			s.startSubtaskLocked(sub, id, w)
		}
		app := t.attempt
		app.assignment.MultiInstance = run.info(0)
		if !run.coordinated() {
			app.held, app.deliveredIn = true, 0
		}
	}
	// Tasks placed before the restart whose subtasks were never recorded
	// (none: placement records them in the same commit) would run again.
	for _, t := range s.tasks {
		if t.attempt != nil && instancesOf(t) > 0 && s.multi[t] == nil {
			s.requeueTaskLocked(t, w)
		}
	}
}

// forgetSubtasksLocked drops the subtask records of a task (its key) from
// every node; clean also deletes the subtasks' directories on the
// secondaries ("All subtask directories and their files are deleted").
func (s *Service) forgetSubtasksLocked(tkey string, clean bool, w *store.Writes) {
	prefix := tkey + "\x00"
	for _, n := range s.nodes {
		changed := false
		for k, sub := range n.subtasks {
			if !strings.HasPrefix(k, prefix) || sub.attempt != nil {
				continue
			}
			delete(n.subtasks, k)
			changed = true
			if clean && sub.id > 0 && sub.info.NodeInfo != nil {
				s.cleanOnNodeLocked(n.id, deref(sub.info.NodeInfo.TaskRootDirectory))
			}
		}
		if changed {
			s.writeNode(n, w)
		}
	}
}

// TaskSubtasks lists the subtasks of a multi-instance task, without the
// primary (id 0), by id; a task that is not multi-instance has none. Only
// nodes still in their pool are asked.
func (s *Service) TaskSubtasks(ctx context.Context, account, jobID, taskID string) (ListPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return ListPage{}, err
	}
	if _, _, err := s.taskLocked(ctx, account, jobID, taskID); err != nil {
		return ListPage{}, err
	}
	prefix := taskKey(account, jobID, taskID) + "\x00"
	var subs []*subtask
	for _, n := range s.nodes {
		for k, sub := range n.subtasks {
			if sub.id > 0 && strings.HasPrefix(k, prefix) {
				subs = append(subs, sub)
			}
		}
	}
	sort.Slice(subs, func(a, b int) bool { return subs[a].id < subs[b].id })
	page := ListPage{Items: make([]Object, 0, len(subs))}
	for _, sub := range subs {
		b, err := sub.info.MarshalJSON()
		if err != nil {
			return ListPage{}, err
		}
		page.Items = append(page.Items, Object{Doc: b})
	}
	return page, nil
}
