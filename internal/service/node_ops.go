package service

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// Node operations beyond reboot and scheduling: reimage, deallocate and
// start, recovery of unusable nodes, the Batch service logs, extensions,
// remote login settings and pool usage metrics.

// nodeOpMode is what a draining node becomes once its tasks are gone.
type nodeOpMode string

const (
	nodeOpReboot     nodeOpMode = ""
	nodeOpReimage    nodeOpMode = "reimage"
	nodeOpDeallocate nodeOpMode = "deallocate"
	// nodeOpWipe is a drained reimage while the agent wipes the node;
	// nodeOpCerts a drained reboot while the agent installs the
	// certificates the pool references now (they change on a restart).
	nodeOpWipe  nodeOpMode = "wipe"
	nodeOpCerts nodeOpMode = "certs"
)

// drainingState is the node state shown while the operation waits for the
// node's tasks.
func (m nodeOpMode) drainingState() azbatch.NodeState {
	switch m {
	case nodeOpReimage, nodeOpWipe:
		return azbatch.NodeStateReimaging
	case nodeOpDeallocate:
		return azbatch.NodeStateDeallocating
	}
	return azbatch.NodeStateRebooting
}

// NodeReimage reinstalls a node: its tasks are requeued, terminated or
// allowed to finish (nodeReimageOption), then its task directories are
// wiped, its user accounts removed and its start task runs again.
func (s *Service) NodeReimage(ctx context.Context, account, poolID, nodeID string, c *azbatch.ReimageNodeContent) error {
	opt := "requeue"
	if c != nil && c.NodeReimageOption != nil {
		opt = strings.ToLower(string(*c.NodeReimageOption))
		if !validDrainOption(opt) {
			return batch.InvalidProperty("nodeReimageOption", string(*c.NodeReimageOption), "Allowed values are requeue, terminate, taskcompletion and retaineddata.")
		}
	}
	return s.restartNode(ctx, account, poolID, nodeID, nodeOpReimage, opt)
}

// NodeDeallocate stops a node without leaving the pool: its tasks are
// requeued, terminated or allowed to finish (nodeDeallocateOption), then
// it stays deallocated, taking no tasks, until NodeStart.
func (s *Service) NodeDeallocate(ctx context.Context, account, poolID, nodeID string, c *azbatch.DeallocateNodeContent) error {
	opt := "requeue"
	if c != nil && c.NodeDeallocateOption != nil {
		opt = strings.ToLower(string(*c.NodeDeallocateOption))
		if !validDrainOption(opt) {
			return batch.InvalidProperty("nodeDeallocateOption", string(*c.NodeDeallocateOption), "Allowed values are requeue, terminate, taskcompletion and retaineddata.")
		}
	}
	return s.restartNode(ctx, account, poolID, nodeID, nodeOpDeallocate, opt)
}

func validDrainOption(opt string) bool {
	switch opt {
	case "requeue", "terminate", "taskcompletion", "retaineddata":
		return true
	}
	return false
}

// restartNode starts a reboot, reimage or deallocation of a node.
func (s *Service) restartNode(ctx context.Context, account, poolID, nodeID string, mode nodeOpMode, opt string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return err
	}
	if n.removing {
		return batch.Conflict("NodeBeingRemoved", "The node is leaving the pool.").With("nodeId", nodeID)
	}
	if n.deallocated {
		return batch.Conflict("NodeDeallocated", "The node is deallocated; start it first.").With("nodeId", nodeID)
	}
	if n.rebooting {
		return batch.Conflict("NodeNotReady", "The node is already being %s.", stateVerb(n.opMode)).With("nodeId", nodeID)
	}
	var w store.Writes
	if n.unusable && mode != nodeOpDeallocate {
		// An unusable node lost its agent: a reboot or reimage restarts it.
		s.recoverNodeLocked(n, &w)
		return s.commit(ctx, &w)
	}
	if !n.registered || n.unusable {
		return batch.Conflict("NodeNotReady", "The node is not in a state that allows this operation.").With("nodeId", nodeID).With("nodeState", string(deref(n.doc.State)))
	}
	if mode == nodeOpDeallocate {
		// "You can deallocate a Compute Node only if it is in an idle or
		// running state."
		if st := deref(n.doc.State); st != azbatch.NodeStateIdle && st != azbatch.NodeStateRunning {
			return batch.Conflict("NodeNotReady", "A node can be deallocated only when it is idle or running.").With("nodeId", nodeID).With("nodeState", string(st))
		}
	}
	switch opt {
	case "terminate":
		s.evictTasksLocked(n, false, &w)
	case "requeue":
		s.evictTasksLocked(n, true, &w)
	default:
		// taskcompletion / retaineddata: nothing new is scheduled, the
		// operation completes when the running tasks have.
	}
	n.opMode = mode
	n.rebooting = true
	n.startFail = false
	s.refreshNodeLocked(n, &w)
	s.writeNode(n, &w)
	s.maybeFinishRebootLocked(n, &w)
	return s.commit(ctx, &w)
}

func stateVerb(m nodeOpMode) string {
	switch m {
	case nodeOpReimage:
		return "reimaged"
	case nodeOpDeallocate:
		return "deallocated"
	}
	return "rebooted"
}

// finishNodeOpLocked completes a drained reimage or deallocation; it
// reports true when the node does not boot now: deallocated, or being
// wiped by its agent (the boot follows, wipeNode).
func (s *Service) finishNodeOpLocked(n *nodeState, w *store.Writes) bool {
	mode := n.opMode
	switch mode {
	case nodeOpDeallocate:
		n.opMode = nodeOpReboot
		n.deallocated = true
		if n.startTask != nil {
			s.detachAttemptLocked(n, n.startTask)
			n.startTask = nil
		}
		s.refreshNodeLocked(n, w)
		s.writeNode(n, w)
		return true
	case nodeOpReimage, nodeOpWipe:
		n.rebooting = true
		n.opMode = nodeOpWipe
		n.retainUntil = nil
		n.doc.StartTaskInfo = nil
		if mode == nodeOpReimage {
			order := protocol.ReimageOrder{Certificates: s.nodeCertificatesLocked(n)}
			go s.wipeNode(n, agentTarget{url: n.fileURL, secret: n.secret, n: n}, order)
		}
		s.refreshNodeLocked(n, w)
		s.writeNode(n, w)
		return true
	case nodeOpReboot:
		if n.fileURL == "" || sameCertificates(n.pool.doc.CertificateReferences, n.doc.CertificateReferences) {
			return false
		}
		// The pool's certificates changed since the node got its own:
		// the agent installs them before the node boots.
		n.rebooting = true
		n.opMode = nodeOpCerts
		order := protocol.ReimageOrder{Keep: true, Certificates: s.nodeCertificatesLocked(n)}
		go s.wipeNode(n, agentTarget{url: n.fileURL, secret: n.secret, n: n}, order)
		s.refreshNodeLocked(n, w)
		s.writeNode(n, w)
		return true
	}
	return false
}

// sameCertificates reports whether two lists of certificate references name
// the same thumbprints.
func sameCertificates(a, b []azbatch.CertificateReference) bool {
	set := func(refs []azbatch.CertificateReference) string {
		tps := make([]string, 0, len(refs))
		for _, r := range refs {
			tps = append(tps, normalizeThumbprint(deref(r.Thumbprint)))
		}
		sort.Strings(tps)
		return strings.Join(tps, ",")
	}
	return set(a) == set(b)
}

// wipeNode has the agent wipe a reimaged node (not for order.Keep) and
// install the pool's certificates, then boots it.
func (s *Service) wipeNode(n *nodeState, t agentTarget, order protocol.ReimageOrder) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err := callAgent(ctx, t, http.MethodPost, protocol.PathOpsReimage, order, nil)
	cancel()
	if err != nil {
		s.log.Warn("reimage or certificates of node", "node", n.id, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes[n.id] != n || n.opMode != nodeOpWipe && n.opMode != nodeOpCerts || n.removing {
		return
	}
	var w store.Writes
	n.opMode = nodeOpReboot
	s.maybeFinishRebootLocked(n, &w)
	_ = s.commit(context.Background(), &w)
}

// NodeStart starts a deallocated node: it boots, runs its start task and
// takes tasks again.
func (s *Service) NodeStart(ctx context.Context, account, poolID, nodeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return err
	}
	if !n.deallocated {
		return batch.Conflict("NodeNotDeallocated", "Only a deallocated node can be started.").With("nodeId", nodeID).With("nodeState", string(deref(n.doc.State)))
	}
	var w store.Writes
	n.deallocated = false
	n.rebooting = true
	n.opMode = nodeOpReboot
	s.maybeFinishRebootLocked(n, &w)
	return s.commit(ctx, &w)
}

// recoverNodeLocked restarts an unusable node's agent through the provider:
// the node starts again (a fresh node directory on the local provider) and
// registers as it did when it joined, which runs its start task.
func (s *Service) recoverNodeLocked(n *nodeState, w *store.Writes) {
	s.evictTasksLocked(n, true, w)
	now := s.now()
	n.unusable, n.registered, n.startFail, n.rebooting = false, false, false, false
	n.opMode = nodeOpReboot
	n.lastSeen = now
	n.retainUntil = nil
	n.doc.Errors = nil
	n.doc.StartTaskInfo = nil
	n.doc.State = ptr(azbatch.NodeStateStarting)
	n.doc.StateTransitionTime = &now
	s.nodeUsersResetLocked(n)
	s.writeNode(n, w)
	spec := provider.NodeSpec{Account: n.account, PoolID: n.pool.id(), NodeID: n.id, Dedicated: n.dedicated, Token: n.token, ServerURL: s.cfg.AgentURL}
	prov := s.poolProviderLocked(n.pool) // providers.go
	go func() {
		if err := prov.Stop(context.Background(), spec); err != nil {
			s.log.Warn("stop unusable node", "node", spec.NodeID, "err", err)
		}
		err := prov.Start(context.Background(), spec)
		if err == nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.nodes[spec.NodeID] != n {
			return
		}
		s.log.Error("restart node", "node", spec.NodeID, "err", err)
		var w store.Writes
		n.unusable = true
		n.doc.Errors = []azbatch.NodeError{{Code: ptr("NodeStartFailed"), Message: ptr(err.Error())}}
		s.refreshNodeLocked(n, &w)
		s.writeNode(n, &w)
		_ = s.commit(context.Background(), &w)
	}()
}

// agentTarget is how to reach a node's agent outside the lock.
type agentTarget struct {
	url, secret, ip string
	n               *nodeState
}

// nodeAgentLocked returns a node whose agent is reachable for a direct
// call, or Azure's error for a node that cannot take one ("only when it is
// in the idle or running state").
func (s *Service) nodeAgentLocked(account, poolID, nodeID string) (agentTarget, error) {
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return agentTarget{}, err
	}
	st := deref(n.doc.State)
	if n.fileURL == "" || !n.registered || n.unusable || n.removing || n.deallocated || n.rebooting {
		return agentTarget{}, batch.Conflict("NodeNotReady", "The node is not in a state that allows this operation.").With("nodeId", nodeID).With("nodeState", string(st))
	}
	return agentTarget{url: n.fileURL, secret: n.secret, ip: deref(n.doc.IPAddress), n: n}, nil
}

// NodeUploadLogs has the node's agent upload its log files that hold
// messages in [start, end) to a container URL; the answer names the
// virtual directory and how many files it uploads.
func (s *Service) NodeUploadLogs(ctx context.Context, account, poolID, nodeID string, c *azbatch.UploadNodeLogsContent) (azbatch.UploadNodeLogsResult, error) {
	if c == nil || c.ContainerURL == nil || *c.ContainerURL == "" {
		return azbatch.UploadNodeLogsResult{}, batch.MissingProperty("containerUrl")
	}
	if c.StartTime == nil {
		return azbatch.UploadNodeLogsResult{}, batch.MissingProperty("startTime")
	}
	if c.EndTime != nil && c.EndTime.Before(*c.StartTime) {
		return azbatch.UploadNodeLogsResult{}, batch.InvalidProperty("endTime", c.EndTime.Format(time.RFC3339), "The end time is before the start time.")
	}
	s.mu.Lock()
	t, err := s.nodeAgentLocked(account, poolID, nodeID)
	s.mu.Unlock()
	if err != nil {
		return azbatch.UploadNodeLogsResult{}, err
	}
	// Azure builds the directory from the pool, the node and a unique id.
	dir := poolID + "/" + nodeID + "/" + newUUID() + "/"
	req := protocol.UploadLogsOrder{ContainerURL: *c.ContainerURL, StartTime: *c.StartTime, Directory: dir}
	if c.EndTime != nil {
		req.EndTime = *c.EndTime
	}
	var out protocol.UploadLogsResult
	if err := callAgent(ctx, t, http.MethodPost, protocol.PathOpsUploadLogs, req, &out); err != nil {
		return azbatch.UploadNodeLogsResult{}, err
	}
	return azbatch.UploadNodeLogsResult{VirtualDirectoryName: &dir, NumberOfFilesUploaded: ptr(int32(out.Files))}, nil
}

// kilnAgentExtension is the one extension Kiln nodes run: the node agent.
const kilnAgentExtension = "kiln-agent"

// NodeExtensions lists what runs on a node besides its tasks, in Azure's
// shape of VM extensions: the Kiln node agent.
func (s *Service) NodeExtensions(ctx context.Context, account, poolID, nodeID string) ([]azbatch.NodeVMExtension, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.nodeLocked(account, poolID, nodeID)
	if err != nil {
		return nil, err
	}
	version, state, level, code := "", "Creating", azbatch.StatusLevelTypesInfo, "ProvisioningState/creating"
	var when *time.Time
	if n.doc.NodeAgentInfo != nil {
		version = deref(n.doc.NodeAgentInfo.Version)
		when = n.doc.NodeAgentInfo.LastUpdateTime
	}
	switch {
	case n.unusable:
		state, level, code = "Failed", azbatch.StatusLevelTypesError, "ProvisioningState/failed"
	case n.registered:
		state, code = "Succeeded", "ProvisioningState/succeeded"
	}
	ext := azbatch.NodeVMExtension{
		ProvisioningState: ptr(state),
		VMExtension: &azbatch.VMExtension{
			Name:                    ptr(kilnAgentExtension),
			Publisher:               ptr("Kiln"),
			Type:                    ptr("NodeAgent"),
			TypeHandlerVersion:      ptr(version),
			AutoUpgradeMinorVersion: ptr(false),
		},
		InstanceView: &azbatch.VMExtensionInstanceView{
			Name: ptr(kilnAgentExtension),
			Statuses: []azbatch.InstanceViewStatus{{
				Code: ptr(code), DisplayStatus: ptr("Provisioning " + strings.ToLower(state)), Level: ptr(level), Time: when,
			}},
		},
	}
	return []azbatch.NodeVMExtension{ext}, nil
}

// NodeExtension returns one of NodeExtensions by name.
func (s *Service) NodeExtension(ctx context.Context, account, poolID, nodeID, name string) (azbatch.NodeVMExtension, error) {
	exts, err := s.NodeExtensions(ctx, account, poolID, nodeID)
	if err != nil {
		return azbatch.NodeVMExtension{}, err
	}
	for _, e := range exts {
		if strings.EqualFold(deref(e.VMExtension.Name), name) {
			return e, nil
		}
	}
	return azbatch.NodeVMExtension{}, batch.NotFound("ExtensionNotFound", "extension", name)
}

// sshPort is where remote login goes; dialSSH probes it.
const sshPort = 22

var dialSSH = func(ctx context.Context, host string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(sshPort)))
	if err == nil {
		c.Close()
	}
	return err
}

// NodeRemoteLoginSettings returns the node's SSH endpoint: its address and
// port 22, when an SSH server listens there.
func (s *Service) NodeRemoteLoginSettings(ctx context.Context, account, poolID, nodeID string) (azbatch.NodeRemoteLoginSettings, error) {
	s.mu.Lock()
	t, err := s.nodeAgentLocked(account, poolID, nodeID)
	s.mu.Unlock()
	if err != nil {
		return azbatch.NodeRemoteLoginSettings{}, err
	}
	host := t.ip
	if host == "" {
		host = "127.0.0.1"
	}
	if err := dialSSH(ctx, host); err != nil {
		return azbatch.NodeRemoteLoginSettings{}, batch.Conflict("RemoteLoginNotAvailable",
			"No SSH server listens on the node (%s port %d).", host, sshPort).With("nodeId", nodeID)
	}
	return azbatch.NodeRemoteLoginSettings{RemoteLoginIPAddress: &host, RemoteLoginPort: ptr(int32(sshPort))}, nil
}

// Pool usage metrics.

// UsageInterval is the length of Pool_ListUsageMetrics aggregation
// intervals.
const UsageInterval = time.Hour

// nodeSpan is the life of a node, for usage metrics.
type nodeSpan struct {
	account, poolID, vmSize string
	from, to                time.Time
}

// usageBucket is the core hours of the nodes that left a pool, in one
// aggregation interval. They are kept in the account statistics record of
// kind usageStatsKind, so that metrics survive a restart.
type usageBucket struct {
	PoolID    string    `json:"poolId"`
	VMSize    string    `json:"vmSize"`
	Start     time.Time `json:"startTime"`
	CoreHours float64   `json:"coreHours"`
}

const (
	usageStatsKind = "poolusage"
	// usageRetention is how long the buckets of departed nodes are kept.
	usageRetention = 31 * 24 * time.Hour
)

// nodeOpsState is what the node operations keep in memory: per account, the
// usage buckets of the nodes that left their pools, by usageKey.
type nodeOpsState struct {
	gone map[string]map[string]*usageBucket
}

func usageKey(poolID string, start time.Time) string {
	return strings.ToLower(poolID) + "\x00" + start.UTC().Format(time.RFC3339)
}

// addSpan adds a span's core hours to buckets, one per interval it covers
// up to now.
func addSpan(buckets map[string]*usageBucket, sp nodeSpan, from, now time.Time) {
	for b := maxTime(from, sp.from).UTC().Truncate(UsageInterval); b.Before(sp.to) && b.Before(now); b = b.Add(UsageInterval) {
		lo, hi := maxTime(b, sp.from), minTime(b.Add(UsageInterval), sp.to)
		if !hi.After(lo) {
			continue
		}
		k := usageKey(sp.poolID, b)
		bk := buckets[k]
		if bk == nil {
			bk = &usageBucket{PoolID: sp.poolID, VMSize: sp.vmSize, Start: b}
			buckets[k] = bk
		}
		bk.CoreHours += hi.Sub(lo).Hours() * coresOf(sp.vmSize)
	}
}

// recordNodeUsageLocked adds a deleted node's life to its account's usage
// buckets and queues their record.
func (s *Service) recordNodeUsageLocked(n *nodeState, w *store.Writes) {
	if n.doc.AllocationTime == nil {
		return
	}
	now := s.now()
	acct := strings.ToLower(n.account)
	if s.ops.gone == nil {
		s.ops.gone = map[string]map[string]*usageBucket{}
	}
	buckets := s.ops.gone[acct]
	if buckets == nil {
		buckets = map[string]*usageBucket{}
		s.ops.gone[acct] = buckets
	}
	addSpan(buckets, nodeSpan{account: n.account, poolID: n.pool.id(), vmSize: deref(n.pool.doc.VMSize), from: *n.doc.AllocationTime, to: now},
		now.Add(-usageRetention), now)
	list := make([]*usageBucket, 0, len(buckets))
	for k, b := range buckets {
		if now.Sub(b.Start) > usageRetention {
			delete(buckets, k)
			continue
		}
		list = append(list, b)
	}
	sort.Slice(list, func(i, j int) bool { return usageKeyOf(list[i]) < usageKeyOf(list[j]) })
	doc, err := json.Marshal(list)
	if err != nil || w == nil {
		return
	}
	for i := range w.AccountStats {
		if w.AccountStats[i].Account == acct && w.AccountStats[i].Kind == usageStatsKind {
			w.AccountStats[i].Doc = doc
			return
		}
	}
	w.AccountStats = append(w.AccountStats, store.AccountStats{Account: acct, Kind: usageStatsKind, Doc: doc})
}

func usageKeyOf(b *usageBucket) string { return usageKey(b.PoolID, b.Start) }

// loadNodeUsage reads the usage buckets of departed nodes at start.
func (s *Service) loadNodeUsage(ctx context.Context) error {
	recs, err := s.cfg.Store.AccountStatsList(ctx)
	if err != nil {
		return err
	}
	s.ops.gone = map[string]map[string]*usageBucket{}
	for _, rec := range recs {
		if rec.Kind != usageStatsKind {
			continue
		}
		var list []*usageBucket
		if err := json.Unmarshal(rec.Doc, &list); err != nil {
			s.log.Error("load pool usage", "account", rec.Account, "err", err)
			continue
		}
		buckets := map[string]*usageBucket{}
		for _, b := range list {
			buckets[usageKeyOf(b)] = b
		}
		s.ops.gone[strings.ToLower(rec.Account)] = buckets
	}
	return nil
}

var vmSizeCores = regexp.MustCompile(`^(?:standard|basic)_[a-z]+?(\d+)`)

// coresOf is the number of cores of an Azure VM size: the number after the
// family letters (standard_d2s_v3: 2), 1 when the name has none.
func coresOf(vmSize string) float64 {
	m := vmSizeCores.FindStringSubmatch(strings.ToLower(vmSize))
	if m == nil {
		return 1
	}
	c, err := strconv.Atoi(m[1])
	if err != nil || c < 1 {
		return 1
	}
	return float64(c)
}

// PoolUsageMetrics lists, per pool and aggregation interval (an hour) that
// overlaps [start, end), the core hours its nodes were allocated. Zero
// start and end select the latest interval (the current, partial hour).
func (s *Service) PoolUsageMetrics(ctx context.Context, account string, start, end time.Time, lp ListParams) (ListPage, error) {
	now := s.now().UTC()
	if start.IsZero() && end.IsZero() {
		start = now.Truncate(UsageInterval)
		end = start.Add(UsageInterval)
	}
	if end.IsZero() {
		end = now
	}
	if start.IsZero() {
		start = end.Add(-UsageInterval)
	}
	if !end.After(start) {
		return ListPage{}, batch.InvalidQuery("endtime", end.Format(time.RFC3339), "The end time must be after the start time.")
	}
	first := start.UTC().Truncate(UsageInterval)
	buckets := map[string]*usageBucket{}
	s.mu.Lock()
	for k, b := range s.ops.gone[strings.ToLower(account)] {
		if !b.Start.Before(first) && b.Start.Before(end) {
			c := *b
			buckets[k] = &c
		}
	}
	for _, p := range s.pools {
		if p.account != account {
			continue
		}
		for _, n := range p.nodes {
			if n.doc.AllocationTime != nil && !n.deallocated {
				sp := nodeSpan{account: account, poolID: p.id(), vmSize: deref(p.doc.VMSize), from: *n.doc.AllocationTime, to: now}
				addSpan(buckets, sp, first, minTime(end, now))
			}
		}
	}
	s.mu.Unlock()

	keys := make([]string, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	objs := make([]Object, 0, len(keys))
	for _, k := range keys {
		b := buckets[k]
		o, err := object(poolUsageMetrics{
			PoolID: b.PoolID, StartTime: b.Start, EndTime: b.Start.Add(UsageInterval),
			VMSize: b.VMSize, TotalCoreHours: b.CoreHours,
		}, nil, nil, nil)
		if err != nil {
			return ListPage{}, err
		}
		objs = append(objs, o)
	}
	return pageByID(objs, keys, lp)
}

// poolUsageMetrics is Azure's PoolUsageMetrics (no longer in the Go SDK).
type poolUsageMetrics struct {
	PoolID         string    `json:"poolId"`
	StartTime      time.Time `json:"startTime"`
	EndTime        time.Time `json:"endTime"`
	VMSize         string    `json:"vmSize"`
	TotalCoreHours float64   `json:"totalCoreHours"`
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
