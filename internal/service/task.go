package service

import (
	"context"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/cmdline"
	"github.com/kilnbatch/kiln/internal/store"
)

// MaxTasksPerCollection is Azure's limit of tasks in one Add Task Collection.
const MaxTasksPerCollection = 100

// taskState is an unfinished task in memory (active, preparing, running).
// Completed tasks live only in the store. An active task that waits in its
// job's queue keeps no document (doc is nil): a job of a million queued
// tasks costs a few hundred bytes per task. The document is loaded from the
// store when the task is assigned or changed (docLocked).
type taskState struct {
	job     *jobState
	tid     string
	doc     *azbatch.Task
	attempt *attempt   // current attempt, nil while active
	node    *nodeState // node of the current attempt
	queued  bool
	slots   int
	// parents counts the unsatisfied parents of a task that waits for its
	// dependencies outside the queue (dependencies.go); 0 otherwise.
	parents int64
	// readyAt is when the task last became eligible to run (Unix ns, for
	// the scheduling latency metric, metrics_prom.go); 0 once observed.
	readyAt int64
}

func newTaskState(j *jobState, doc *azbatch.Task) *taskState {
	return &taskState{job: j, tid: deref(doc.ID), doc: doc, slots: int(max(deref(doc.RequiredSlots), 1))}
}

func (t *taskState) id() string { return t.tid }

// state is the task's state; a task without a document is active.
func (t *taskState) state() azbatch.TaskState {
	if t.doc == nil {
		return azbatch.TaskStateActive
	}
	return deref(t.doc.State)
}

// docLocked returns the task's document, loading it from the store if the
// task dropped it while queued.
func (s *Service) docLocked(ctx context.Context, t *taskState) (*azbatch.Task, error) {
	if t.doc != nil {
		return t.doc, nil
	}
	rec, err := s.cfg.Store.TaskGet(context.WithoutCancel(ctx), t.job.account, t.job.id(), t.tid)
	if err != nil {
		return nil, err
	}
	doc, err := decodeTask(rec.Doc)
	if err != nil {
		return nil, err
	}
	if doc.ExecutionInfo == nil {
		doc.ExecutionInfo = &azbatch.TaskExecutionInfo{RetryCount: ptr(int32(0)), RequeueCount: ptr(int32(0))}
	}
	t.doc = doc
	return doc, nil
}

func (t *taskState) key() string { return taskKey(t.job.account, t.job.id(), t.id()) }

// dir is the task directory relative to the node root, in Azure's layout.
func (t *taskState) dir() string { return "workitems/" + t.job.id() + "/job-1/" + t.id() }

func (t *taskState) record() (store.Task, error) {
	b, err := encodeTask(t.doc)
	if err != nil {
		return store.Task{}, err
	}
	rec := store.Task{Account: t.job.account, JobID: t.job.id(), ID: t.id(), State: string(t.state()), Slots: int32(t.slots), Doc: b}
	if t.state() == azbatch.TaskStateCompleted && t.doc.ExecutionInfo != nil {
		rec.Result = string(deref(t.doc.ExecutionInfo.Result))
	}
	if t.attempt != nil {
		rec.AttemptID = t.attempt.id
		rec.NodeID = t.node.id
	}
	return rec, nil
}

func (s *Service) writeTask(t *taskState, w *store.Writes) {
	rec, err := t.record()
	if err != nil {
		s.log.Error("encode task", "err", err)
		return
	}
	for i := range w.Tasks {
		if w.Tasks[i].JobID == rec.JobID && w.Tasks[i].ID == rec.ID && w.Tasks[i].Account == rec.Account {
			w.Tasks[i] = rec
			return
		}
	}
	w.Tasks = append(w.Tasks, rec)
}

func (t *taskState) object() (Object, error) {
	return object(t.doc, (*string)(t.doc.ETag), t.doc.LastModified, t.doc.CreationTime)
}

// category is where a task counts in Get Task Counts; a task without a
// document is active.
func category(doc *azbatch.Task) int {
	if doc == nil {
		return 0
	}
	switch deref(doc.State) {
	case azbatch.TaskStateActive:
		return 0
	case azbatch.TaskStatePreparing, azbatch.TaskStateRunning:
		return 1
	}
	if doc.ExecutionInfo != nil && deref(doc.ExecutionInfo.Result) == azbatch.TaskExecutionResultFailure {
		return 3
	}
	return 2
}

func (c *jobCounts) add(doc *azbatch.Task, slots int32, sign int32) {
	switch category(doc) {
	case 0:
		c.Active += sign
		c.ActiveSlots += sign * slots
	case 1:
		c.Running += sign
		c.RunningSlots += sign * slots
	case 2:
		c.Succeeded += sign
		c.SucceededSlots += sign * slots
	case 3:
		c.Failed += sign
		c.FailedSlots += sign * slots
	}
}

// setTaskState moves a task to a new state, keeping the job's counts right.
func (s *Service) setTaskState(t *taskState, st azbatch.TaskState, mutate func()) {
	t.job.counts.add(t.doc, int32(t.slots), -1)
	if st != t.state() {
		now := s.now()
		t.doc.PreviousState = t.doc.State
		t.doc.PreviousStateTransitionTime = t.doc.StateTransitionTime
		t.doc.State = &st
		t.doc.StateTransitionTime = &now
	}
	if mutate != nil {
		mutate()
	}
	t.job.counts.add(t.doc, int32(t.slots), 1)
}

func validateCommandLine(prop, cl string) error {
	if strings.TrimSpace(cl) == "" {
		return batch.MissingProperty(prop)
	}
	if _, err := cmdline.Split(cl); err != nil {
		return batch.InvalidProperty(prop, cl, err.Error())
	}
	return nil
}

func validateTaskConstraints(c *azbatch.TaskConstraints) error {
	if c == nil {
		return nil
	}
	for name, v := range map[string]*string{"constraints.maxWallClockTime": c.MaxWallClockTime, "constraints.retentionTime": c.RetentionTime} {
		if v == nil {
			continue
		}
		if _, err := batch.ParseDuration(*v); err != nil {
			return batch.InvalidProperty(name, *v, err.Error())
		}
	}
	if r := deref(c.MaxTaskRetryCount); r < -1 {
		return batch.InvalidProperty("constraints.maxTaskRetryCount", itoa(r), "The value must be -1 or more.")
	}
	return nil
}

// newTaskDoc validates a task add and builds its document.
func (s *Service) newTaskDoc(account, jobID string, c *azbatch.CreateTaskContent, maxRetry int32) (*azbatch.Task, error) {
	id := deref(c.ID)
	if err := batch.ValidateID("id", id, 64); err != nil {
		return nil, err
	}
	if err := validateCommandLine("commandLine", deref(c.CommandLine)); err != nil {
		return nil, err
	}
	if err := validateTaskConstraints(c.Constraints); err != nil {
		return nil, err
	}
	if err := s.validateMultiInstance(c); err != nil {
		return nil, err
	}
	if err := s.validateResourceFiles("resourceFiles", c.ResourceFiles); err != nil {
		return nil, err
	}
	if err := validateOutputFiles(c.OutputFiles); err != nil {
		return nil, err
	}
	if err := validateUserIdentity("userIdentity", c.UserIdentity); err != nil {
		return nil, err
	}
	if err := validatePackageRefs("applicationPackageReferences", c.ApplicationPackageReferences); err != nil {
		return nil, err
	}
	slots := deref(c.RequiredSlots)
	if c.RequiredSlots != nil && slots < 1 {
		return nil, batch.InvalidProperty("requiredSlots", itoa(slots), "The value must be at least 1.")
	}
	if slots == 0 {
		slots = 1
	}
	now := s.now()
	cons := &azbatch.TaskConstraints{MaxWallClockTime: ptr(batch.MaxDurationISO), RetentionTime: ptr("P7D"), MaxTaskRetryCount: ptr(maxRetry)}
	if c.Constraints != nil {
		if c.Constraints.MaxWallClockTime != nil {
			cons.MaxWallClockTime = c.Constraints.MaxWallClockTime
		}
		if c.Constraints.RetentionTime != nil {
			cons.RetentionTime = c.Constraints.RetentionTime
		}
		if c.Constraints.MaxTaskRetryCount != nil {
			cons.MaxTaskRetryCount = c.Constraints.MaxTaskRetryCount
		}
	}
	ui := c.UserIdentity
	if ui == nil {
		ui = &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{Scope: ptr(azbatch.AutoUserScopePool), ElevationLevel: ptr(azbatch.ElevationLevelNonAdmin)}}
	}
	return &azbatch.Task{
		ID:                           ptr(id),
		DisplayName:                  c.DisplayName,
		URL:                          ptr(s.cfg.AccountURL(account) + "/jobs/" + jobID + "/tasks/" + id),
		ETag:                         ptr(azcore.ETag(s.newETag())),
		CreationTime:                 &now,
		LastModified:                 &now,
		State:                        ptr(azbatch.TaskStateActive),
		StateTransitionTime:          &now,
		CommandLine:                  c.CommandLine,
		ResourceFiles:                c.ResourceFiles,
		OutputFiles:                  c.OutputFiles,
		EnvironmentSettings:          c.EnvironmentSettings,
		AffinityInfo:                 c.AffinityInfo,
		Constraints:                  cons,
		RequiredSlots:                &slots,
		UserIdentity:                 ui,
		ExitConditions:               c.ExitConditions,
		MultiInstanceSettings:        multiInstanceDoc(c.MultiInstanceSettings),
		DependsOn:                    c.DependsOn,
		ApplicationPackageReferences: c.ApplicationPackageReferences,
		AuthenticationTokenSettings:  c.AuthenticationTokenSettings,
		ContainerSettings:            c.ContainerSettings,
		ExecutionInfo:                &azbatch.TaskExecutionInfo{RetryCount: ptr(int32(0)), RequeueCount: ptr(int32(0))},
	}, nil
}

// escapesDir reports whether a relative path leaves its directory.
func escapesDir(p string) bool {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "\\") {
		return true
	}
	depth := 0
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		switch seg {
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		case ".":
		default:
			depth++
		}
	}
	return false
}

func (s *Service) jobForTasksLocked(account, jobID string) (*jobState, error) {
	j, err := s.jobLocked(account, jobID)
	if err != nil {
		return nil, err
	}
	switch j.state() {
	case azbatch.JobStateCompleted:
		return nil, batch.Conflict("JobCompleted", "The specified job is already in a completed state.").With("id", jobID)
	case azbatch.JobStateTerminating:
		return nil, batch.Conflict("JobBeingTerminated", "The specified job is being terminated.").With("id", jobID)
	case azbatch.JobStateDeleting:
		return nil, batch.Conflict("JobBeingDeleted", "The specified job is being deleted.").With("id", jobID)
	}
	return j, nil
}

func jobMaxRetry(j *jobState) int32 {
	if j.doc.Constraints == nil {
		return 0
	}
	return deref(j.doc.Constraints.MaxTaskRetryCount)
}

// TaskAdd adds one task to a job.
func (s *Service) TaskAdd(ctx context.Context, account, jobID string, c *azbatch.CreateTaskContent) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.jobForTasksLocked(account, jobID)
	if err != nil {
		return Object{}, err
	}
	doc, err := s.newTaskDoc(account, j.id(), c, jobMaxRetry(j))
	if err == nil {
		err = taskIDFree(j, deref(c.ID))
	}
	if err != nil {
		return Object{}, err
	}
	if err := rulesOf(j).check(c); err != nil {
		return Object{}, err
	}
	t := newTaskState(j, doc)
	rec, err := t.record()
	if err != nil {
		return Object{}, err
	}
	errs, err := s.cfg.Store.TaskInsert(context.WithoutCancel(ctx), []store.Task{rec})
	if err != nil {
		return Object{}, err
	}
	if errs[0] != nil {
		return Object{}, batch.Conflict("TaskExists", "The specified task already exists.").With("id", t.id())
	}
	o, err := t.object()
	if err != nil {
		return Object{}, err
	}
	s.acceptTasksLocked(j, []*taskState{t}, true)
	var w store.Writes
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return o, nil
}

// acceptTasksLocked makes tasks known to the scheduler. With dropDocs, queued
// tasks forget their documents, which must then be committed to the store.
func (s *Service) acceptTasksLocked(j *jobState, ts []*taskState, dropDocs bool) {
	for _, t := range ts {
		s.tasks[t.key()] = t
		j.counts.add(t.doc, int32(t.slots), 1)
		// A task waiting for its dependencies enters the queue when its last
		// parent is satisfied (dependencies.go).
		if waiting := s.waitForParentsLocked(t); !waiting && queuesTasks(j) {
			j.push(t)
		}
		if dropDocs && t.state() == azbatch.TaskStateActive {
			t.doc = nil // the store has it; load it again when assigned
		}
	}
}

// TaskAddCollection adds up to 100 tasks in one transaction, with a result
// per task: a task that fails validation or exists already does not stop
// the others.
func (s *Service) TaskAddCollection(ctx context.Context, account, jobID string, cs []azbatch.CreateTaskContent) ([]azbatch.TaskAddResult, error) {
	if len(cs) == 0 {
		return nil, batch.MissingProperty("value")
	}
	if len(cs) > MaxTasksPerCollection {
		e := batch.Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large: at most %d tasks can be added in one request.", MaxTasksPerCollection)
		e.Values = []batch.KV{{Key: "MaxTasksPerRequest", Value: itoa(MaxTasksPerCollection)}}
		return nil, e
	}
	// Validate and encode the tasks without the lock, so that concurrent
	// requests prepare in parallel; then insert and queue them under it.
	s.mu.Lock()
	j, err := s.jobForTasksLocked(account, jobID)
	var (
		maxRetry int32
		rules    taskRules
	)
	if err == nil {
		maxRetry = jobMaxRetry(j)
		rules = rulesOf(j)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	results := make([]azbatch.TaskAddResult, len(cs))
	var (
		ts   []*taskState
		recs []store.Task
		idx  []int
		seen = map[string]bool{}
	)
	for i := range cs {
		id := deref(cs[i].ID)
		results[i].TaskID = ptr(id)
		doc, err := s.newTaskDoc(account, j.id(), &cs[i], maxRetry)
		if err == nil {
			err = taskIDFree(j, id)
		}
		if err == nil {
			err = rules.check(&cs[i])
		}
		if err == nil && seen[strings.ToLower(id)] {
			err = batch.Conflict("TaskExists", "The specified task already exists.").With("id", id)
		}
		if err != nil {
			results[i].Status = ptr(azbatch.TaskAddStatusClientError)
			results[i].Error = wireError(err)
			continue
		}
		seen[strings.ToLower(id)] = true
		t := newTaskState(j, doc)
		rec, err := t.record()
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		recs = append(recs, rec)
		idx = append(idx, i)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, err := s.jobForTasksLocked(account, jobID); err != nil {
		return nil, err
	} else if cur != j {
		// The job was deleted and created again meanwhile.
		return nil, batch.Conflict("JobChanged", "The job changed while the tasks were added; retry the request.").With("id", jobID)
	}
	if len(recs) > 0 {
		errs, err := s.cfg.Store.TaskInsert(context.WithoutCancel(ctx), recs)
		if err != nil {
			return nil, err
		}
		var ok []*taskState
		for k, e := range errs {
			i := idx[k]
			t := ts[k]
			if e != nil {
				results[i].Status = ptr(azbatch.TaskAddStatusClientError)
				results[i].Error = wireError(batch.Conflict("TaskExists", "The specified task already exists.").With("id", t.id()))
				continue
			}
			results[i].Status = ptr(azbatch.TaskAddStatusSuccess)
			results[i].ETag = t.doc.ETag
			results[i].LastModified = t.doc.LastModified
			results[i].Location = t.doc.URL
			ok = append(ok, t)
		}
		s.acceptTasksLocked(j, ok, true)
	}
	var w store.Writes
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return nil, err
	}
	return results, nil
}

// wireError turns a domain error into the error of a TaskAddResult.
func wireError(err error) *azbatch.Error {
	be, ok := err.(*batch.Error)
	if !ok {
		return &azbatch.Error{Code: ptr("InternalServerError"), Message: &azbatch.ErrorMessage{Lang: ptr("en-US"), Value: ptr(err.Error())}}
	}
	out := &azbatch.Error{Code: ptr(be.Code), Message: &azbatch.ErrorMessage{Lang: ptr("en-US"), Value: ptr(be.Message)}}
	for _, kv := range be.Values {
		out.Values = append(out.Values, azbatch.ErrorDetail{Key: ptr(kv.Key), Value: ptr(kv.Value)})
	}
	return out
}

// taskLocked finds a task: in memory when unfinished, else in the store.
func (s *Service) taskLocked(ctx context.Context, account, jobID, taskID string) (*taskState, *azbatch.Task, error) {
	if t, ok := s.tasks[taskKey(account, jobID, taskID)]; ok {
		doc, err := s.docLocked(ctx, t)
		return t, doc, err
	}
	rec, err := s.cfg.Store.TaskGet(ctx, account, jobID, taskID)
	if err != nil {
		if err == store.ErrNotFound || strings.Contains(err.Error(), store.ErrNotFound.Error()) {
			return nil, nil, batch.NotFound("TaskNotFound", "task", taskID)
		}
		return nil, nil, err
	}
	doc, err := decodeTask(rec.Doc)
	if err != nil {
		return nil, nil, err
	}
	return nil, doc, nil
}

// TaskGet returns a task.
func (s *Service) TaskGet(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return Object{}, err
	}
	_, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, string(deref(doc.ETag)), deref(doc.LastModified), true); err != nil {
		return Object{}, err
	}
	return object(doc, (*string)(doc.ETag), doc.LastModified, doc.CreationTime)
}

// TaskReplace updates a task's constraints (the only updatable property).
func (s *Service) TaskReplace(ctx context.Context, account, jobID, taskID string, c *azbatch.Task, cond Conditions) (Object, error) {
	if err := validateTaskConstraints(c.Constraints); err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return Object{}, err
	}
	t, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, string(deref(doc.ETag)), deref(doc.LastModified), false); err != nil {
		return Object{}, err
	}
	if t == nil {
		return Object{}, batch.Conflict("TaskCompleted", "The specified task is already completed.").With("id", taskID)
	}
	cons := &azbatch.TaskConstraints{MaxWallClockTime: ptr(batch.MaxDurationISO), RetentionTime: ptr("P7D"), MaxTaskRetryCount: ptr(jobMaxRetry(t.job))}
	if c.Constraints != nil {
		if c.Constraints.MaxWallClockTime != nil {
			cons.MaxWallClockTime = c.Constraints.MaxWallClockTime
		}
		if c.Constraints.RetentionTime != nil {
			cons.RetentionTime = c.Constraints.RetentionTime
		}
		if c.Constraints.MaxTaskRetryCount != nil {
			cons.MaxTaskRetryCount = c.Constraints.MaxTaskRetryCount
		}
	}
	t.doc.Constraints = cons
	var w store.Writes
	s.touchTask(t, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return t.object()
}

func (s *Service) touchTask(t *taskState, w *store.Writes) {
	now := s.now()
	t.doc.ETag = ptr(azcore.ETag(s.newETag()))
	t.doc.LastModified = &now
	s.writeTask(t, w)
}

// TaskDelete deletes a task; a running one is killed first.
func (s *Service) TaskDelete(ctx context.Context, account, jobID, taskID string, cond Conditions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return err
	}
	t, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return err
	}
	if err := checkConditions(cond, string(deref(doc.ETag)), deref(doc.LastModified), false); err != nil {
		return err
	}
	var w store.Writes
	if t != nil {
		s.killTaskLocked(t, &w)
		t.queued = false
		t.job.counts.add(t.doc, int32(t.slots), -1)
		delete(s.tasks, t.key())
		w.Tasks = nil
	} else if j, err := s.jobLocked(account, jobID); err == nil {
		j.counts.add(doc, deref(doc.RequiredSlots), -1)
	}
	// As in Azure, the task's files go with it, whatever its retentionTime.
	if ni := doc.NodeInfo; ni != nil {
		s.cleanOnNodeLocked(deref(ni.NodeID), deref(ni.TaskRootDirectory))
	}
	s.forgetSubtasksLocked(taskKey(account, jobID, taskID), true, &w)
	w.DeleteTasks = append(w.DeleteTasks, store.TaskKey{Account: account, JobID: jobID, ID: taskID})
	s.dispatchLocked(&w)
	return s.commit(ctx, &w)
}

// cleanOnNodeLocked orders a node to delete a directory under its root
// (once no attempt runs in it); unknown nodes are skipped.
func (s *Service) cleanOnNodeLocked(nodeID, dir string) {
	if n, ok := s.nodes[nodeID]; ok && dir != "" {
		delete(n.retainUntil, dir)
		n.clean = append(n.clean, dir)
		n.wakeLocked()
	}
}

// TaskTerminate ends a task: an active one completes without running, a
// running one is killed. Either way it completes with failure TaskEnded.
func (s *Service) TaskTerminate(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return Object{}, err
	}
	t, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, string(deref(doc.ETag)), deref(doc.LastModified), false); err != nil {
		return Object{}, err
	}
	if t == nil {
		// Azure answers 409 TaskCompleted ("The specified task is already
		// in a completed state.") to terminating a completed task.
		return Object{}, batch.Conflict("TaskCompleted", "The specified task is already in a completed state.").With("id", taskID)
	}
	var w store.Writes
	s.endTaskLocked(t, nil, taskEndedFailure("The task was terminated by a user request."), &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return object(doc, (*string)(doc.ETag), doc.LastModified, doc.CreationTime)
}

// TaskReactivate makes a task that completed with failure active again,
// with its retry count reset.
func (s *Service) TaskReactivate(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.jobForTasksLocked(account, jobID)
	if err != nil {
		return Object{}, err
	}
	t, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, string(deref(doc.ETag)), deref(doc.LastModified), false); err != nil {
		return Object{}, err
	}
	if t != nil {
		return Object{}, batch.Conflict("TaskNotCompleted", "Only a completed task can be reactivated.").With("id", taskID)
	}
	if doc.ExecutionInfo == nil || deref(doc.ExecutionInfo.Result) != azbatch.TaskExecutionResultFailure {
		// Azure's code for a task that completed with exit code 0.
		return Object{}, batch.Conflict("TaskSucceeded", "The specified task completed successfully and cannot be reactivated.").With("id", taskID)
	}
	t = newTaskState(j, doc)
	j.counts.add(doc, int32(t.slots), -1)
	now := s.now()
	doc.PreviousState = doc.State
	doc.PreviousStateTransitionTime = doc.StateTransitionTime
	doc.State = ptr(azbatch.TaskStateActive)
	doc.StateTransitionTime = &now
	doc.ExecutionInfo = &azbatch.TaskExecutionInfo{RetryCount: ptr(int32(0)), RequeueCount: doc.ExecutionInfo.RequeueCount}
	doc.NodeInfo = nil
	var w store.Writes
	s.touchTask(t, &w)
	o, err := t.object()
	if err != nil {
		return Object{}, err
	}
	// The reactivated document is not committed yet: keep it in memory.
	s.acceptTasksLocked(j, []*taskState{t}, false)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return o, nil
}

// TaskFiles locates a task's files on the node that ran it last.
func (s *Service) TaskFiles(ctx context.Context, account, jobID, taskID string) (FileTarget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.jobLocked(account, jobID); err != nil {
		return FileTarget{}, err
	}
	_, doc, err := s.taskLocked(ctx, account, jobID, taskID)
	if err != nil {
		return FileTarget{}, err
	}
	if doc.NodeInfo == nil || deref(doc.NodeInfo.NodeID) == "" {
		return FileTarget{}, batch.Conflict("TaskNotRunOnNode", "The task has not run on a node yet, so it has no files.").With("id", taskID)
	}
	n, ok := s.nodes[deref(doc.NodeInfo.NodeID)]
	if !ok || n.fileURL == "" || n.unusable {
		return FileTarget{}, batch.Conflict("TaskFilesUnavailable", "The node that ran the task is no longer available, so its files cannot be reached.").With("nodeId", deref(doc.NodeInfo.NodeID))
	}
	return FileTarget{ServerURL: n.fileURL, Secret: n.secret, Dir: deref(doc.NodeInfo.TaskRootDirectory)}, nil
}

func taskEndedFailure(msg string) *azbatch.TaskFailureInfo {
	return &azbatch.TaskFailureInfo{Category: ptr(azbatch.ErrorCategoryUserError), Code: ptr("TaskEnded"), Message: ptr(msg)}
}
