package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestPoolLifecycle adds, reads, checks, patches, replaces and deletes a
// pool, with the conditional headers and the errors of each step.
func TestPoolLifecycle(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	before := time.Now().Add(-time.Second)

	// Add: 201.
	c, status := poolCapture(t)
	if _, err := s.Client.CreatePool(c, poolContent("life", 1, 2), nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	if status() != http.StatusCreated {
		t.Fatalf("create pool answered %d, want 201", status())
	}
	s.WaitNodes(t, "life", 1, azbatch.NodeStateIdle)

	// Get: every basic property.
	c, status = poolCapture(t)
	r, err := s.Client.GetPool(c, "life", nil)
	if err != nil || status() != http.StatusOK {
		t.Fatalf("get pool: %d %v", status(), err)
	}
	p := r.Pool
	if *p.ID != "life" || *p.State != azbatch.PoolStateActive || *p.AllocationState != azbatch.AllocationStateSteady {
		t.Fatalf("pool id %s state %s allocation %s", *p.ID, *p.State, *p.AllocationState)
	}
	if *p.VMSize != "standard_d2s_v3" || *p.TaskSlotsPerNode != 2 || *p.TargetDedicatedNodes != 1 || *p.CurrentDedicatedNodes != 1 {
		t.Fatalf("pool vmSize %s slots %d target %d current %d", *p.VMSize, *p.TaskSlotsPerNode, *p.TargetDedicatedNodes, *p.CurrentDedicatedNodes)
	}
	if p.ETag == nil || *p.ETag == "" || r.ETag == nil || *r.ETag != *p.ETag {
		t.Fatalf("pool eTag %v, header %v", p.ETag, r.ETag)
	}
	if p.LastModified == nil || p.LastModified.Before(before) || p.CreationTime == nil || p.CreationTime.Before(before) || r.LastModified == nil {
		t.Fatalf("pool lastModified %v creationTime %v header %v", p.LastModified, p.CreationTime, r.LastModified)
	}
	if p.URL == nil || *p.URL == "" || !strings.HasSuffix(*p.URL, "/pools/life") {
		t.Fatalf("pool url %v", p.URL)
	}
	etag := *p.ETag

	// Conditional get: If-None-Match with the current ETag is 304; If-Match
	// with it succeeds.
	_, err = s.Client.GetPool(ctx(t), "life", &azbatch.GetPoolOptions{IfNoneMatch: &etag})
	if statusOf(err) != http.StatusNotModified {
		t.Fatalf("get with If-None-Match current ETag: %v, want 304", err)
	}
	if _, err := s.Client.GetPool(ctx(t), "life", &azbatch.GetPoolOptions{IfMatch: &etag}); err != nil {
		t.Fatalf("get with If-Match current ETag: %v", err)
	}
	_, err = s.Client.GetPool(ctx(t), "life", &azbatch.GetPoolOptions{IfMatch: to(azcore.ETag(`"0x8D0000000000000"`))})
	poolExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	_, err = s.Client.GetPool(ctx(t), "life", &azbatch.GetPoolOptions{IfModifiedSince: to(p.LastModified.Add(time.Second))})
	if statusOf(err) != http.StatusNotModified {
		t.Fatalf("get with If-Modified-Since after lastModified: %v, want 304", err)
	}
	if _, err := s.Client.GetPool(ctx(t), "life", &azbatch.GetPoolOptions{IfModifiedSince: to(p.LastModified.Add(-time.Hour))}); err != nil {
		t.Fatalf("get with If-Modified-Since before lastModified: %v", err)
	}
	// Ids are case-insensitive.
	if r, err := s.Client.GetPool(ctx(t), "LIFE", nil); err != nil || *r.ID != "life" {
		t.Fatalf("get LIFE: %v", err)
	}

	// Exists: 200 with the ETag, 404 for a missing pool (no error).
	c, status = poolCapture(t)
	ex, err := s.Client.PoolExists(c, "life", nil)
	if err != nil || status() != http.StatusOK || ex.ETag == nil || *ex.ETag != etag {
		t.Fatalf("pool exists: %d %v etag %v", status(), err, ex.ETag)
	}
	c, status = poolCapture(t)
	ex, err = s.Client.PoolExists(c, "nosuchpool", nil)
	if err != nil || status() != http.StatusNotFound || ex.ETag != nil {
		t.Fatalf("missing pool exists: %d %v", status(), err)
	}

	// Errors: the same id again, a missing pool.
	_, err = s.Client.CreatePool(ctx(t), poolContent("LIFE", 0, 1), nil)
	poolExpectError(t, err, http.StatusConflict, "PoolExists")
	_, err = s.Client.GetPool(ctx(t), "nosuchpool", nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
	_, err = s.Client.DeletePool(ctx(t), "nosuchpool", nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")

	// Patch: metadata and start task; other properties keep their values.
	time.Sleep(10 * time.Millisecond)
	c, status = poolCapture(t)
	up, err := s.Client.UpdatePool(c, "life", azbatch.UpdatePoolContent{
		Metadata:  []azbatch.MetadataItem{{Name: to("owner"), Value: to("e2e")}},
		StartTask: &azbatch.StartTask{CommandLine: to("/bin/true"), WaitForSuccess: to(true)},
	}, &azbatch.UpdatePoolOptions{IfMatch: &etag})
	if err != nil || status() != http.StatusOK {
		t.Fatalf("patch pool: %d %v", status(), err)
	}
	if up.ETag == nil || *up.ETag == etag {
		t.Fatalf("patch kept the ETag %v", up.ETag)
	}
	p = s.poolGet(t, "life")
	if len(p.Metadata) != 1 || *p.Metadata[0].Name != "owner" || *p.Metadata[0].Value != "e2e" {
		t.Fatalf("patched metadata %+v", p.Metadata)
	}
	if p.StartTask == nil || *p.StartTask.CommandLine != "/bin/true" || !*p.StartTask.WaitForSuccess {
		t.Fatalf("patched start task %+v", p.StartTask)
	}
	if *p.VMSize != "standard_d2s_v3" || *p.TaskSlotsPerNode != 2 || *p.ETag != *up.ETag || !p.LastModified.After(*r.Pool.LastModified) {
		t.Fatalf("after patch: vmSize %s slots %d eTag %s lastModified %v", *p.VMSize, *p.TaskSlotsPerNode, *p.ETag, p.LastModified)
	}

	// Writes with the stale ETag fail with 412 ConditionNotMet.
	_, err = s.Client.UpdatePool(ctx(t), "life", azbatch.UpdatePoolContent{
		Metadata: []azbatch.MetadataItem{{Name: to("owner"), Value: to("late")}},
	}, &azbatch.UpdatePoolOptions{IfMatch: &etag})
	poolExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	_, err = s.Client.ResizePool(ctx(t), "life", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(0))},
		&azbatch.ResizePoolOptions{IfMatch: &etag})
	poolExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	_, err = s.Client.UpdatePool(ctx(t), "life", azbatch.UpdatePoolContent{DisplayName: to("late")},
		&azbatch.UpdatePoolOptions{IfUnmodifiedSince: to(p.LastModified.Add(-time.Hour))})
	poolExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	_, err = s.Client.DeletePool(ctx(t), "life", &azbatch.DeletePoolOptions{IfMatch: &etag})
	poolExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	if p := s.poolGet(t, "life"); *p.Metadata[0].Value != "e2e" || *p.State != azbatch.PoolStateActive || *p.TargetDedicatedNodes != 1 {
		t.Fatalf("a failed conditional write changed the pool: %+v", p.Metadata)
	}

	// Update properties: replaces; the start task absent is removed.
	c, status = poolCapture(t)
	if _, err := s.Client.ReplacePoolProperties(c, "life", azbatch.ReplacePoolContent{
		Metadata:                     []azbatch.MetadataItem{{Name: to("stage"), Value: to("replaced")}},
		CertificateReferences:        []azbatch.CertificateReference{},
		ApplicationPackageReferences: []azbatch.ApplicationPackageReference{},
	}, nil); err != nil || status() != http.StatusNoContent {
		t.Fatalf("update pool properties: %d %v", status(), err)
	}
	p = s.poolGet(t, "life")
	if len(p.Metadata) != 1 || *p.Metadata[0].Name != "stage" || *p.Metadata[0].Value != "replaced" || p.StartTask != nil {
		t.Fatalf("after update properties: metadata %+v startTask %+v", p.Metadata, p.StartTask)
	}
	_, err = s.Client.ReplacePoolProperties(ctx(t), "nosuchpool", azbatch.ReplacePoolContent{Metadata: []azbatch.MetadataItem{}}, nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")

	// Delete: 202, the pool is deleting, then gone, and its agent exits.
	pids := s.poolAgentPIDs()
	if len(pids) != 1 || !poolProcessAlive(pids[0]) {
		t.Fatalf("agent pids before delete: %v", pids)
	}
	c, status = poolCapture(t)
	if _, err := s.Client.DeletePool(c, "life", nil); err != nil || status() != http.StatusAccepted {
		t.Fatalf("delete pool: %d %v", status(), err)
	}
	if r, err := s.Client.GetPool(ctx(t), "life", nil); err == nil {
		if *r.State != azbatch.PoolStateDeleting {
			t.Fatalf("pool is %s right after delete, want deleting", *r.State)
		}
		// A deleting pool refuses changes.
		_, err = s.Client.ResizePool(ctx(t), "life", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(3))}, nil)
		if err != nil && statusOf(err) != http.StatusConflict && statusOf(err) != http.StatusNotFound {
			t.Fatalf("resize of a deleting pool: %v", err)
		}
		if err == nil {
			t.Fatalf("resize of a deleting pool succeeded")
		}
	} else if statusOf(err) != http.StatusNotFound {
		t.Fatalf("get after delete: %v", err)
	}
	s.poolWaitGone(t, "life")
	ex, err = s.Client.PoolExists(ctx(t), "life", nil)
	if err != nil || ex.ETag != nil {
		t.Fatalf("exists after delete: %v %v", err, ex.ETag)
	}
	eventually(t, 15*time.Second, "the agent of the deleted pool to exit", func() error {
		if poolProcessAlive(pids[0]) {
			return fmt.Errorf("agent %d still runs", pids[0])
		}
		return nil
	})
	// The id can be used again.
	if _, err := s.Client.CreatePool(ctx(t), poolContent("life", 0, 1), nil); err != nil {
		t.Fatalf("create pool again: %v", err)
	}
}

// TestPoolAddValidation checks the 400 answers to invalid pools.
func TestPoolAddValidation(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	cases := []struct {
		name   string
		mutate func(*azbatch.CreatePoolContent)
		code   string
		prop   string
	}{
		{"no vmSize", func(c *azbatch.CreatePoolContent) { c.VMSize = nil }, "MissingRequiredProperty", "vmSize"},
		{"no id", func(c *azbatch.CreatePoolContent) { c.ID = nil }, "MissingRequiredProperty", "id"},
		{"negative target", func(c *azbatch.CreatePoolContent) { c.TargetDedicatedNodes = to(int32(-1)) }, "InvalidPropertyValue", "targetDedicatedNodes"},
		{"zero slots", func(c *azbatch.CreatePoolContent) { c.TaskSlotsPerNode = to(int32(0)) }, "InvalidPropertyValue", "taskSlotsPerNode"},
		{"bad id chars", func(c *azbatch.CreatePoolContent) { c.ID = to("bad pool!") }, "InvalidPropertyValue", "id"},
		{"id too long", func(c *azbatch.CreatePoolContent) { c.ID = to(strings.Repeat("x", 65)) }, "InvalidPropertyValue", "id"},
		{"short resize timeout", func(c *azbatch.CreatePoolContent) { c.ResizeTimeout = to("PT1M") }, "InvalidPropertyValue", "resizeTimeout"},
	}
	for _, tc := range cases {
		c := poolContent("valid", 0, 1)
		tc.mutate(&c)
		_, err := s.Client.CreatePool(ctx(t), c, nil)
		body := poolExpectError(t, err, http.StatusBadRequest, tc.code)
		if got := body.value("PropertyName"); got != tc.prop {
			t.Errorf("%s: PropertyName %q, want %q (values %+v)", tc.name, got, tc.prop, body.Values)
		}
		if body.Message.Lang != "en-US" || body.Message.Value == "" || !strings.Contains(body.Metadata, "$metadata#") {
			t.Errorf("%s: error body %+v", tc.name, body)
		}
	}
	// None of them was created.
	pager := s.Client.NewListPoolsPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Value) != 0 {
			t.Fatalf("invalid pools were created: %d", len(page.Value))
		}
	}

	// Resize and remove nodes validate too.
	if _, err := s.Client.CreatePool(ctx(t), poolContent("valid", 0, 1), nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client.ResizePool(ctx(t), "valid", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(-2))}, nil)
	body := poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	if body.value("PropertyName") != "targetDedicatedNodes" || body.value("PropertyValue") != "-2" {
		t.Fatalf("resize error values %+v", body.Values)
	}
	_, err = s.Client.ResizePool(ctx(t), "valid", azbatch.ResizePoolContent{
		TargetDedicatedNodes: to(int32(0)), NodeDeallocationOption: to(azbatch.NodeDeallocationOption("sometimes")),
	}, nil)
	if body := poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue"); body.value("PropertyName") != "nodeDeallocationOption" {
		t.Fatalf("resize error values %+v", body.Values)
	}
	_, err = s.Client.ResizePool(ctx(t), "nosuchpool", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(1))}, nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
	_, err = s.Client.RemoveNodes(ctx(t), "valid", azbatch.RemoveNodeContent{NodeList: []string{"tvmps_nosuchnode_d"}}, nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeNotFound")
	_, err = s.Client.RemoveNodes(ctx(t), "valid", azbatch.RemoveNodeContent{}, nil)
	if body := poolExpectError(t, err, http.StatusBadRequest, "MissingRequiredProperty"); body.value("PropertyName") != "nodeList" {
		t.Fatalf("remove nodes error values %+v", body.Values)
	}
}

// TestPoolList lists pools with $filter, $select and small pages.
func TestPoolList(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	ids := []string{"list-a", "list-b", "list-c", "other-1", "other-2"}
	for _, id := range ids {
		c := poolContent(id, 0, 1)
		c.Metadata = []azbatch.MetadataItem{{Name: to("group"), Value: to(strings.Split(id, "-")[0])}}
		if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
			t.Fatalf("create pool %s: %v", id, err)
		}
	}
	list := func(opts *azbatch.ListPoolsOptions) ([]azbatch.Pool, int) {
		t.Helper()
		var out []azbatch.Pool
		pages := 0
		pager := s.Client.NewListPoolsPager(opts)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatalf("list pools: %v", err)
			}
			pages++
			out = append(out, page.Value...)
		}
		return out, pages
	}
	idsOf := func(pools []azbatch.Pool) []string {
		var out []string
		for _, p := range pools {
			out = append(out, *p.ID)
		}
		return out
	}

	all, _ := list(nil)
	if got := idsOf(all); !slices.Equal(got, ids) {
		t.Fatalf("all pools %v, want %v", got, ids)
	}
	got, _ := list(&azbatch.ListPoolsOptions{Filter: to("id eq 'list-b'")})
	if ids := idsOf(got); !slices.Equal(ids, []string{"list-b"}) {
		t.Fatalf("id eq 'list-b': %v", ids)
	}
	got, _ = list(&azbatch.ListPoolsOptions{Filter: to("startswith(id,'list')")})
	if ids := idsOf(got); !slices.Equal(ids, []string{"list-a", "list-b", "list-c"}) {
		t.Fatalf("startswith(id,'list'): %v", ids)
	}
	got, _ = list(&azbatch.ListPoolsOptions{Filter: to("state eq 'active' and startswith(id, 'other')")})
	if ids := idsOf(got); !slices.Equal(ids, []string{"other-1", "other-2"}) {
		t.Fatalf("state and startswith: %v", ids)
	}
	got, _ = list(&azbatch.ListPoolsOptions{Filter: to("id eq 'none'")})
	if len(got) != 0 {
		t.Fatalf("id eq 'none': %v", idsOf(got))
	}

	// $select keeps only the properties asked for.
	got, _ = list(&azbatch.ListPoolsOptions{SelectParam: []string{"id", "state"}, Filter: to("startswith(id,'other')")})
	if len(got) != 2 {
		t.Fatalf("select: %d pools", len(got))
	}
	for _, p := range got {
		if p.ID == nil || p.State == nil || p.VMSize != nil || p.ETag != nil || p.Metadata != nil || p.TargetDedicatedNodes != nil {
			t.Fatalf("select id,state returned %+v", p)
		}
	}
	if r, err := s.Client.GetPool(ctx(t), "list-a", &azbatch.GetPoolOptions{SelectParam: []string{"id", "metadata"}}); err != nil ||
		*r.ID != "list-a" || len(r.Metadata) != 1 || r.State != nil || r.VMSize != nil {
		t.Fatalf("get with select: %v %+v", err, r.Pool)
	}

	// Paging: 2 per page is 3 pages, followed through odata.nextLink.
	got, pages := list(&azbatch.ListPoolsOptions{MaxResults: to(int32(2))})
	if ids := idsOf(got); !slices.Equal(ids, []string{"list-a", "list-b", "list-c", "other-1", "other-2"}) || pages != 3 {
		t.Fatalf("paged list: %v in %d pages", ids, pages)
	}
	got, pages = list(&azbatch.ListPoolsOptions{MaxResults: to(int32(1)), Filter: to("startswith(id,'list')"), SelectParam: []string{"id"}})
	if ids := idsOf(got); !slices.Equal(ids, []string{"list-a", "list-b", "list-c"}) || pages < 3 {
		t.Fatalf("paged filtered list: %v in %d pages", ids, pages)
	}
	for _, p := range got {
		if p.State != nil {
			t.Fatalf("select lost on a next page: %+v", p)
		}
	}

	// Bad query options.
	pager := s.Client.NewListPoolsPager(&azbatch.ListPoolsOptions{Filter: to("id eq")})
	_, err := pager.NextPage(ctx(t))
	poolExpectError(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
	pager = s.Client.NewListPoolsPager(&azbatch.ListPoolsOptions{MaxResults: to(int32(5000))})
	_, err = pager.NextPage(ctx(t))
	poolExpectError(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
}

// TestPoolResizeUpDown grows a pool, shrinks it, removes a named node and
// stops a resize.
func TestPoolResizeUpDown(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "rs", 1, 1, nil)
	first := s.poolNodeIDs(t, "rs")[0]

	c, status := poolCapture(t)
	if _, err := s.Client.ResizePool(c, "rs", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(3))}, nil); err != nil || status() != http.StatusAccepted {
		t.Fatalf("resize up: %d %v", status(), err)
	}
	if p := s.poolGet(t, "rs"); *p.TargetDedicatedNodes != 3 {
		t.Fatalf("target after resize %d", *p.TargetDedicatedNodes)
	}
	s.poolWaitSteady(t, "rs", 3)
	nodes := s.poolNodeIDs(t, "rs")
	if !slices.Contains(nodes, first) {
		t.Fatalf("growing lost the first node: %v", nodes)
	}

	// Remove a named node: it leaves, the target goes down by one.
	victim := nodes[1]
	c, status = poolCapture(t)
	if _, err := s.Client.RemoveNodes(c, "rs", azbatch.RemoveNodeContent{NodeList: []string{victim}}, nil); err != nil || status() != http.StatusAccepted {
		t.Fatalf("remove nodes: %d %v", status(), err)
	}
	if p := s.poolGet(t, "rs"); *p.TargetDedicatedNodes != 2 {
		t.Fatalf("target after remove %d", *p.TargetDedicatedNodes)
	}
	s.poolWaitSteady(t, "rs", 2)
	if left := s.poolNodeIDs(t, "rs"); slices.Contains(left, victim) || len(left) != 2 {
		t.Fatalf("nodes after removing %s: %v", victim, left)
	}
	_, err := s.Client.GetNode(ctx(t), "rs", victim, nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeNotFound")

	// Shrink to zero.
	if _, err := s.Client.ResizePool(ctx(t), "rs", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(0))}, nil); err != nil {
		t.Fatalf("resize down: %v", err)
	}
	s.poolWaitSteady(t, "rs", 0)

	// Stop resize on a steady pool changes nothing.
	c, status = poolCapture(t)
	if _, err := s.Client.StopPoolResize(c, "rs", nil); err != nil || status() != http.StatusAccepted {
		t.Fatalf("stop resize: %d %v", status(), err)
	}
	if p := s.poolGet(t, "rs"); *p.AllocationState != azbatch.AllocationStateSteady || *p.TargetDedicatedNodes != 0 {
		t.Fatalf("after stop resize: %s target %d", *p.AllocationState, *p.TargetDedicatedNodes)
	}
	_, err = s.Client.StopPoolResize(ctx(t), "nosuchpool", nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
}

// poolTwoBusyNodes creates a pool of two one-slot nodes and a job with two
// `sleep` tasks, and waits until both run (one per node).
func poolTwoBusyNodes(t *testing.T, s *Server, poolID string, sleep int) {
	t.Helper()
	s.CreatePool(t, poolID, 2, 1, nil)
	s.CreateJob(t, poolID+"-job", poolID, nil)
	s.AddTasks(t, poolID+"-job", []azbatch.CreateTaskContent{
		{ID: to("t1"), CommandLine: to(fmt.Sprintf("/bin/sh -c 'sleep %d'", sleep))},
		{ID: to("t2"), CommandLine: to(fmt.Sprintf("/bin/sh -c 'sleep %d'", sleep))},
	})
	s.poolWaitTask(t, poolID+"-job", "t1", "running", poolTaskState(azbatch.TaskStateRunning))
	s.poolWaitTask(t, poolID+"-job", "t2", "running", poolTaskState(azbatch.TaskStateRunning))
}

// TestPoolResizeDownRequeue shrinks a busy pool with requeue: the task of
// the removed node goes back to active and then completes on the other.
func TestPoolResizeDownRequeue(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	poolTwoBusyNodes(t, s, "rq", 2)
	job := "rq-job"
	if _, err := s.Client.ResizePool(ctx(t), "rq", azbatch.ResizePoolContent{
		TargetDedicatedNodes: to(int32(1)), NodeDeallocationOption: to(azbatch.NodeDeallocationOptionRequeue),
	}, nil); err != nil {
		t.Fatalf("resize: %v", err)
	}
	// One task was requeued: it is active while the other still runs.
	var requeued string
	eventually(t, 10*time.Second, "a task back to active", func() error {
		for _, id := range []string{"t1", "t2"} {
			task := s.poolTask(t, job, id)
			if *task.State == azbatch.TaskStateActive {
				requeued = id
				return nil
			}
		}
		return fmt.Errorf("no active task")
	})
	counts := s.WaitJobTasks(t, job, 60*time.Second)
	if c := counts.TaskCounts; *c.Succeeded != 2 || *c.Failed != 0 {
		t.Fatalf("counts: succeeded %d failed %d", *c.Succeeded, *c.Failed)
	}
	s.poolWaitSteady(t, "rq", 1)
	remaining := s.poolNodeIDs(t, "rq")[0]
	task := s.poolTask(t, job, requeued)
	if *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.RetryCount != 0 || *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("requeued task: requeueCount %d retryCount %d exit %d", *task.ExecutionInfo.RequeueCount, *task.ExecutionInfo.RetryCount, *task.ExecutionInfo.ExitCode)
	}
	if *task.NodeInfo.NodeID != remaining {
		t.Fatalf("requeued task ran on %s, the remaining node is %s", *task.NodeInfo.NodeID, remaining)
	}
}

// TestPoolResizeDownTerminate shrinks a busy pool with terminate: the task
// of the removed node completes with a failure.
func TestPoolResizeDownTerminate(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	poolTwoBusyNodes(t, s, "tm", 2)
	job := "tm-job"
	if _, err := s.Client.ResizePool(ctx(t), "tm", azbatch.ResizePoolContent{
		TargetDedicatedNodes: to(int32(1)), NodeDeallocationOption: to(azbatch.NodeDeallocationOptionTerminate),
	}, nil); err != nil {
		t.Fatalf("resize: %v", err)
	}
	counts := s.WaitJobTasks(t, job, 60*time.Second)
	if c := counts.TaskCounts; *c.Completed != 2 || *c.Succeeded != 1 || *c.Failed != 1 {
		t.Fatalf("counts: completed %d succeeded %d failed %d", *c.Completed, *c.Succeeded, *c.Failed)
	}
	failed := 0
	for _, id := range []string{"t1", "t2"} {
		task := s.poolTask(t, job, id)
		ei := task.ExecutionInfo
		if *task.State != azbatch.TaskStateCompleted {
			t.Fatalf("task %s is %s", id, *task.State)
		}
		if *ei.Result == azbatch.TaskExecutionResultFailure {
			failed++
			if ei.FailureInfo == nil || ei.FailureInfo.Code == nil || *ei.FailureInfo.Code == "" || ei.FailureInfo.Category == nil {
				t.Fatalf("terminated task %s failureInfo %+v", id, ei.FailureInfo)
			}
			if *ei.RequeueCount != 0 {
				t.Fatalf("terminated task %s was requeued", id)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d tasks failed, want 1", failed)
	}
	s.poolWaitSteady(t, "tm", 1)
}

// TestPoolResizeDownTaskCompletion shrinks a busy pool with taskcompletion:
// the tasks finish, then the node leaves; the pool refuses another resize
// meanwhile, and stop resize keeps the nodes not already leaving.
func TestPoolResizeDownTaskCompletion(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	poolTwoBusyNodes(t, s, "tc", 3)
	job := "tc-job"
	if _, err := s.Client.ResizePool(ctx(t), "tc", azbatch.ResizePoolContent{
		TargetDedicatedNodes: to(int32(1)), NodeDeallocationOption: to(azbatch.NodeDeallocationOptionTaskCompletion),
	}, nil); err != nil {
		t.Fatalf("resize: %v", err)
	}
	p := s.poolGet(t, "tc")
	if *p.AllocationState != azbatch.AllocationStateResizing || *p.CurrentDedicatedNodes != 2 || *p.TargetDedicatedNodes != 1 {
		t.Fatalf("while the tasks run: %s current %d target %d", *p.AllocationState, *p.CurrentDedicatedNodes, *p.TargetDedicatedNodes)
	}
	nodes, err := s.ListNodes(t, "tc")
	if err != nil {
		t.Fatal(err)
	}
	leaving := 0
	for _, n := range nodes {
		if *n.State == azbatch.NodeStateLeavingPool {
			leaving++
		}
	}
	if leaving != 1 {
		t.Fatalf("%d nodes leaving, want 1", leaving)
	}

	// Resizing a resizing pool: 409; remove nodes too.
	_, err = s.Client.ResizePool(ctx(t), "tc", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(2))}, nil)
	poolExpectError(t, err, http.StatusConflict, "PoolBeingResized")
	_, err = s.Client.RemoveNodes(ctx(t), "tc", azbatch.RemoveNodeContent{NodeList: []string{*nodes[0].ID}}, nil)
	poolExpectError(t, err, http.StatusConflict, "PoolBeingResized")

	// Stop resize: the target is the nodes not leaving.
	if _, err := s.Client.StopPoolResize(ctx(t), "tc", nil); err != nil {
		t.Fatalf("stop resize: %v", err)
	}
	if p := s.poolGet(t, "tc"); *p.TargetDedicatedNodes != 1 {
		t.Fatalf("target after stop resize: %d", *p.TargetDedicatedNodes)
	}

	counts := s.WaitJobTasks(t, job, 60*time.Second)
	if c := counts.TaskCounts; *c.Succeeded != 2 || *c.Failed != 0 {
		t.Fatalf("counts: succeeded %d failed %d", *c.Succeeded, *c.Failed)
	}
	for _, id := range []string{"t1", "t2"} {
		if task := s.poolTask(t, job, id); *task.ExecutionInfo.RequeueCount != 0 {
			t.Fatalf("task %s was requeued", id)
		}
	}
	s.poolWaitSteady(t, "tc", 1)
}

// TestPoolDeleteBusy deletes a pool while a task runs: the task goes back
// to active, the pool goes away, and neither the agent nor the task's
// process outlive it.
func TestPoolDeleteBusy(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "busy", 1, 1, nil)
	nodeID := s.poolNodeIDs(t, "busy")[0]
	s.CreateJob(t, "busyjob", "busy", nil)
	s.AddTasks(t, "busyjob", []azbatch.CreateTaskContent{{
		ID:          to("long"),
		CommandLine: to(`/bin/sh -c 'echo $$ > "$AZ_BATCH_NODE_SHARED_DIR/task.pid"; exec sleep 30'`),
	}})
	s.poolWaitTask(t, "busyjob", "long", "running", poolTaskState(azbatch.TaskStateRunning))
	var taskPID int
	eventually(t, 10*time.Second, "the task's pid file", func() error {
		b, err := os.ReadFile(filepath.Join(s.DataDir, "nodes", nodeID, "shared", "task.pid"))
		if err != nil {
			return err
		}
		taskPID, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	agents := s.poolAgentPIDs()
	if len(agents) != 1 || !poolProcessAlive(taskPID) || !slices.Equal(s.poolLiveAgents(), agents) {
		t.Fatalf("agents %v (live %v), task process %d alive %v", agents, s.poolLiveAgents(), taskPID, poolProcessAlive(taskPID))
	}

	if _, err := s.Client.DeletePool(ctx(t), "busy", nil); err != nil {
		t.Fatalf("delete pool: %v", err)
	}
	s.poolWaitGone(t, "busy")
	task := s.poolWaitTask(t, "busyjob", "long", "requeued", poolTaskState(azbatch.TaskStateActive))
	if task.ExecutionInfo == nil || *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.RetryCount != 0 {
		t.Fatalf("task after its pool was deleted: %+v", task.ExecutionInfo)
	}
	eventually(t, 15*time.Second, "the agent and the task process to exit", func() error {
		for _, pid := range append(append(agents, taskPID), s.poolLiveAgents()...) {
			if poolProcessAlive(pid) {
				return fmt.Errorf("process %d still runs", pid)
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "the node directory to be removed", func() error {
		if _, err := os.Stat(filepath.Join(s.DataDir, "nodes", nodeID)); !os.IsNotExist(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	// Nodes of the deleted pool are gone too.
	_, err := s.Client.GetNode(ctx(t), "busy", nodeID, nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
	_, err = s.ListNodes(t, "busy")
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
}

// TestPoolDeleteRightAway deletes a pool (and shrinks another) before its
// nodes had time to start: no agent process may survive.
func TestPoolDeleteRightAway(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	if _, err := s.Client.CreatePool(ctx(t), poolContent("quick", 2, 1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.DeletePool(ctx(t), "quick", nil); err != nil {
		t.Fatalf("delete pool: %v", err)
	}
	if _, err := s.Client.CreatePool(ctx(t), poolContent("shrink", 2, 1), nil); err != nil {
		t.Fatal(err)
	}
	// While its nodes are still being allocated the pool is resizing, and
	// a new resize is refused as Azure refuses it.
	_, err := s.Client.ResizePool(ctx(t), "shrink", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(0))}, nil)
	if batchCode(err) != "PoolBeingResized" || statusOf(err) != http.StatusConflict {
		t.Fatalf("resize during allocation: %v", err)
	}
	s.poolWaitSteady(t, "shrink", 2)
	if _, err := s.Client.ResizePool(ctx(t), "shrink", azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(0))}, nil); err != nil {
		t.Fatalf("resize: %v", err)
	}
	s.poolWaitGone(t, "quick")
	s.poolWaitSteady(t, "shrink", 0)
	// Give late starts time to show up, then none may run.
	time.Sleep(2 * time.Second)
	eventually(t, 10*time.Second, "no agent processes", func() error {
		if pids := s.poolLiveAgents(); len(pids) > 0 {
			return fmt.Errorf("agents still running: %v", pids)
		}
		return nil
	})
}
