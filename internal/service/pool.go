package service

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// poolState is a pool in memory with its nodes.
type poolState struct {
	account string
	doc     *azbatch.Pool
	nodes   map[string]*nodeState // by node id
	// deallocation is the nodeDeallocationOption of the resize in progress.
	deallocation azbatch.NodeDeallocationOption
	resizeStart  time.Time
	// kiln holds the Kiln-only fields of its record (providers.go).
	kiln poolKiln
}

func (p *poolState) id() string { return deref(p.doc.ID) }

func (p *poolState) etag() string { return string(deref(p.doc.ETag)) }

func (p *poolState) slotsPerNode() int {
	if n := int(deref(p.doc.TaskSlotsPerNode)); n > 0 {
		return n
	}
	return 1
}

func (p *poolState) record() (store.Pool, error) {
	b, err := p.doc.MarshalJSON()
	if err == nil {
		b, err = p.kiln.withKiln(b)
	}
	return store.Pool{Account: p.account, ID: p.id(), Doc: b}, err
}

func (p *poolState) object() (Object, error) {
	return object(p.doc, (*string)(p.doc.ETag), p.doc.LastModified, p.doc.CreationTime)
}

// touch records a change of the pool: new ETag and Last-Modified.
func (s *Service) touchPool(p *poolState, w *store.Writes) {
	now := s.now()
	p.doc.ETag = ptr(azcore.ETag(s.newETag()))
	p.doc.LastModified = &now
	s.writePool(p, w)
}

// writePool queues the pool record, replacing an earlier copy in w.
func (s *Service) writePool(p *poolState, w *store.Writes) {
	rec, err := p.record()
	if err != nil {
		s.log.Error("encode pool", "err", err)
		return
	}
	for i := range w.Pools {
		if w.Pools[i].Account == rec.Account && strings.EqualFold(w.Pools[i].ID, rec.ID) {
			w.Pools[i] = rec
			return
		}
	}
	w.Pools = append(w.Pools, rec)
}

func (s *Service) poolLocked(account, id string) (*poolState, error) {
	p, ok := s.pools[key(account, id)]
	if !ok {
		return nil, batch.NotFound("PoolNotFound", "pool", id)
	}
	return p, nil
}

func validateNodeFill(t *azbatch.TaskSchedulingPolicy) error {
	if t == nil || t.NodeFillType == nil {
		return nil
	}
	switch strings.ToLower(string(*t.NodeFillType)) {
	case "spread", "pack":
		return nil
	}
	return batch.InvalidProperty("taskSchedulingPolicy.nodeFillType", string(*t.NodeFillType), "Allowed values are spread and pack.")
}

func validateTargets(ded, low *int32) error {
	d, l := deref(ded), deref(low)
	if d < 0 {
		return batch.InvalidProperty("targetDedicatedNodes", itoa(d), "The value must not be negative.")
	}
	if l < 0 {
		return batch.InvalidProperty("targetLowPriorityNodes", itoa(l), "The value must not be negative.")
	}
	if d+l > MaxNodesPerPool {
		return batch.InvalidProperty("targetDedicatedNodes", itoa(d), "A pool holds at most "+itoa(MaxNodesPerPool)+" nodes.")
	}
	return nil
}

func validateResizeTimeout(v *string) error {
	if v == nil {
		return nil
	}
	d, err := batch.ParseDuration(*v)
	if err != nil {
		return batch.InvalidProperty("resizeTimeout", *v, err.Error())
	}
	if d < 5*time.Minute {
		return batch.InvalidProperty("resizeTimeout", *v, "The minimum resize timeout is 5 minutes.")
	}
	return nil
}

func (s *Service) validateStartTask(st *azbatch.StartTask) error {
	if st == nil {
		return nil
	}
	if err := s.validateResourceFiles("startTask.resourceFiles", st.ResourceFiles); err != nil {
		return err
	}
	if strings.TrimSpace(deref(st.CommandLine)) == "" {
		return batch.MissingProperty("startTask.commandLine")
	}
	if err := validateCommandLine("startTask.commandLine", deref(st.CommandLine)); err != nil {
		return err
	}
	if r := deref(st.MaxTaskRetryCount); r < -1 {
		return batch.InvalidProperty("startTask.maxTaskRetryCount", itoa(r), "The value must be -1 or more.")
	}
	if err := validateUserIdentity("startTask.userIdentity", st.UserIdentity); err != nil {
		return err
	}
	return nil
}

// PoolAdd creates a pool and starts allocating its nodes. It returns the
// new pool (for the ETag and Last-Modified of the 201 answer).
func (s *Service) PoolAdd(ctx context.Context, account string, c *azbatch.CreatePoolContent) (Object, error) {
	if err := s.addPool(ctx, account, c); err != nil {
		return Object{}, err
	}
	o, _ := s.PoolGet(ctx, account, deref(c.ID), Conditions{}) // gone already: no headers
	return o, nil
}

func (s *Service) addPool(ctx context.Context, account string, c *azbatch.CreatePoolContent) error {
	doc, err := s.newPoolDoc(account, c)
	if err != nil {
		return err
	}
	id, now := deref(doc.ID), deref(doc.CreationTime)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pools[key(account, id)]; ok {
		return batch.Conflict("PoolExists", "The specified pool already exists.").With("id", id)
	}
	p := &poolState{account: account, doc: doc, nodes: map[string]*nodeState{}, deallocation: azbatch.NodeDeallocationOptionRequeue}
	p.doc.ETag = ptr(azcore.ETag(s.newETag()))
	p.doc.LastModified = &now
	s.setPoolProviderLocked(p) // providers.go
	rec, err := p.record()
	if err != nil {
		return err
	}
	if err := s.cfg.Store.PoolInsert(context.WithoutCancel(ctx), rec); err != nil {
		if err == store.ErrExists {
			return batch.Conflict("PoolExists", "The specified pool already exists.").With("id", id)
		}
		return err
	}
	s.pools[key(account, id)] = p
	var w store.Writes
	starts := s.reconcilePoolLocked(p, &w)
	if deref(p.doc.EnableAutoScale) {
		starts = append(starts, s.startAutoScaleLocked(p, &w)...)
	}
	if err := s.commit(ctx, &w); err != nil {
		return err
	}
	s.startNodes(starts)
	return nil
}

// newPoolDoc validates a pool to create and returns its document (without
// ETag and Last-Modified). Pool add and auto pools share it; it needs no lock.
func (s *Service) newPoolDoc(account string, c *azbatch.CreatePoolContent) (*azbatch.Pool, error) {
	id := deref(c.ID)
	if err := batch.ValidateID("id", id, 64); err != nil {
		return nil, err
	}
	if deref(c.VMSize) == "" {
		return nil, batch.MissingProperty("vmSize")
	}
	if err := s.validateAutoScaleAdd(c, nil); err != nil {
		return nil, err
	}
	if err := validateTargets(c.TargetDedicatedNodes, c.TargetLowPriorityNodes); err != nil {
		return nil, err
	}
	if err := validateResizeTimeout(c.ResizeTimeout); err != nil {
		return nil, err
	}
	if n := c.TaskSlotsPerNode; n != nil && (*n < 1 || *n > MaxTaskSlotsPerNode) {
		return nil, batch.InvalidProperty("taskSlotsPerNode", itoa(*n), "The value must be between 1 and "+itoa(MaxTaskSlotsPerNode)+".")
	}
	if err := validateNodeFill(c.TaskSchedulingPolicy); err != nil {
		return nil, err
	}
	if err := s.validateStartTask(c.StartTask); err != nil {
		return nil, err
	}
	if err := validateUserAccounts(c.UserAccounts); err != nil {
		return nil, err
	}
	if err := s.validatePoolPackages(account, c.ApplicationPackageReferences); err != nil {
		return nil, err
	}
	if err := s.validateCertificateRefs(account, c.CertificateReferences); err != nil {
		return nil, err
	}
	if err := s.validatePoolProvider(c.Metadata); err != nil { // providers.go
		return nil, err
	}

	now := s.now()
	fill := azbatch.NodeFillTypeSpread
	if c.TaskSchedulingPolicy != nil && c.TaskSchedulingPolicy.NodeFillType != nil {
		fill = azbatch.NodeFillType(strings.ToLower(string(*c.TaskSchedulingPolicy.NodeFillType)))
	}
	doc := &azbatch.Pool{
		ID:                            ptr(id),
		URL:                           ptr(s.cfg.AccountURL(account) + "/pools/" + id),
		DisplayName:                   c.DisplayName,
		VMSize:                        ptr(strings.ToLower(deref(c.VMSize))),
		VirtualMachineConfiguration:   c.VirtualMachineConfiguration,
		ResizeTimeout:                 ptr(deref(c.ResizeTimeout)),
		TargetDedicatedNodes:          ptr(deref(c.TargetDedicatedNodes)),
		TargetLowPriorityNodes:        ptr(deref(c.TargetLowPriorityNodes)),
		CurrentDedicatedNodes:         ptr(int32(0)),
		CurrentLowPriorityNodes:       ptr(int32(0)),
		EnableAutoScale:               ptr(false),
		EnableInterNodeCommunication:  ptr(deref(c.EnableInterNodeCommunication)),
		NetworkConfiguration:          c.NetworkConfiguration,
		StartTask:                     c.StartTask,
		CertificateReferences:         c.CertificateReferences,
		ApplicationPackageReferences:  c.ApplicationPackageReferences,
		TaskSlotsPerNode:              ptr(max(deref(c.TaskSlotsPerNode), 1)),
		TaskSchedulingPolicy:          &azbatch.TaskSchedulingPolicy{NodeFillType: &fill},
		UserAccounts:                  c.UserAccounts,
		Metadata:                      c.Metadata,
		MountConfiguration:            c.MountConfiguration,
		ResourceTags:                  c.ResourceTags,
		UpgradePolicy:                 c.UpgradePolicy,
		TargetNodeCommunicationMode:   c.TargetNodeCommunicationMode,
		State:                         ptr(azbatch.PoolStateActive),
		StateTransitionTime:           &now,
		AllocationState:               ptr(azbatch.AllocationStateSteady),
		AllocationStateTransitionTime: &now,
		CreationTime:                  &now,
	}
	if doc.ResizeTimeout == nil || *doc.ResizeTimeout == "" {
		doc.ResizeTimeout = ptr("PT15M")
	}
	if doc.TargetNodeCommunicationMode == nil {
		doc.TargetNodeCommunicationMode = ptr(azbatch.NodeCommunicationModeDefault)
	}
	doc.CurrentNodeCommunicationMode = ptr(azbatch.NodeCommunicationModeSimplified)
	_ = s.validateAutoScaleAdd(c, doc) // sets the autoscale properties
	return doc, nil
}

// PoolGet returns a pool.
func (s *Service) PoolGet(ctx context.Context, account, poolID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, p.etag(), deref(p.doc.LastModified), true); err != nil {
		return Object{}, err
	}
	return p.object()
}

// PoolList lists an account's pools in id order.
func (s *Service) PoolList(ctx context.Context, account string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	objs, ids, err := objectsByID(s.pools, func(x *poolState) string { return x.account }, account)
	s.mu.Unlock()
	if err != nil {
		return ListPage{}, err
	}
	return pageByID(objs, ids, lp)
}

// PoolDelete starts deleting a pool: its nodes leave (their tasks are
// requeued) and the pool disappears once they are gone.
func (s *Service) PoolDelete(ctx context.Context, account, poolID string, cond Conditions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return err
	}
	if err := checkConditions(cond, p.etag(), deref(p.doc.LastModified), false); err != nil {
		return err
	}
	var w store.Writes
	s.deletePoolLocked(p, &w)
	return s.commit(ctx, &w)
}

// deletePoolLocked moves a pool to deleting: its nodes leave and the pool
// goes once they are gone. Pool delete and auto pool lifetimes share it.
func (s *Service) deletePoolLocked(p *poolState, w *store.Writes) {
	if deref(p.doc.State) != azbatch.PoolStateDeleting {
		now := s.now()
		p.doc.State = ptr(azbatch.PoolStateDeleting)
		p.doc.StateTransitionTime = &now
		p.doc.TargetDedicatedNodes = ptr(int32(0))
		p.doc.TargetLowPriorityNodes = ptr(int32(0))
		p.deallocation = azbatch.NodeDeallocationOptionRequeue
		s.touchPool(p, w)
	}
	s.reconcilePoolLocked(p, w)
}

func (s *Service) writablePoolLocked(account, poolID string, cond Conditions) (*poolState, error) {
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return nil, err
	}
	if err := checkConditions(cond, p.etag(), deref(p.doc.LastModified), false); err != nil {
		return nil, err
	}
	if deref(p.doc.State) == azbatch.PoolStateDeleting {
		return nil, batch.Conflict("PoolBeingDeleted", "The specified pool has been marked for deletion and is being reclaimed.").With("id", poolID)
	}
	return p, nil
}

// PoolPatch updates the properties a patch names; others keep their value.
func (s *Service) PoolPatch(ctx context.Context, account, poolID string, c *azbatch.UpdatePoolContent, cond Conditions) (Object, error) {
	if err := s.validateStartTask(c.StartTask); err != nil {
		return Object{}, err
	}
	if err := s.validatePoolPackages(account, c.ApplicationPackageReferences); err != nil {
		return Object{}, err
	}
	if err := s.validateCertificateRefs(account, c.CertificateReferences); err != nil {
		return Object{}, err
	}
	if err := validateNodeFill(c.TaskSchedulingPolicy); err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		return Object{}, err
	}
	d := p.doc
	if c.StartTask != nil {
		d.StartTask = c.StartTask
	}
	if c.Metadata != nil {
		d.Metadata = c.Metadata
	}
	if c.ApplicationPackageReferences != nil {
		d.ApplicationPackageReferences = c.ApplicationPackageReferences
	}
	if c.CertificateReferences != nil {
		d.CertificateReferences = c.CertificateReferences
	}
	if c.DisplayName != nil {
		d.DisplayName = c.DisplayName
	}
	if c.TargetNodeCommunicationMode != nil {
		d.TargetNodeCommunicationMode = c.TargetNodeCommunicationMode
	}
	if c.ResourceTags != nil {
		d.ResourceTags = c.ResourceTags
	}
	var w store.Writes
	s.touchPool(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return p.object()
}

// PoolReplace replaces the updatable properties: those absent are cleared.
func (s *Service) PoolReplace(ctx context.Context, account, poolID string, c *azbatch.ReplacePoolContent, cond Conditions) (Object, error) {
	if err := s.validateStartTask(c.StartTask); err != nil {
		return Object{}, err
	}
	if err := s.validatePoolPackages(account, c.ApplicationPackageReferences); err != nil {
		return Object{}, err
	}
	if err := s.validateCertificateRefs(account, c.CertificateReferences); err != nil {
		return Object{}, err
	}
	if c.Metadata == nil {
		return Object{}, batch.MissingProperty("metadata")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		return Object{}, err
	}
	p.doc.StartTask = c.StartTask
	p.doc.Metadata = c.Metadata
	p.doc.ApplicationPackageReferences = c.ApplicationPackageReferences
	p.doc.CertificateReferences = c.CertificateReferences
	if c.TargetNodeCommunicationMode != nil {
		p.doc.TargetNodeCommunicationMode = c.TargetNodeCommunicationMode
	}
	var w store.Writes
	s.touchPool(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return p.object()
}

func validateDeallocation(o *azbatch.NodeDeallocationOption) (azbatch.NodeDeallocationOption, error) {
	if o == nil {
		return azbatch.NodeDeallocationOptionRequeue, nil
	}
	v := azbatch.NodeDeallocationOption(strings.ToLower(string(*o)))
	switch v {
	case azbatch.NodeDeallocationOptionRequeue, azbatch.NodeDeallocationOptionTerminate,
		azbatch.NodeDeallocationOptionTaskCompletion, azbatch.NodeDeallocationOptionRetainedData:
		return v, nil
	}
	return "", batch.InvalidProperty("nodeDeallocationOption", string(*o), "Allowed values are requeue, terminate, taskcompletion and retaineddata.")
}

// PoolResize changes the target sizes of a steady pool.
func (s *Service) PoolResize(ctx context.Context, account, poolID string, c *azbatch.ResizePoolContent, cond Conditions) (Object, error) {
	if err := validateTargets(c.TargetDedicatedNodes, c.TargetLowPriorityNodes); err != nil {
		return Object{}, err
	}
	if err := validateResizeTimeout(c.ResizeTimeout); err != nil {
		return Object{}, err
	}
	opt, err := validateDeallocation(c.NodeDeallocationOption)
	if err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		return Object{}, err
	}
	if deref(p.doc.EnableAutoScale) {
		return Object{}, errAutoScaleEnabled(poolID)
	}
	if deref(p.doc.AllocationState) != azbatch.AllocationStateSteady {
		return Object{}, batch.Conflict("PoolBeingResized", "The specified pool is being resized: a resize is in progress.").With("id", poolID)
	}
	if c.TargetDedicatedNodes != nil {
		p.doc.TargetDedicatedNodes = c.TargetDedicatedNodes
	}
	if c.TargetLowPriorityNodes != nil {
		p.doc.TargetLowPriorityNodes = c.TargetLowPriorityNodes
	}
	if c.ResizeTimeout != nil {
		p.doc.ResizeTimeout = c.ResizeTimeout
	}
	p.deallocation = opt
	p.doc.ResizeErrors = nil
	var w store.Writes
	s.touchPool(p, &w)
	starts := s.reconcilePoolLocked(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	s.startNodes(starts)
	return p.object()
}

// PoolStopResize stops a resize: the pool keeps the nodes it has now.
func (s *Service) PoolStopResize(ctx context.Context, account, poolID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		return Object{}, err
	}
	if deref(p.doc.AllocationState) == azbatch.AllocationStateSteady {
		return p.object()
	}
	var ded, low int32
	for _, n := range p.nodes {
		if n.removing {
			continue
		}
		if n.dedicated {
			ded++
		} else {
			low++
		}
	}
	p.doc.TargetDedicatedNodes = &ded
	p.doc.TargetLowPriorityNodes = &low
	var w store.Writes
	s.touchPool(p, &w)
	s.reconcilePoolLocked(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return p.object()
}

// PoolRemoveNodes removes the named nodes and lowers the targets to match.
func (s *Service) PoolRemoveNodes(ctx context.Context, account, poolID string, c *azbatch.RemoveNodeContent, cond Conditions) (Object, error) {
	if len(c.NodeList) == 0 {
		return Object{}, batch.MissingProperty("nodeList")
	}
	if len(c.NodeList) > 100 {
		return Object{}, batch.InvalidProperty("nodeList", itoa(int32(len(c.NodeList))), "At most 100 nodes can be removed per request.")
	}
	opt, err := validateDeallocation(c.NodeDeallocationOption)
	if err != nil {
		return Object{}, err
	}
	if err := validateResizeTimeout(c.ResizeTimeout); err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		return Object{}, err
	}
	if deref(p.doc.AllocationState) != azbatch.AllocationStateSteady {
		return Object{}, batch.Conflict("PoolBeingResized", "The specified pool is being resized: a resize is in progress.").With("id", poolID)
	}
	var victims []*nodeState
	for _, id := range c.NodeList {
		n, ok := s.nodes[id]
		if !ok || n.pool != p {
			return Object{}, batch.NotFound("NodeNotFound", "node", id)
		}
		victims = append(victims, n)
	}
	var w store.Writes
	now := s.now()
	for _, n := range victims {
		if n.removing {
			continue
		}
		if n.dedicated {
			p.doc.TargetDedicatedNodes = ptr(deref(p.doc.TargetDedicatedNodes) - 1)
		} else {
			p.doc.TargetLowPriorityNodes = ptr(deref(p.doc.TargetLowPriorityNodes) - 1)
		}
		s.removeNodeLocked(n, opt, now, &w)
	}
	s.touchPool(p, &w)
	s.reconcilePoolLocked(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return p.object()
}

// PoolNodeCounts counts each pool's nodes by state.
func (s *Service) PoolNodeCounts(ctx context.Context, account string, lp ListParams) ([]azbatch.PoolNodeCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []azbatch.PoolNodeCounts
	for _, p := range s.pools {
		if !strings.EqualFold(p.account, account) {
			continue
		}
		ded, low := newNodeCounts(), newNodeCounts()
		for _, n := range p.nodes {
			c := low
			if n.dedicated {
				c = ded
			}
			addNodeCount(c, deref(n.doc.State))
		}
		out = append(out, azbatch.PoolNodeCounts{PoolID: ptr(p.id()), Dedicated: ded, LowPriority: low})
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(*out[i].PoolID) < strings.ToLower(*out[j].PoolID) })
	return out, nil
}

func newNodeCounts() *azbatch.NodeCounts {
	z := func() *int32 { return ptr(int32(0)) }
	return &azbatch.NodeCounts{Creating: z(), Deallocated: z(), Deallocating: z(), Idle: z(), LeavingPool: z(), Offline: z(),
		Preempted: z(), Rebooting: z(), Reimaging: z(), Running: z(), StartTaskFailed: z(), Starting: z(), Total: z(),
		Unknown: z(), Unusable: z(), UpgradingOS: z(), WaitingForStartTask: z()}
}

func addNodeCount(c *azbatch.NodeCounts, st azbatch.NodeState) {
	inc := func(p *int32) { *p++ }
	inc(c.Total)
	switch st {
	case azbatch.NodeStateCreating:
		inc(c.Creating)
	case azbatch.NodeStateIdle:
		inc(c.Idle)
	case azbatch.NodeStateLeavingPool:
		inc(c.LeavingPool)
	case azbatch.NodeStateOffline:
		inc(c.Offline)
	case azbatch.NodeStatePreempted:
		inc(c.Preempted)
	case azbatch.NodeStateRebooting:
		inc(c.Rebooting)
	case azbatch.NodeStateReimaging:
		inc(c.Reimaging)
	case azbatch.NodeStateRunning:
		inc(c.Running)
	case azbatch.NodeStateStartTaskFailed:
		inc(c.StartTaskFailed)
	case azbatch.NodeStateStarting:
		inc(c.Starting)
	case azbatch.NodeStateUnusable:
		inc(c.Unusable)
	case azbatch.NodeStateWaitingForStartTask:
		inc(c.WaitingForStartTask)
	default:
		inc(c.Unknown)
	}
}

var _ = http.StatusOK
