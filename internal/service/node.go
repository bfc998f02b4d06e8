package service

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// nodeState is a compute node in memory.
type nodeState struct {
	account   string
	pool      *poolState
	id        string
	doc       *azbatch.Node
	dedicated bool

	// Agent connection (persisted in nodeRecord).
	token      string
	secret     string
	fileURL    string
	rootDir    string
	registered bool

	lastSeen   time.Time
	unusable   bool
	slots      int
	used       int
	attempts   map[string]*attempt // attempts the node is expected to run
	startTask  *attempt            // the start task attempt, while it runs
	startFail  bool                // start task failed with waitForSuccess
	kill       []string
	clean      []string
	wake       chan struct{}
	latestSeq  int64
	ack        int64
	removing   bool
	removeOpt  azbatch.NodeDeallocationOption
	removeAt   time.Time
	rebooting  bool
	shutdownAt time.Time // when Shutdown was sent
	// retainUntil maps a task directory to the end of its retention: the
	// timer of its latest run.
	retainUntil map[string]time.Time
	// sentClean are clean orders sent but not yet confirmed applied.
	sentClean []sentClean
	// preps are the node's runs of job preparation and release tasks, by
	// job key (jobprep.go); subtasks are the multi-instance subtasks it
	// runs or ran (multi_instance.go). Both are kept in its record.
	preps    map[string]*nodePrep
	subtasks map[string]*subtask

	// preempted holds a Spot/low-priority node that was preempted until
	// it is replaced (spot.go).
	preempted bool

	// opMode is what a draining node (rebooting) becomes once empty: a
	// reboot (""), a reimage or a deallocation; deallocated holds a
	// deallocated node until it is started (node_ops.go).
	opMode      nodeOpMode
	deallocated bool
}

type sentClean struct {
	seq  int64
	dirs []string
}

// attempt is one task (or start task) attempt assigned to a node.
type attempt struct {
	id   string
	task *taskState // nil for a start task
	// deliveredIn is the Seq of the sync whose answer carried the attempt:
	// 0 not delivered yet, -1 delivered before the server (re)started.
	deliveredIn int64
	assignment  protocol.Assignment
	// owner runs an attempt that is neither a task's nor the start task's:
	// a job preparation or release task, or a subtask of a multi-instance
	// task (owned_attempts.go).
	owner attemptOwner
	// held attempts wait before they are delivered: a task for the job
	// preparation task on its node, a multi-instance primary for every
	// subtask's coordination command.
	held bool
}

// nodeRecord is what the store keeps of a node: its wire document plus the
// connection secrets the agent needs after a server restart.
type nodeRecord struct {
	Node       json.RawMessage `json:"node"`
	Token      string          `json:"token"`
	Secret     string          `json:"secret"`
	FileURL    string          `json:"fileUrl"`
	RootDir    string          `json:"rootDir"`
	Registered bool            `json:"registered"`
	StartFail  bool            `json:"startFail,omitempty"`
	// StartAttempt is the attempt of the start task while it runs.
	StartAttempt string `json:"startAttempt,omitempty"`
	// JobPrep and Subtasks are what the node ran of job preparation and
	// release tasks and of multi-instance tasks.
	JobPrep  []prepRecord    `json:"jobPrep,omitempty"`
	Subtasks []subtaskRecord `json:"subtasks,omitempty"`
}

func (n *nodeState) wakeLocked() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *nodeState) free() int { return n.slots - n.used }

func (n *nodeState) record() (store.Node, error) {
	doc, err := n.doc.MarshalJSON()
	if err != nil {
		return store.Node{}, err
	}
	rec := nodeRecord{Node: doc, Token: n.token, Secret: n.secret, FileURL: n.fileURL, RootDir: n.rootDir, Registered: n.registered, StartFail: n.startFail}
	if n.startTask != nil {
		rec.StartAttempt = n.startTask.id
	}
	rec.JobPrep, rec.Subtasks = n.prepRecords(), n.subtaskRecords()
	b, err := json.Marshal(rec)
	return store.Node{Account: n.account, ID: n.id, PoolID: n.pool.id(), State: string(deref(n.doc.State)), Doc: b}, err
}

func (s *Service) writeNode(n *nodeState, w *store.Writes) {
	rec, err := n.record()
	if err != nil {
		s.log.Error("encode node", "err", err)
		return
	}
	for i := range w.Nodes {
		if w.Nodes[i].ID == n.id {
			w.Nodes[i] = rec
			return
		}
	}
	w.Nodes = append(w.Nodes, rec)
}

// schedulable reports whether the scheduler may place tasks on n.
func (n *nodeState) schedulable() bool {
	if !n.registered || n.unusable || n.removing || n.rebooting || n.startFail || n.deallocated {
		return false
	}
	if n.startTask != nil && n.pool.doc.StartTask != nil && deref(n.pool.doc.StartTask.WaitForSuccess) {
		return false
	}
	return deref(n.doc.SchedulingState) != azbatch.SchedulingStateDisabled
}

// refreshNodeLocked recomputes the node's state from what is known of it and
// queues a write when anything visible changed.
func (s *Service) refreshNodeLocked(n *nodeState, w *store.Writes) {
	var st azbatch.NodeState
	running := 0
	for _, a := range n.attempts {
		if a.task != nil || a.owner != nil && a.owner.busy() {
			running++
		}
	}
	waitStart := n.pool.doc.StartTask != nil && deref(n.pool.doc.StartTask.WaitForSuccess)
	switch {
	case n.removing:
		st = azbatch.NodeStateLeavingPool
	case n.preempted:
		st = azbatch.NodeStatePreempted
	case n.unusable:
		st = azbatch.NodeStateUnusable
	case !n.registered:
		st = azbatch.NodeStateCreating
		if deref(n.doc.State) == azbatch.NodeStateStarting {
			st = azbatch.NodeStateStarting
		}
	case n.deallocated:
		st = azbatch.NodeStateDeallocated
	case n.rebooting && n.opMode != nodeOpReboot:
		st = n.opMode.drainingState()
	case n.rebooting:
		st = azbatch.NodeStateRebooting
	case n.startFail:
		st = azbatch.NodeStateStartTaskFailed
	case n.startTask != nil && waitStart:
		st = azbatch.NodeStateWaitingForStartTask
	case running > 0:
		st = azbatch.NodeStateRunning
	case deref(n.doc.SchedulingState) == azbatch.SchedulingStateDisabled:
		st = azbatch.NodeStateOffline
	default:
		st = azbatch.NodeStateIdle
	}
	changed := false
	if prev := deref(n.doc.State); prev != st {
		now := s.now()
		n.doc.State = &st
		n.doc.StateTransitionTime = &now
		// Idle and running follow from the tasks, which the store records
		// and a restart recomputes them from: a busy node flips between
		// them on every sync, and writing the node each time cost a fifth
		// of the server's CPU.
		changed = !(busyOrIdle(prev) && busyOrIdle(st))
	}
	// Running counts change with every task; they are kept in memory and
	// reach the store with the next state change (a restart recomputes them).
	n.doc.RunningTasksCount = ptr(int32(running))
	n.doc.RunningTaskSlotsCount = ptr(int32(n.used))
	if changed && w != nil {
		s.writeNode(n, w)
	}
}

func busyOrIdle(st azbatch.NodeState) bool {
	return st == azbatch.NodeStateIdle || st == azbatch.NodeStateRunning
}

// reconcilePoolLocked brings a pool's nodes toward its targets: it creates
// missing nodes (returned, to be started once the writes are committed),
// removes surplus ones, updates counts and allocation state, and deletes a
// deleting pool once its nodes are gone.
func (s *Service) reconcilePoolLocked(p *poolState, w *store.Writes) []provider.NodeSpec {
	var starts []provider.NodeSpec
	now := s.now()
	for _, dedicated := range []bool{true, false} {
		target := int(deref(p.doc.TargetDedicatedNodes))
		if !dedicated {
			target = int(deref(p.doc.TargetLowPriorityNodes))
		}
		var live []*nodeState
		for _, n := range p.nodes {
			if !n.removing && n.dedicated == dedicated {
				live = append(live, n)
			}
		}
		for i := len(live); i < target && !s.joinsAgentsLocked(p); i++ { // agents pools: join.go
			starts = append(starts, s.createNodeLocked(p, dedicated, now, w))
		}
		if surplus := len(live) - target; surplus > 0 {
			sort.Slice(live, func(i, j int) bool { return removalRank(live[i]) < removalRank(live[j]) })
			for _, n := range live[:surplus] {
				s.removeNodeLocked(n, p.deallocation, now, w)
			}
		}
	}
	var ded, low int32
	for _, n := range p.nodes {
		if n.dedicated {
			ded++
		} else {
			low++
		}
	}
	changed := deref(p.doc.CurrentDedicatedNodes) != ded || deref(p.doc.CurrentLowPriorityNodes) != low
	p.doc.CurrentDedicatedNodes, p.doc.CurrentLowPriorityNodes = &ded, &low
	// The pool is resizing while node counts differ from the targets and
	// while new nodes are still being allocated (their agent has not come
	// up yet), as Azure's pool is until its VMs are allocated.
	alloc := azbatch.AllocationStateSteady
	if ded != deref(p.doc.TargetDedicatedNodes) || low != deref(p.doc.TargetLowPriorityNodes) {
		alloc = azbatch.AllocationStateResizing
	}
	for _, n := range p.nodes {
		if !n.registered && !n.unusable && !n.removing && !n.preempted {
			alloc = azbatch.AllocationStateResizing
		}
	}
	alloc = s.agentsAllocationLocked(p, alloc, ded, low) // join.go
	if deref(p.doc.AllocationState) != alloc {
		p.doc.AllocationState = &alloc
		p.doc.AllocationStateTransitionTime = &now
		if alloc == azbatch.AllocationStateResizing {
			p.resizeStart = now
		}
		changed = true
	}
	if deref(p.doc.State) == azbatch.PoolStateDeleting && len(p.nodes) == 0 {
		delete(s.pools, key(p.account, p.id()))
		w.DeletePools = append(w.DeletePools, store.Pool{Account: p.account, ID: p.id()})
		for i := range w.Pools {
			if strings.EqualFold(w.Pools[i].ID, p.id()) && w.Pools[i].Account == p.account {
				w.Pools = append(w.Pools[:i], w.Pools[i+1:]...)
				break
			}
		}
		return nil
	}
	if changed {
		s.writePool(p, w)
	}
	return starts
}

// removalRank orders nodes for removal on a shrink: nodes that never came up
// or are broken first, then idle ones, then busy ones.
func removalRank(n *nodeState) int {
	switch {
	case n.unusable, n.startFail, n.preempted:
		return 0
	case !n.registered:
		return 1
	case len(n.attempts) == 0:
		return 2
	}
	return 3 + len(n.attempts)
}

func (s *Service) createNodeLocked(p *poolState, dedicated bool, now time.Time, w *store.Writes) provider.NodeSpec {
	return s.createNodeWithIDLocked(p, newNodeID(dedicated), dedicated, now, w)
}

// newNodeID is a new node id in Azure's shape.
func newNodeID(dedicated bool) string {
	suffix := "_d"
	if !dedicated {
		suffix = "_p"
	}
	return "tvmps_" + randomHex(16) + suffix
}

func (s *Service) createNodeWithIDLocked(p *poolState, id string, dedicated bool, now time.Time, w *store.Writes) provider.NodeSpec {
	n := &nodeState{
		account:   p.account,
		pool:      p,
		id:        id,
		dedicated: dedicated,
		token:     randomHex(24),
		secret:    randomHex(24),
		slots:     p.slotsPerNode(),
		attempts:  map[string]*attempt{},
		wake:      make(chan struct{}, 1),
		lastSeen:  now,
		doc: &azbatch.Node{
			ID:                    ptr(id),
			URL:                   ptr(s.cfg.AccountURL(p.account) + "/pools/" + p.id() + "/nodes/" + id),
			State:                 ptr(azbatch.NodeStateCreating),
			SchedulingState:       ptr(azbatch.SchedulingStateEnabled),
			StateTransitionTime:   &now,
			AllocationTime:        &now,
			VMSize:                p.doc.VMSize,
			IsDedicated:           ptr(dedicated),
			TotalTasksRun:         ptr(int32(0)),
			TotalTasksSucceeded:   ptr(int32(0)),
			RunningTasksCount:     ptr(int32(0)),
			RunningTaskSlotsCount: ptr(int32(0)),
			AffinityID:            ptr("TVM:" + id),
			StartTask:             p.doc.StartTask,
		},
	}
	if vm := p.doc.VirtualMachineConfiguration; vm != nil && vm.ImageReference != nil {
		n.doc.VirtualMachineInfo = &azbatch.VirtualMachineInfo{ImageReference: vm.ImageReference}
	}
	p.nodes[id] = n
	s.nodes[id] = n
	s.tokens[n.token] = n
	s.writeNode(n, w)
	return provider.NodeSpec{Account: p.account, PoolID: p.id(), NodeID: id, Dedicated: dedicated, Token: n.token, ServerURL: s.cfg.AgentURL}
}

// startNodes asks the provider to start nodes; called after their records
// are committed, without the lock.
func (s *Service) startNodes(specs []provider.NodeSpec) {
	for _, spec := range specs {
		go func(spec provider.NodeSpec) {
			err := s.startNodeSpec(context.Background(), spec) // providers.go
			s.mu.Lock()
			defer s.mu.Unlock()
			n, ok := s.nodes[spec.NodeID]
			if !ok {
				return
			}
			var w store.Writes
			if err != nil {
				s.log.Error("start node", "node", spec.NodeID, "err", err)
				n.unusable = true
				n.doc.Errors = []azbatch.NodeError{{Code: ptr("NodeStartFailed"), Message: ptr(err.Error())}}
			} else if !n.registered && deref(n.doc.State) == azbatch.NodeStateCreating {
				n.doc.State = ptr(azbatch.NodeStateStarting)
				n.doc.StateTransitionTime = ptr(s.now())
				s.writeNode(n, &w)
			}
			s.refreshNodeLocked(n, &w)
			s.reconcilePoolLocked(n.pool, &w)
			_ = s.commit(context.Background(), &w)
		}(spec)
	}
}

// removeNodeLocked starts taking a node out of its pool.
func (s *Service) removeNodeLocked(n *nodeState, opt azbatch.NodeDeallocationOption, now time.Time, w *store.Writes) {
	if n.removing {
		return
	}
	n.removing = true
	n.removeOpt = opt
	n.removeAt = now
	switch opt {
	case azbatch.NodeDeallocationOptionTerminate:
		s.evictTasksLocked(n, false, w)
	case azbatch.NodeDeallocationOptionTaskCompletion, azbatch.NodeDeallocationOptionRetainedData:
		// Running tasks finish first; nothing new is scheduled.
	default:
		s.evictTasksLocked(n, true, w)
	}
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	s.maybeFinishRemovalLocked(n, w)
}

// maybeFinishRemovalLocked deletes a leaving node once its tasks are done:
// a connected agent is told to shut down on its next sync, a silent one is
// deleted at once.
func (s *Service) maybeFinishRemovalLocked(n *nodeState, w *store.Writes) {
	if !n.removing || len(n.attempts) > 0 {
		return
	}
	if n.registered && !n.unusable && n.shutdownAt.IsZero() {
		n.wakeLocked() // the sync answers Shutdown, then deletes
		return
	}
	s.deleteNodeLocked(n, w)
}

func (s *Service) deleteNodeLocked(n *nodeState, w *store.Writes) {
	if _, ok := s.nodes[n.id]; !ok {
		return
	}
	s.recordNodeGoneLocked(n, w)
	s.recordNodeUsageLocked(n, w)
	delete(s.nodes, n.id)
	delete(s.tokens, n.token)
	delete(n.pool.nodes, n.id)
	for i := range w.Nodes {
		if w.Nodes[i].ID == n.id {
			w.Nodes = append(w.Nodes[:i], w.Nodes[i+1:]...)
			break
		}
	}
	w.DeleteNodes = append(w.DeleteNodes, store.Node{Account: n.account, ID: n.id})
	spec := provider.NodeSpec{Account: n.account, PoolID: n.pool.id(), NodeID: n.id, Dedicated: n.dedicated}
	prov := s.poolProviderLocked(n.pool)
	go func() {
		if err := prov.Stop(context.Background(), spec); err != nil {
			s.log.Warn("stop node", "node", spec.NodeID, "err", err)
		}
	}()
	n.wakeLocked()
	s.reconcilePoolLocked(n.pool, w)
}

// evictTasksLocked takes every task off a node: requeued (they run again
// elsewhere) or terminated (completed with a failure).
func (s *Service) evictTasksLocked(n *nodeState, requeue bool, w *store.Writes) {
	for id, a := range n.attempts {
		if a.owner != nil {
			a.owner.evicted(s, n, a, requeue, w)
			continue
		}
		n.kill = append(n.kill, id)
		if a.task == nil {
			continue
		}
		if requeue {
			s.requeueTaskLocked(a.task, w)
		} else {
			s.endTaskLocked(a.task, nil, &azbatch.TaskFailureInfo{
				Category: ptr(azbatch.ErrorCategoryUserError),
				Code:     ptr("TaskEnded"),
				Message:  ptr("The task was terminated because its node was removed from the pool."),
			}, w)
		}
	}
	if n.startTask != nil {
		s.detachAttemptLocked(n, n.startTask)
		n.startTask = nil
	}
	n.wakeLocked()
}

func (s *Service) nodeLocked(account, poolID, nodeID string) (*nodeState, error) {
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return nil, err
	}
	n, ok := p.nodes[nodeID]
	if !ok {
		return nil, batch.NotFound("NodeNotFound", "node", nodeID)
	}
	return n, nil
}

func (n *nodeState) object() (Object, error) {
	return object(n.doc, nil, n.doc.StateTransitionTime, n.doc.AllocationTime)
}

// NodeList lists a pool's nodes in id order.
func (s *Service) NodeList(ctx context.Context, account, poolID string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		s.mu.Unlock()
		return ListPage{}, err
	}
	nodes := make([]*nodeState, 0, len(p.nodes))
	for _, n := range p.nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].id < nodes[j].id })
	objs := make([]Object, 0, len(nodes))
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		o, err := n.object()
		if err != nil {
			s.mu.Unlock()
			return ListPage{}, err
		}
		objs = append(objs, o)
		ids = append(ids, strings.ToLower(n.id))
	}
	s.mu.Unlock()
	return pageByID(objs, ids, lp)
}

// NodeGet returns one node.
func (s *Service) NodeGet(ctx context.Context, account, poolID, nodeID string) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return Object{}, err
	}
	return n.object()
}

// NodeReboot restarts a node's work: running tasks are requeued (or
// terminated, or allowed to finish, per the option) and the start task runs
// again. Local nodes keep their process; the reboot is of the node's work.
func (s *Service) NodeReboot(ctx context.Context, account, poolID, nodeID string, c *azbatch.RebootNodeContent) error {
	opt := azbatch.NodeRebootOptionRequeue
	if c != nil && c.NodeRebootOption != nil {
		opt = azbatch.NodeRebootOption(strings.ToLower(string(*c.NodeRebootOption)))
		switch opt {
		case azbatch.NodeRebootOptionRequeue, azbatch.NodeRebootOptionTerminate, azbatch.NodeRebootOptionTaskCompletion, azbatch.NodeRebootOptionRetainedData:
		default:
			return batch.InvalidProperty("nodeRebootOption", string(*c.NodeRebootOption), "Allowed values are requeue, terminate, taskcompletion and retaineddata.")
		}
	}
	return s.restartNode(ctx, account, poolID, nodeID, nodeOpReboot, string(opt))
}

// maybeFinishRebootLocked completes a reboot once the node is empty: the
// node "boots" again, which reruns the start task.
func (s *Service) maybeFinishRebootLocked(n *nodeState, w *store.Writes) {
	if !n.rebooting || len(n.attempts) > 0 {
		return
	}
	n.rebooting = false
	if s.finishNodeOpLocked(n, w) {
		return
	}
	now := s.now()
	n.doc.LastBootTime = &now
	s.jobPrepAfterRebootLocked(n, w)
	s.beginStartTaskLocked(n, w)
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	s.dispatchLocked(w)
}

// NodeDisableScheduling stops new tasks from going to a node.
func (s *Service) NodeDisableScheduling(ctx context.Context, account, poolID, nodeID string, c *azbatch.DisableNodeSchedulingContent) error {
	opt := azbatch.NodeDisableSchedulingOptionRequeue
	if c != nil && c.NodeDisableSchedulingOption != nil {
		opt = azbatch.NodeDisableSchedulingOption(strings.ToLower(string(*c.NodeDisableSchedulingOption)))
		switch opt {
		case azbatch.NodeDisableSchedulingOptionRequeue, azbatch.NodeDisableSchedulingOptionTerminate, azbatch.NodeDisableSchedulingOptionTaskCompletion:
		default:
			return batch.InvalidProperty("nodeDisableSchedulingOption", string(*c.NodeDisableSchedulingOption), "Allowed values are requeue, terminate and taskcompletion.")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return err
	}
	var w store.Writes
	n.doc.SchedulingState = ptr(azbatch.SchedulingStateDisabled)
	switch opt {
	case azbatch.NodeDisableSchedulingOptionRequeue:
		s.evictTasksLocked(n, true, &w)
	case azbatch.NodeDisableSchedulingOptionTerminate:
		s.evictTasksLocked(n, false, &w)
	}
	s.refreshNodeLocked(n, &w)
	s.writeNode(n, &w)
	s.dispatchLocked(&w)
	return s.commit(ctx, &w)
}

// NodeEnableScheduling lets tasks go to a node again.
func (s *Service) NodeEnableScheduling(ctx context.Context, account, poolID, nodeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return err
	}
	var w store.Writes
	n.doc.SchedulingState = ptr(azbatch.SchedulingStateEnabled)
	s.refreshNodeLocked(n, &w)
	s.writeNode(n, &w)
	s.dispatchLocked(&w)
	return s.commit(ctx, &w)
}

// NodeFiles locates a node's files.
func (s *Service) NodeFiles(ctx context.Context, account, poolID, nodeID string) (FileTarget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return FileTarget{}, err
	}
	if n.fileURL == "" || n.unusable {
		return FileTarget{}, batch.Conflict("NodeNotReady", "The node's files are not reachable: the node is not running.").With("nodeId", nodeID)
	}
	return FileTarget{ServerURL: n.fileURL, Secret: n.secret, Dir: ""}, nil
}
