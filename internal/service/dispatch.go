package service

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/scheduler"
	"github.com/kilnbatch/kiln/internal/store"
)

// dispatchLocked places queued tasks on free slots: per pool, jobs in
// priority order (then creation order), each job's tasks in FIFO order, each
// task on a node chosen by the pool's fill policy.
func (s *Service) dispatchLocked(w *store.Writes) {
	s.settleJobsLocked(w)
	byPool := map[*poolState][]*jobState{}
	for _, j := range s.jobs {
		if j.state() != azbatch.JobStateActive || j.peek() == nil {
			continue
		}
		p, ok := s.pools[key(j.account, j.poolID())]
		if !ok || deref(p.doc.State) != azbatch.PoolStateActive {
			continue
		}
		byPool[p] = append(byPool[p], j)
	}
	for p, jobs := range byPool {
		var nodes []*nodeState
		var cands []scheduler.Candidate
		for _, n := range p.nodes {
			if n.schedulable() && n.free() > 0 {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) == 0 {
			s.preemptLocked(p, jobs, w)
			continue
		}
		sort.Slice(nodes, func(a, b int) bool { return nodes[a].id < nodes[b].id })
		for _, n := range nodes {
			cands = append(cands, scheduler.Candidate{Free: n.free()})
		}
		sort.Slice(jobs, func(a, b int) bool {
			pa, pb := deref(jobs[a].doc.Priority), deref(jobs[b].doc.Priority)
			if pa != pb {
				return pa > pb
			}
			return deref(jobs[a].doc.CreationTime).Before(deref(jobs[b].doc.CreationTime))
		})
		fill := scheduler.Spread
		if p.doc.TaskSchedulingPolicy != nil && deref(p.doc.TaskSchedulingPolicy.NodeFillType) == azbatch.NodeFillTypePack {
			fill = scheduler.Pack
		}
		for _, j := range jobs {
			restore := s.excludeNodesLocked(j, nodes, cands)
			for {
				t := j.peek()
				if t == nil {
					break
				}
				if mp := deref(j.doc.MaxParallelTasks); mp > 0 && j.running >= int(mp) {
					break
				}
				if handled, placed := s.dispatchMultiInstanceLocked(p, j, t, nodes, cands, w); handled {
					if !placed {
						break
					}
					continue
				}
				i := pickNode(t, nodes, cands, fill)
				if i < 0 {
					break
				}
				j.pop()
				if _, err := s.docLocked(context.Background(), t); err != nil {
					s.log.Error("load task to assign it", "job", j.id(), "task", t.id(), "err", err)
					continue
				}
				s.assignLocked(t, nodes[i], w)
				cands[i].Free = nodes[i].free()
			}
			restore()
		}
		s.preemptLocked(p, jobs, w)
	}
}

// assignLocked creates a new attempt of t on n.
func (s *Service) assignLocked(t *taskState, n *nodeState, w *store.Writes) {
	a := &attempt{id: randomHex(12), task: t}
	a.assignment = s.taskAssignment(t, n, a.id)
	t.attempt, t.node = a, n
	n.attempts[a.id] = a
	n.used += t.slots
	t.job.running++
	delete(n.retainUntil, t.dir()) // a new run voids the old retention timer
	s.gateOnJobPrepLocked(t, n, a, w)
	nodeURL := deref(n.doc.URL)
	s.setTaskState(t, azbatch.TaskStatePreparing, func() {
		t.doc.NodeInfo = &azbatch.NodeInfo{
			AffinityID:           n.doc.AffinityID,
			NodeID:               ptr(n.id),
			NodeURL:              ptr(nodeURL),
			PoolID:               ptr(n.pool.id()),
			TaskRootDirectory:    ptr(t.dir()),
			TaskRootDirectoryURL: ptr(deref(t.doc.URL) + "/files"),
		}
	})
	s.writeTask(t, w)
	s.refreshNodeLocked(n, w)
	n.wakeLocked()
}

func (s *Service) taskAssignment(t *taskState, n *nodeState, attemptID string) protocol.Assignment {
	env := map[string]string{}
	for _, e := range t.job.doc.CommonEnvironmentSettings {
		env[deref(e.Name)] = deref(e.Value)
	}
	for _, e := range t.doc.EnvironmentSettings {
		env[deref(e.Name)] = deref(e.Value)
	}
	var wall time.Duration
	if t.doc.Constraints != nil && t.doc.Constraints.MaxWallClockTime != nil {
		if d, err := batch.ParseDuration(*t.doc.Constraints.MaxWallClockTime); err == nil && d < batch.MaxDuration {
			wall = d
		}
	}
	return protocol.Assignment{
		AttemptID:     attemptID,
		Kind:          protocol.KindTask,
		JobID:         t.job.id(),
		TaskID:        t.id(),
		CommandLine:   deref(t.doc.CommandLine),
		Dir:           t.dir(),
		Env:           env,
		MaxWallClock:  protocol.Duration(wall),
		RequiredSlots: t.slots,
		ResourceFiles: s.resourceFileOrders(t.job.account, t.doc.ResourceFiles),
		OutputFiles:   outputFileOrders(t.doc.OutputFiles),
		Packages:      s.packageOrders(t.job.account, n.pool.doc.ApplicationPackageReferences, t.doc.ApplicationPackageReferences),
		JobPrepDir:    jobPrepDir(t.job),
		User:          userOrder(t.doc.UserIdentity),
	}
}

// beginStartTaskLocked starts (or restarts) a node's start task, if its
// pool has one.
func (s *Service) beginStartTaskLocked(n *nodeState, w *store.Writes) {
	st := n.pool.doc.StartTask
	n.doc.StartTask = st
	if n.startTask != nil {
		s.detachAttemptLocked(n, n.startTask)
		n.startTask = nil
	}
	if st == nil {
		n.doc.StartTaskInfo = nil
		return
	}
	retries := int32(0)
	if n.doc.StartTaskInfo != nil && deref(n.doc.StartTaskInfo.State) == azbatch.StartTaskStateRunning {
		retries = deref(n.doc.StartTaskInfo.RetryCount)
	}
	s.runStartTaskLocked(n, retries, w)
}

func (s *Service) runStartTaskLocked(n *nodeState, retryCount int32, w *store.Writes) {
	st := n.pool.doc.StartTask
	a := &attempt{id: randomHex(12)}
	env := map[string]string{}
	for _, e := range st.EnvironmentSettings {
		env[deref(e.Name)] = deref(e.Value)
	}
	a.assignment = protocol.Assignment{
		AttemptID:      a.id,
		Kind:           protocol.KindStartTask,
		CommandLine:    deref(st.CommandLine),
		Dir:            "startup",
		Env:            env,
		WaitForSuccess: deref(st.WaitForSuccess),
		ResourceFiles:  s.resourceFileOrders(n.pool.account, st.ResourceFiles),
		Packages:       s.packageOrders(n.pool.account, n.pool.doc.ApplicationPackageReferences),
		User:           userOrder(st.UserIdentity),
	}
	n.attempts[a.id] = a
	n.startTask = a
	info := &azbatch.StartTaskInfo{State: ptr(azbatch.StartTaskStateRunning), RetryCount: ptr(retryCount)}
	if retryCount > 0 {
		info.LastRetryTime = ptr(s.now())
	}
	n.doc.StartTaskInfo = info
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	n.wakeLocked()
}

// detachAttemptLocked forgets an attempt on its node and frees its slots.
func (s *Service) detachAttemptLocked(n *nodeState, a *attempt) {
	if _, ok := n.attempts[a.id]; !ok {
		return
	}
	delete(n.attempts, a.id)
	if a.task != nil {
		n.used -= a.task.slots
		a.task.job.running--
		a.task.attempt, a.task.node = nil, nil
	}
}

// killTaskLocked stops the current attempt of t, if any, on its node.
func (s *Service) killTaskLocked(t *taskState, w *store.Writes) {
	s.endMultiRunLocked(t, w)
	if t.attempt == nil {
		return
	}
	n := t.node
	n.kill = append(n.kill, t.attempt.id)
	s.noteKillLocked(t, n)
	s.detachAttemptLocked(n, t.attempt)
	s.refreshNodeLocked(n, w)
	s.afterNodeFreedLocked(n, w)
	n.wakeLocked()
}

// afterNodeFreedLocked finishes removals and reboots waiting for a node to
// become empty.
func (s *Service) afterNodeFreedLocked(n *nodeState, w *store.Writes) {
	if len(n.attempts) > 0 {
		return
	}
	if n.removing {
		s.maybeFinishRemovalLocked(n, w)
	} else if n.rebooting {
		s.maybeFinishRebootLocked(n, w)
	}
}

// requeueTaskLocked puts a task that was assigned back in its job's queue.
// A requeue is not a retry: requeueCount grows, retryCount does not.
func (s *Service) requeueTaskLocked(t *taskState, w *store.Writes) {
	s.killTaskLocked(t, w)
	now := s.now()
	s.setTaskState(t, azbatch.TaskStateActive, func() {
		ei := t.doc.ExecutionInfo
		ei.RequeueCount = ptr(deref(ei.RequeueCount) + 1)
		ei.LastRequeueTime = &now
		ei.StartTime, ei.EndTime, ei.ExitCode, ei.Result, ei.FailureInfo = nil, nil, nil, nil, nil
	})
	s.writeTask(t, w)
	if queuesTasks(t.job) {
		t.job.push(t)
	}
}

// endTaskLocked completes a task now: with an exit code, a failure, or both.
// A running attempt is killed.
func (s *Service) endTaskLocked(t *taskState, exitCode *int32, failure *azbatch.TaskFailureInfo, w *store.Writes) {
	n := t.node
	s.killTaskLocked(t, w)
	t.queued = false
	now := s.now()
	s.setTaskState(t, azbatch.TaskStateCompleted, func() {
		ei := t.doc.ExecutionInfo
		if ei.StartTime == nil {
			ei.StartTime = &now
		}
		ei.EndTime = &now
		ei.ExitCode = exitCode
		ei.FailureInfo = failure
		if failure != nil {
			ei.Result = ptr(azbatch.TaskExecutionResultFailure)
		} else {
			ei.Result = ptr(azbatch.TaskExecutionResultSuccess)
		}
	})
	s.writeTask(t, w)
	delete(s.tasks, t.key())
	if n != nil {
		s.recordRecentTaskLocked(n, t, w)
	}
	s.recordTaskEndLocked(t, w)
	s.scheduleRetentionLocked(t)
	s.exitConditionsLocked(t, false, w)
	s.maybeCompleteJobLocked(t.job, w)
}

func (s *Service) recordRecentTaskLocked(n *nodeState, t *taskState, w *store.Writes) {
	n.doc.TotalTasksRun = ptr(deref(n.doc.TotalTasksRun) + 1)
	if deref(t.doc.ExecutionInfo.Result) == azbatch.TaskExecutionResultSuccess {
		n.doc.TotalTasksSucceeded = ptr(deref(n.doc.TotalTasksSucceeded) + 1)
	}
	info := azbatch.TaskInfo{TaskID: t.doc.ID, JobID: ptr(t.job.id()), TaskURL: t.doc.URL, TaskState: t.doc.State, ExecutionInfo: t.doc.ExecutionInfo}
	n.doc.RecentTasks = append([]azbatch.TaskInfo{info}, n.doc.RecentTasks...)
	if len(n.doc.RecentTasks) > 10 {
		n.doc.RecentTasks = n.doc.RecentTasks[:10]
	}
	// Like the running counts, these statistics reach the store with the
	// node's next state change rather than costing a write per task.
}

// applyEventLocked applies one agent event; events of attempts the node is
// no longer expected to run are stale and ignored.
func (s *Service) applyEventLocked(n *nodeState, ev protocol.Event, w *store.Writes) {
	a, ok := n.attempts[ev.AttemptID]
	if !ok {
		s.staleEventLocked(n, ev, w)
		return
	}
	if a.owner != nil {
		a.owner.event(s, n, a, ev, w)
		return
	}
	switch ev.Kind {
	case protocol.EventStarted:
		if a.task != nil {
			t := a.task
			start := ev.Time.UTC()
			s.observeTaskStartedLocked(n, t) // metrics_prom.go
			s.setTaskState(t, azbatch.TaskStateRunning, func() { t.doc.ExecutionInfo.StartTime = &start })
			s.writeTask(t, w)
		} else if n.doc.StartTaskInfo != nil {
			start := ev.Time.UTC()
			n.doc.StartTaskInfo.StartTime = &start
			s.writeNode(n, w)
		}
	case protocol.EventCompleted:
		if a.task == nil {
			s.startTaskCompletedLocked(n, a, ev, w)
			return
		}
		s.observeTaskEndedLocked(n, a.task, ev) // metrics_prom.go
		s.taskCompletedLocked(n, a, ev, w)
	}
}

// failureOf classifies a completion event.
func failureOf(ev protocol.Event) (exit *int32, failure *azbatch.TaskFailureInfo) {
	if ev.ExitCode != nil {
		exit = ptr(int32(*ev.ExitCode))
	}
	switch {
	case ev.Failure != nil:
		cat := azbatch.ErrorCategory(strings.ToLower(ev.Failure.Category))
		if cat == "" {
			cat = azbatch.ErrorCategoryUserError
		}
		failure = &azbatch.TaskFailureInfo{Category: &cat, Code: ptr(ev.Failure.Code), Message: ptr(ev.Failure.Message)}
	case ev.TimedOut:
		failure = &azbatch.TaskFailureInfo{Category: ptr(azbatch.ErrorCategoryUserError), Code: ptr("TaskEnded"), Message: ptr("The task exceeded its maximum wall clock time and was terminated.")}
	case exit != nil && *exit != 0:
		failure = &azbatch.TaskFailureInfo{Category: ptr(azbatch.ErrorCategoryUserError), Code: ptr("FailureExitCode"), Message: ptr("The task process exited with an exit code representing a failure."),
			Details: []azbatch.NameValuePair{{Name: ptr("Message"), Value: ptr("The task process exited with an exit code representing a failure")}}}
	case exit == nil:
		failure = &azbatch.TaskFailureInfo{Category: ptr(azbatch.ErrorCategoryServerError), Code: ptr("TaskEnded"), Message: ptr("The task ended without an exit code.")}
	}
	return exit, failure
}

func (s *Service) taskCompletedLocked(n *nodeState, a *attempt, ev protocol.Event, w *store.Writes) {
	t := a.task
	s.endMultiRunLocked(t, w)
	s.recordAttemptLocked(t, ev, w)
	exit, failure := failureOf(ev)
	maxRetry := int32(0)
	if t.doc.Constraints != nil {
		maxRetry = deref(t.doc.Constraints.MaxTaskRetryCount)
	}
	retries := deref(t.doc.ExecutionInfo.RetryCount)
	if failure != nil && retryable(ev) && (maxRetry == -1 || retries < maxRetry) && queuesTasks(t.job) {
		// Retry: the task goes back to active with retryCount one higher.
		s.detachAttemptLocked(n, a)
		now := s.now()
		s.setTaskState(t, azbatch.TaskStateActive, func() {
			ei := t.doc.ExecutionInfo
			ei.RetryCount = ptr(retries + 1)
			ei.LastRetryTime = &now
			ei.EndTime = &now
			ei.ExitCode, ei.FailureInfo = exit, failure
			ei.Result = ptr(azbatch.TaskExecutionResultFailure)
		})
		s.writeTask(t, w)
		t.job.push(t)
		s.recordRetryLocked(t, w)
		s.recordRecentTaskLocked(n, t, w)
		s.refreshNodeLocked(n, w)
		s.afterNodeFreedLocked(n, w)
		return
	}
	s.detachAttemptLocked(n, a)
	now := ev.Time.UTC()
	s.setTaskState(t, azbatch.TaskStateCompleted, func() {
		ei := t.doc.ExecutionInfo
		if !ev.StartTime.IsZero() {
			st := ev.StartTime.UTC()
			ei.StartTime = &st
		}
		if ei.StartTime == nil {
			ei.StartTime = &now
		}
		ei.EndTime = &now
		ei.ExitCode, ei.FailureInfo = exit, failure
		if failure != nil {
			ei.Result = ptr(azbatch.TaskExecutionResultFailure)
		} else {
			ei.Result = ptr(azbatch.TaskExecutionResultSuccess)
		}
	})
	s.writeTask(t, w)
	delete(s.tasks, t.key())
	s.recordRecentTaskLocked(n, t, w)
	s.recordTaskEndLocked(t, w)
	s.scheduleRetentionLocked(t)
	s.refreshNodeLocked(n, w)
	s.afterNodeFreedLocked(n, w)
	s.exitConditionsLocked(t, true, w)
	s.jobManagerEndedLocked(t, w)
	s.maybeCompleteJobLocked(t.job, w)
}

func (s *Service) startTaskCompletedLocked(n *nodeState, a *attempt, ev protocol.Event, w *store.Writes) {
	s.detachAttemptLocked(n, a)
	if n.startTask == a {
		n.startTask = nil
	}
	exit, failure := failureOf(ev)
	info := n.doc.StartTaskInfo
	if info == nil {
		info = &azbatch.StartTaskInfo{RetryCount: ptr(int32(0))}
		n.doc.StartTaskInfo = info
	}
	st := n.pool.doc.StartTask
	if failure != nil && st != nil {
		maxRetry := deref(st.MaxTaskRetryCount)
		if maxRetry == -1 || deref(info.RetryCount) < maxRetry {
			s.runStartTaskLocked(n, deref(info.RetryCount)+1, w)
			return
		}
	}
	end := ev.Time.UTC()
	info.State = ptr(azbatch.StartTaskStateCompleted)
	info.EndTime = &end
	if !ev.StartTime.IsZero() {
		start := ev.StartTime.UTC()
		info.StartTime = &start
	}
	info.ExitCode, info.FailureInfo = exit, failure
	if failure != nil {
		info.Result = ptr(azbatch.TaskExecutionResultFailure)
		if st != nil && deref(st.WaitForSuccess) {
			n.startFail = true
		}
	} else {
		info.Result = ptr(azbatch.TaskExecutionResultSuccess)
	}
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	s.afterNodeFreedLocked(n, w)
}
