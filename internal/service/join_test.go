package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/provider/agents"
	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

const joinAccount = "joinacct"

// joinBundle is a service on a real SQLite store whose default provider
// hands node specs to the test, with the agents provider registered.
type joinBundle struct {
	t      *testing.T
	dbPath string
	prov   depsProvider
	s      *Service
}

func newJoinBundle(t *testing.T) *joinBundle {
	t.Helper()
	b := &joinBundle{t: t, dbPath: filepath.Join(t.TempDir(), "kiln.db"), prov: depsProvider{specs: make(chan provider.NodeSpec, 16)}}
	b.open()
	if _, err := b.s.EnsureAccount(context.Background(), joinAccount, ""); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *joinBundle) open() {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.dbPath)
	if err != nil {
		b.t.Fatal(err)
	}
	s, err := New(ctx, Config{Store: st, Provider: b.prov, Providers: []provider.Provider{agents.New()},
		HeartbeatInterval: 50 * time.Millisecond, AgentURL: "http://127.0.0.1:8080",
		AccountURL: func(string) string { return "http://127.0.0.1:8080" }})
	if err != nil {
		b.t.Fatal(err)
	}
	b.s = s
	b.t.Cleanup(func() {
		s.Close()
		st.Close()
	})
}

func (b *joinBundle) restart() {
	b.t.Helper()
	b.s.Close()
	if err := b.s.cfg.Store.Close(); err != nil {
		b.t.Fatal(err)
	}
	b.open()
}

func (b *joinBundle) addAgentsPool(id string, ded, low int32) {
	b.t.Helper()
	if _, err := b.s.PoolAdd(context.Background(), joinAccount, &azbatch.CreatePoolContent{ID: ptr(id), VMSize: ptr("standard_d2s_v3"),
		TargetDedicatedNodes: ptr(ded), TargetLowPriorityNodes: ptr(low),
		Metadata: []azbatch.MetadataItem{{Name: ptr(MetadataProvider), Value: ptr("agents")}}}); err != nil {
		b.t.Fatal(err)
	}
}

func (b *joinBundle) token(pool string, rotate bool) JoinToken {
	b.t.Helper()
	jt, err := b.s.PoolJoinToken(context.Background(), joinAccount, pool, rotate)
	if err != nil {
		b.t.Fatal(err)
	}
	return jt
}

// join registers an agent with a join token.
func (b *joinBundle) join(pool, token, nodeID string, low bool) (*protocol.RegisterResponse, int, error) {
	return b.s.agentRegister(context.Background(), &protocol.RegisterRequest{ProtocolVersion: protocol.Version,
		PoolID: pool, NodeID: nodeID, Token: token, Join: true, LowPriority: low, Hostname: "h"})
}

func (b *joinBundle) mustJoin(pool, token, nodeID string, low bool) *protocol.RegisterResponse {
	b.t.Helper()
	resp, status, err := b.join(pool, token, nodeID, low)
	if err != nil {
		b.t.Fatalf("join: %d %v", status, err)
	}
	return resp
}

func (b *joinBundle) pool(id string) azbatch.Pool {
	b.t.Helper()
	o, err := b.s.PoolGet(context.Background(), joinAccount, id, Conditions{})
	if err != nil {
		b.t.Fatal(err)
	}
	var p azbatch.Pool
	if err := json.Unmarshal(o.Doc, &p); err != nil {
		b.t.Fatal(err)
	}
	return p
}

func (b *joinBundle) nodeCount(pool string) int {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return len(b.s.pools[key(joinAccount, pool)].nodes)
}

// TestJoinAdmitsUpToTargets: agents are admitted as nodes while their kind
// is below its target, then wait as standby; the service starts nothing;
// node ids proposed in Azure's shape are kept, others replaced.
func TestJoinAdmitsUpToTargets(t *testing.T) {
	b := newJoinBundle(t)
	b.addAgentsPool("byo", 2, 1)
	if p := b.pool("byo"); *p.AllocationState != azbatch.AllocationStateResizing || *p.CurrentDedicatedNodes != 0 {
		t.Fatalf("new agents pool: %s, %d nodes", *p.AllocationState, *p.CurrentDedicatedNodes)
	}
	tok := b.token("byo", false).Token
	if !strings.HasPrefix(tok, "kjt_") || b.token("byo", false).Token != tok {
		t.Fatalf("join token %q is not stable or not shaped", tok)
	}
	kept := newNodeID(true)
	r1 := b.mustJoin("byo", tok, kept, false)
	if r1.Standby || r1.NodeID != kept || r1.NodeToken == "" || r1.Node.PoolID != "byo" || !r1.Node.IsDedicated {
		t.Fatalf("first agent: %+v", r1)
	}
	r2 := b.mustJoin("byo", tok, "not-an-id", false)
	if r2.Standby || !nodeIDPattern.MatchString(r2.NodeID) || !strings.HasSuffix(r2.NodeID, "_d") {
		t.Fatalf("second agent: %+v", r2)
	}
	waiting := newNodeID(true)
	r3 := b.mustJoin("byo", tok, waiting, false)
	if !r3.Standby || r3.NodeID != waiting || r3.NodeToken != "" || r3.RetryAfter <= 0 || !strings.Contains(r3.Message, "standby") {
		t.Fatalf("third agent: %+v", r3)
	}
	sb, err := b.s.PoolStandbyAgents(context.Background(), joinAccount, "byo")
	if err != nil || len(sb) != 1 || sb[0].NodeID != waiting {
		t.Fatalf("standby agents: %+v %v", sb, err)
	}
	// A dedicated id for a low-priority agent is replaced by a _p one.
	r4 := b.mustJoin("byo", tok, newNodeID(true), true)
	if r4.Standby || !strings.HasSuffix(r4.NodeID, "_p") || r4.Node.IsDedicated {
		t.Fatalf("low-priority agent: %+v", r4)
	}
	if r := b.mustJoin("byo", tok, "", true); !r.Standby {
		t.Fatalf("second low-priority agent: %+v", r)
	}
	p := b.pool("byo")
	if *p.AllocationState != azbatch.AllocationStateSteady || *p.CurrentDedicatedNodes != 2 || *p.CurrentLowPriorityNodes != 1 {
		t.Fatalf("pool: %s %d/%d", *p.AllocationState, *p.CurrentDedicatedNodes, *p.CurrentLowPriorityNodes)
	}
	select {
	case spec := <-b.prov.specs:
		t.Fatalf("the service started a node of an agents pool: %+v", spec)
	default:
	}
	// Kiln cannot evict machines it does not own.
	var be *batch.Error
	if _, err := b.s.PreemptNodes(context.Background(), joinAccount, "byo", nil, 1); !errors.As(err, &be) || be.Code != "OperationNotSupportedForPoolProvider" {
		t.Fatalf("preempting a node of an agents pool: %v", err)
	}
	b.s.mu.Lock()
	for _, n := range b.s.pools[key(joinAccount, "byo")].nodes {
		if n.preemptible() {
			t.Errorf("node %s of an agents pool is preemptible", n.id)
		}
	}
	b.s.mu.Unlock()

	// A grown target admits the standby agent under its id.
	if _, err := b.s.PoolResize(context.Background(), joinAccount, "byo", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(3))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if r := b.mustJoin("byo", tok, waiting, false); r.Standby || r.NodeID != waiting {
		t.Fatalf("standby agent after the resize: %+v", r)
	}
	if sb, _ := b.s.PoolStandbyAgents(context.Background(), joinAccount, "byo"); len(sb) != 1 || !sb[0].LowPriority {
		t.Fatalf("standby agents after the resize: %+v", sb)
	}
}

// TestJoinRefused: wrong tokens, a token of another pool, a pool of another
// provider.
func TestJoinRefused(t *testing.T) {
	b := newJoinBundle(t)
	b.addAgentsPool("a", 1, 0)
	b.addAgentsPool("b", 1, 0)
	tokA := b.token("a", false).Token
	for _, tc := range []struct{ pool, token string }{{"a", "kjt_wrong"}, {"a", ""}, {"b", tokA}} {
		_, status, err := b.join(tc.pool, tc.token, "", false)
		if status != http.StatusForbidden || err == nil || !strings.Contains(err.Error(), "join token refused") {
			t.Fatalf("join %s with %q: %d %v", tc.pool, tc.token, status, err)
		}
	}
	// Without a pool id the token alone names the pool.
	if r := b.mustJoin("", tokA, "", false); r.Standby || r.Node.PoolID != "a" {
		t.Fatalf("join without a pool id: %+v", r)
	}

	if _, err := b.s.PoolAdd(context.Background(), joinAccount, &azbatch.CreatePoolContent{ID: ptr("local"), VMSize: ptr("standard_d2s_v3")}); err != nil {
		t.Fatal(err)
	}
	_, err := b.s.PoolJoinToken(context.Background(), joinAccount, "local", false)
	var be *batch.Error
	if !errors.As(err, &be) || be.Status != http.StatusConflict || be.Code != "PoolProviderNotAgents" {
		t.Fatalf("join token of a pool of the default provider: %v", err)
	}
	_, err = b.s.PoolAdd(context.Background(), joinAccount, &azbatch.CreatePoolContent{ID: ptr("x"), VMSize: ptr("standard_d2s_v3"),
		Metadata: []azbatch.MetadataItem{{Name: ptr(MetadataProvider), Value: ptr("nope")}}})
	if !errors.As(err, &be) || be.Code != "InvalidPropertyValue" || !strings.Contains(be.Values[0].Value, "metadata") {
		t.Fatalf("pool with an unknown provider: %v", err)
	}
	// Picking the default provider by name works, and so does the case.
	if _, err := b.s.PoolAdd(context.Background(), joinAccount, &azbatch.CreatePoolContent{ID: ptr("named"), VMSize: ptr("standard_d2s_v3"),
		Metadata: []azbatch.MetadataItem{{Name: ptr(MetadataProvider), Value: ptr("Deps-Test")}}}); err != nil {
		t.Fatal(err)
	}
}

// TestJoinTokenRotateAndRestart: the token and the pool's provider survive a
// restart; an agent registering again with its node id is the same node;
// rotating revokes the old token and removes the pool's nodes.
func TestJoinTokenRotateAndRestart(t *testing.T) {
	b := newJoinBundle(t)
	b.addAgentsPool("byo", 2, 0)
	tok := b.token("byo", false).Token
	id1 := b.mustJoin("byo", tok, "", false).NodeID
	id2 := b.mustJoin("byo", tok, "", false).NodeID

	b.restart()
	if got := b.token("byo", false).Token; got != tok {
		t.Fatalf("token after a restart: %q, want %q", got, tok)
	}
	if r := b.mustJoin("byo", tok, id1, false); r.Standby || r.NodeID != id1 {
		t.Fatalf("agent registering again after the restart: %+v", r)
	}
	if n := b.nodeCount("byo"); n != 2 {
		t.Fatalf("%d nodes after the restart", n)
	}
	select {
	case spec := <-b.prov.specs:
		t.Fatalf("the restarted service started a node of an agents pool: %+v", spec)
	default:
	}

	jt := b.token("byo", true)
	if jt.Token == tok || len(jt.RemovedNodes) != 2 || !contains2(jt.RemovedNodes, id1, id2) {
		t.Fatalf("rotation: %+v", jt)
	}
	if _, status, err := b.join("byo", tok, id1, false); status != http.StatusForbidden || err == nil {
		t.Fatalf("old token after the rotation: %d %v", status, err)
	}
	// The removed nodes leave (their agents are told to shut down, or are
	// deleted after the grace period); a new agent joins with the new token
	// once they are gone.
	b.s.mu.Lock()
	for _, n := range b.s.pools[key(joinAccount, "byo")].nodes {
		if !n.removing {
			t.Errorf("node %s is not leaving after the rotation", n.id)
		}
	}
	b.s.mu.Unlock()
	if r := b.mustJoin("byo", jt.Token, "", false); r.Standby {
		t.Fatalf("agent with the new token: %+v", r)
	}
	// A node still leaving keeps its id: its agent waits.
	if r := b.mustJoin("byo", jt.Token, id1, false); !r.Standby || !strings.Contains(r.Message, "leaving") {
		t.Fatalf("agent of a leaving node: %+v", r)
	}
}

func contains2(list []string, a, b string) bool {
	has := map[string]bool{}
	for _, v := range list {
		has[v] = true
	}
	return has[a] && has[b]
}

// TestJoinResizeTimeout: an agents pool still waiting for agents after its
// resizeTimeout goes steady with AllocationTimedOut and keeps its targets;
// a later agent still joins.
func TestJoinResizeTimeout(t *testing.T) {
	b := newJoinBundle(t)
	b.addAgentsPool("byo", 3, 0)
	tok := b.token("byo", false).Token
	b.mustJoin("byo", tok, "", false)
	b.s.mu.Lock()
	p := b.s.pools[key(joinAccount, "byo")]
	p.resizeStart = time.Now().Add(-16 * time.Minute)
	var w0 store.Writes
	b.s.checkResizeTimeoutsLocked(&w0)
	if err := b.s.commit(context.Background(), &w0); err != nil {
		t.Fatal(err)
	}
	b.s.mu.Unlock()
	got := b.pool("byo")
	if *got.AllocationState != azbatch.AllocationStateSteady || *got.TargetDedicatedNodes != 3 || *got.CurrentDedicatedNodes != 1 ||
		len(got.ResizeErrors) != 1 || *got.ResizeErrors[0].Code != "AllocationTimedOut" {
		t.Fatalf("after the timeout: %s target %d current %d errors %+v", *got.AllocationState, *got.TargetDedicatedNodes, *got.CurrentDedicatedNodes, got.ResizeErrors)
	}
	if r := b.mustJoin("byo", tok, "", false); r.Standby {
		t.Fatalf("agent after the timeout: %+v", r)
	}
	if got := b.pool("byo"); *got.AllocationState != azbatch.AllocationStateSteady || *got.CurrentDedicatedNodes != 2 {
		t.Fatalf("after a late agent: %s %d", *got.AllocationState, *got.CurrentDedicatedNodes)
	}
	// A new resize clears the error and waits again.
	if _, err := b.s.PoolResize(context.Background(), joinAccount, "byo", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(4))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if got := b.pool("byo"); *got.AllocationState != azbatch.AllocationStateResizing || len(got.ResizeErrors) != 0 {
		t.Fatalf("after a new resize: %s %+v", *got.AllocationState, got.ResizeErrors)
	}
}

// TestPoolKilnRecord: the Kiln-only fields ride in the pool record and do
// not disturb Azure's document.
func TestPoolKilnRecord(t *testing.T) {
	doc := &azbatch.Pool{ID: ptr("p"), VMSize: ptr("x")}
	b, err := doc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	k := poolKiln{Provider: "agents", JoinToken: "kjt_1"}
	rec, err := k.withKiln(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := loadPoolKiln(rec); got != k {
		t.Fatalf("loaded %+v, want %+v", got, k)
	}
	var back azbatch.Pool
	if err := back.UnmarshalJSON(rec); err != nil || *back.ID != "p" || *back.VMSize != "x" {
		t.Fatalf("pool document from the record: %+v %v", back, err)
	}
	if same, _ := (poolKiln{}).withKiln(b); string(same) != string(b) {
		t.Fatalf("empty Kiln fields changed the record: %s", same)
	}
	if got := loadPoolKiln(b); got != (poolKiln{}) {
		t.Fatalf("a record without Kiln fields: %+v", got)
	}
}
