package service

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/store"
)

// load rebuilds the in-memory state from the store at start. Attempts that
// were assigned before the restart are marked delivered-before (-1): the
// agents' next syncs say whether they run them.
func (s *Service) load(ctx context.Context) error {
	st := s.cfg.Store
	accts, err := st.AccountList(ctx)
	if err != nil {
		return err
	}
	for _, a := range accts {
		if err := s.addAccountLocked(a); err != nil {
			return err
		}
	}
	if err := s.loadAccountStats(ctx); err != nil {
		return err
	}
	if err := s.loadCertificates(ctx); err != nil {
		return err
	}
	if err := s.loadNodeUsage(ctx); err != nil {
		return err
	}
	now := s.now()
	s.started = now
	for _, a := range accts {
		pools, err := st.PoolList(ctx, a.Name)
		if err != nil {
			return err
		}
		for _, rec := range pools {
			doc := &azbatch.Pool{}
			if err := doc.UnmarshalJSON(rec.Doc); err != nil {
				return fmt.Errorf("load pool %s: %w", rec.ID, err)
			}
			s.pools[key(a.Name, rec.ID)] = &poolState{account: a.Name, doc: doc, nodes: map[string]*nodeState{}, deallocation: azbatch.NodeDeallocationOptionRequeue,
				kiln: loadPoolKiln(rec.Doc)}
		}
		jobs, err := st.JobList(ctx, a.Name)
		if err != nil {
			return err
		}
		for _, rec := range jobs {
			doc := &azbatch.Job{}
			if err := doc.UnmarshalJSON(rec.Doc); err != nil {
				return fmt.Errorf("load job %s: %w", rec.ID, err)
			}
			j := &jobState{account: a.Name, doc: doc}
			s.loadJobStats(j, rec.Doc)
			s.jobs[key(a.Name, rec.ID)] = j
			if err := s.loadCompletedCounts(ctx, j); err != nil {
				return err
			}
		}
	}
	nodes, err := st.NodeListAll(ctx)
	if err != nil {
		return err
	}
	for _, rec := range nodes {
		var nr nodeRecord
		if err := json.Unmarshal(rec.Doc, &nr); err != nil {
			return fmt.Errorf("load node %s: %w", rec.ID, err)
		}
		doc := &azbatch.Node{}
		if err := doc.UnmarshalJSON(nr.Node); err != nil {
			return fmt.Errorf("load node %s: %w", rec.ID, err)
		}
		p, ok := s.pools[key(rec.Account, rec.PoolID)]
		if !ok {
			continue
		}
		n := &nodeState{
			account: rec.Account, pool: p, id: rec.ID, doc: doc, dedicated: deref(doc.IsDedicated),
			token: nr.Token, secret: nr.Secret, fileURL: nr.FileURL, rootDir: nr.RootDir, registered: nr.Registered,
			startFail: nr.StartFail, slots: p.slotsPerNode(), attempts: map[string]*attempt{},
			wake: make(chan struct{}, 1), lastSeen: now,
			removing:    deref(doc.State) == azbatch.NodeStateLeavingPool,
			deallocated: deref(doc.State) == azbatch.NodeStateDeallocated,
			preempted:   deref(doc.State) == azbatch.NodeStatePreempted,
			// An unusable node stays so until its agent is heard from again
			// (a provider may know it will not be: provider_events.go).
			unusable: deref(doc.State) == azbatch.NodeStateUnusable,
		}
		if n.removing {
			n.removeAt = now
			n.removeOpt = azbatch.NodeDeallocationOptionRequeue
		}
		if nr.StartAttempt != "" && p.doc.StartTask != nil {
			retries := int32(0)
			if doc.StartTaskInfo != nil {
				retries = deref(doc.StartTaskInfo.RetryCount)
			}
			var w store.Writes
			s.runStartTaskLocked(n, retries, &w)
			// Keep the attempt id the agent knows.
			a := n.startTask
			delete(n.attempts, a.id)
			a.id, a.assignment.AttemptID, a.deliveredIn = nr.StartAttempt, nr.StartAttempt, -1
			n.attempts[a.id] = a
		}
		s.loadNodeRunsLocked(n, &nr)
		p.nodes[n.id] = n
		s.nodes[n.id] = n
		s.tokens[n.token] = n
	}
	// Unfinished tasks, a page at a time in seq order (so each job's queue
	// keeps its order). Queued tasks are rebuilt from their columns alone:
	// their documents stay in the store.
	var w store.Writes
	if err := s.loadSchedules(ctx, accts, &w); err != nil {
		return err
	}
	const page = 10000
	var after int64
	for {
		recs, err := st.TaskListUnfinishedPage(ctx, after, page)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			after = rec.Seq
			if err := s.loadTask(rec, &w); err != nil {
				return err
			}
		}
		if len(recs) < page {
			break
		}
	}
	s.loadHeldAttemptsLocked(&w)
	defer s.startNodes(s.recoverAutoPoolsLocked(&w))
	for _, p := range s.pools {
		starts := s.reconcilePoolLocked(p, &w)
		defer s.startNodes(starts)
	}
	for _, n := range s.nodes {
		s.refreshNodeLocked(n, &w)
	}
	s.resumeTransitionsLocked(&w)
	return s.commit(ctx, &w)
}

// loadCompletedCounts counts a job's completed tasks by result, which the
// store's per-state counts cannot tell apart.
func (s *Service) loadCompletedCounts(ctx context.Context, j *jobState) error {
	var after int64
	for {
		recs, err := s.cfg.Store.TaskList(ctx, store.TaskListParams{Account: j.account, JobID: j.id(), AfterSeq: after, Limit: 10000, States: []string{string(azbatch.TaskStateCompleted)}})
		if err != nil {
			return err
		}
		for _, r := range recs {
			after = r.Seq
			var d struct {
				ExecutionInfo struct {
					Result string `json:"result"`
				} `json:"executionInfo"`
			}
			_ = json.Unmarshal(r.Doc, &d)
			slots := max(r.Slots, 1)
			if d.ExecutionInfo.Result == string(azbatch.TaskExecutionResultFailure) {
				j.counts.Failed++
				j.counts.FailedSlots += slots
			} else {
				j.counts.Succeeded++
				j.counts.SucceededSlots += slots
			}
			s.loadCompletedParentLocked(j, r) // before any dependent is loaded
		}
		if len(recs) < 10000 {
			return nil
		}
	}
}

// loadTask rebuilds one unfinished task at start.
func (s *Service) loadTask(rec store.Task, w *store.Writes) error {
	j, ok := s.jobs[key(rec.Account, rec.JobID)]
	if !ok {
		return nil
	}
	slots := int(max(rec.Slots, 1))
	if rec.State == string(azbatch.TaskStateActive) && rec.AttemptID == "" {
		t := &taskState{job: j, tid: rec.ID, slots: slots}
		s.tasks[t.key()] = t
		j.counts.add(nil, int32(slots), 1)
		if waiting := s.loadWaitForParentsLocked(t, rec.Doc); !waiting && queuesTasks(j) {
			j.push(t)
		}
		return nil
	}
	doc, err := decodeTask(rec.Doc)
	if err != nil {
		return fmt.Errorf("load task %s/%s: %w", rec.JobID, rec.ID, err)
	}
	if doc.ExecutionInfo == nil {
		doc.ExecutionInfo = &azbatch.TaskExecutionInfo{RetryCount: ptr(int32(0)), RequeueCount: ptr(int32(0))}
	}
	t := newTaskState(j, doc)
	t.slots = slots
	s.tasks[t.key()] = t
	j.counts.add(doc, int32(t.slots), 1)
	switch {
	case rec.AttemptID != "" && s.nodes[rec.NodeID] != nil:
		n := s.nodes[rec.NodeID]
		a := &attempt{id: rec.AttemptID, task: t, deliveredIn: -1}
		a.assignment = s.taskAssignment(t, n, a.id)
		t.attempt, t.node = a, n
		n.attempts[a.id] = a
		n.used += t.slots
		j.running++
	case t.state() != azbatch.TaskStateActive:
		// Its node is gone: run it again elsewhere.
		s.requeueTaskLocked(t, w)
	case queuesTasks(j):
		j.push(t)
		t.doc = nil // queued: the store has it
	default:
		t.doc = nil
	}
	return nil
}
