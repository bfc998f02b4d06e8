package api_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/service"
)

// writeOps accepts every write and records the operation.
type writeOps struct {
	*fakeOps
	mu    sync.Mutex
	calls []string
}

var written = service.Object{Doc: []byte(`{"id":"x"}`), ETag: "0xE", LastModified: lastModified}

func (w *writeOps) rec(op string) (service.Object, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, op)
	return written, nil
}

func (w *writeOps) PoolDelete(context.Context, string, string, service.Conditions) error {
	_, err := w.rec("PoolDelete")
	return err
}
func (w *writeOps) PoolReplace(context.Context, string, string, *azbatch.ReplacePoolContent, service.Conditions) (service.Object, error) {
	return w.rec("PoolReplace")
}
func (w *writeOps) PoolResize(context.Context, string, string, *azbatch.ResizePoolContent, service.Conditions) (service.Object, error) {
	return w.rec("PoolResize")
}
func (w *writeOps) PoolStopResize(context.Context, string, string, service.Conditions) (service.Object, error) {
	return w.rec("PoolStopResize")
}
func (w *writeOps) PoolRemoveNodes(context.Context, string, string, *azbatch.RemoveNodeContent, service.Conditions) (service.Object, error) {
	return w.rec("PoolRemoveNodes")
}
func (w *writeOps) NodeGet(context.Context, string, string, string) (service.Object, error) {
	return w.rec("NodeGet")
}
func (w *writeOps) NodeList(context.Context, string, string, service.ListParams) (service.ListPage, error) {
	o, err := w.rec("NodeList")
	return service.ListPage{Items: []service.Object{o}}, err
}
func (w *writeOps) NodeReboot(context.Context, string, string, string, *azbatch.RebootNodeContent) error {
	_, err := w.rec("NodeReboot")
	return err
}
func (w *writeOps) NodeDisableScheduling(context.Context, string, string, string, *azbatch.DisableNodeSchedulingContent) error {
	_, err := w.rec("NodeDisableScheduling")
	return err
}
func (w *writeOps) NodeEnableScheduling(context.Context, string, string, string) error {
	_, err := w.rec("NodeEnableScheduling")
	return err
}
func (w *writeOps) JobAdd(context.Context, string, *azbatch.CreateJobContent) (service.Object, error) {
	return w.rec("JobAdd")
}
func (w *writeOps) JobGet(context.Context, string, string, service.Conditions) (service.Object, error) {
	return w.rec("JobGet")
}
func (w *writeOps) JobList(context.Context, string, service.ListParams) (service.ListPage, error) {
	o, err := w.rec("JobList")
	return service.ListPage{Items: []service.Object{o}}, err
}
func (w *writeOps) JobDelete(context.Context, string, string, service.Conditions) error {
	_, err := w.rec("JobDelete")
	return err
}
func (w *writeOps) JobPatch(context.Context, string, string, *azbatch.UpdateJobContent, service.Conditions) (service.Object, error) {
	return w.rec("JobPatch")
}
func (w *writeOps) JobReplace(context.Context, string, string, *azbatch.Job, service.Conditions) (service.Object, error) {
	return w.rec("JobReplace")
}
func (w *writeOps) JobDisable(context.Context, string, string, *azbatch.DisableJobContent, service.Conditions) (service.Object, error) {
	return w.rec("JobDisable")
}
func (w *writeOps) JobEnable(context.Context, string, string, service.Conditions) (service.Object, error) {
	return w.rec("JobEnable")
}
func (w *writeOps) JobTerminate(context.Context, string, string, *azbatch.TerminateJobContent, service.Conditions) (service.Object, error) {
	return w.rec("JobTerminate")
}
func (w *writeOps) TaskGet(context.Context, string, string, string, service.Conditions) (service.Object, error) {
	return w.rec("TaskGet")
}
func (w *writeOps) TaskList(context.Context, string, string, service.ListParams) (service.ListPage, error) {
	o, err := w.rec("TaskList")
	return service.ListPage{Items: []service.Object{o}}, err
}
func (w *writeOps) TaskReplace(context.Context, string, string, string, *azbatch.Task, service.Conditions) (service.Object, error) {
	return w.rec("TaskReplace")
}
func (w *writeOps) TaskDelete(context.Context, string, string, string, service.Conditions) error {
	_, err := w.rec("TaskDelete")
	return err
}
func (w *writeOps) TaskTerminate(context.Context, string, string, string, service.Conditions) (service.Object, error) {
	return w.rec("TaskTerminate")
}
func (w *writeOps) TaskReactivate(context.Context, string, string, string, service.Conditions) (service.Object, error) {
	return w.rec("TaskReactivate")
}

// TestServer_Statuses checks the status, body and headers of every
// remaining operation against the spec.
func TestServer_Statuses(t *testing.T) {
	t.Parallel()
	ops := &writeOps{fakeOps: &fakeOps{}}
	b2 := setupWithOps(t, ops)

	tests := []struct {
		op, method, path, body string
		status                 int
		etag, json             bool
		metadata               string
	}{
		{"PoolDelete", "DELETE", "/pools/p1", "", 202, false, false, ""},
		{"PoolReplace", "POST", "/pools/p1/updateproperties", `{"startTask":{"commandLine":"x"},"applicationPackageReferences":[],"metadata":[]}`, 204, true, false, ""},
		{"PoolResize", "POST", "/pools/p1/resize", `{"targetDedicatedNodes":3}`, 202, true, false, ""},
		{"PoolStopResize", "POST", "/pools/p1/stopresize", "", 202, true, false, ""},
		{"PoolRemoveNodes", "POST", "/pools/p1/removenodes", `{"nodeList":["n1"]}`, 202, true, false, ""},
		{"NodeGet", "GET", "/pools/p1/nodes/n1", "", 200, true, true, "nodes/@Element"},
		{"NodeList", "GET", "/pools/p1/nodes", "", 200, false, true, "nodes"},
		{"NodeReboot", "POST", "/pools/p1/nodes/n1/reboot", "", 202, false, false, ""},
		{"NodeReboot", "POST", "/pools/p1/nodes/n1/reboot", `{"nodeRebootOption":"requeue"}`, 202, false, false, ""},
		{"NodeDisableScheduling", "POST", "/pools/p1/nodes/n1/disablescheduling", `{"nodeDisableSchedulingOption":"taskcompletion"}`, 200, false, false, ""},
		{"NodeEnableScheduling", "POST", "/pools/p1/nodes/n1/enablescheduling", "", 200, false, false, ""},
		{"JobAdd", "POST", "/jobs", `{"id":"j1","poolInfo":{"poolId":"p1"}}`, 201, true, false, ""},
		{"JobGet", "GET", "/jobs/j1", "", 200, true, true, "jobs/@Element"},
		{"JobList", "GET", "/jobs", "", 200, false, true, "jobs"},
		{"JobDelete", "DELETE", "/jobs/j1?force=true", "", 202, false, false, ""},
		{"JobPatch", "PATCH", "/jobs/j1", `{"priority":10}`, 200, true, false, ""},
		{"JobReplace", "PUT", "/jobs/j1", `{"poolInfo":{"poolId":"p1"}}`, 200, true, false, ""},
		{"JobDisable", "POST", "/jobs/j1/disable", `{"disableTasks":"requeue"}`, 202, true, false, ""},
		{"JobEnable", "POST", "/jobs/j1/enable", "", 202, true, false, ""},
		{"JobTerminate", "POST", "/jobs/j1/terminate", "", 202, true, false, ""},
		{"JobTerminate", "POST", "/jobs/j1/terminate", `{"terminateReason":"done"}`, 202, true, false, ""},
		{"TaskGet", "GET", "/jobs/j1/tasks/t1", "", 200, true, true, "tasks/@Element"},
		{"TaskList", "GET", "/jobs/j1/tasks", "", 200, false, true, "tasks"},
		{"TaskReplace", "PUT", "/jobs/j1/tasks/t1", `{"constraints":{"maxTaskRetryCount":2}}`, 200, true, false, ""},
		{"TaskDelete", "DELETE", "/jobs/j1/tasks/t1", "", 200, false, false, ""},
		{"TaskTerminate", "POST", "/jobs/j1/tasks/t1/terminate", "", 204, true, false, ""},
		{"TaskReactivate", "POST", "/jobs/j1/tasks/t1/reactivate", "", 204, true, false, ""},
	}
	for _, tt := range tests {
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		sep := "?"
		if containsQuery(tt.path) {
			sep = "&"
		}
		ops.calls = nil
		resp, got := b2.do(t, b2.request(t, tt.method, tt.path+sep+"api-version="+apiVersion, body))
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.status, got)
			continue
		}
		if len(ops.calls) != 1 || ops.calls[0] != tt.op {
			t.Errorf("%s %s: calls %v, want %s", tt.method, tt.path, ops.calls, tt.op)
		}
		if tt.etag != (resp.Header.Get("ETag") == "0xE") || tt.etag != (resp.Header.Get("Last-Modified") == lastModified.Format(http.TimeFormat)) {
			t.Errorf("%s %s: ETag %q Last-Modified %q", tt.method, tt.path, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
		}
		if tt.json != (len(got) > 0) {
			t.Errorf("%s %s: body %q", tt.method, tt.path, got)
		}
		if tt.metadata != "" && !contains(string(got), `"odata.metadata":"`+b2.srv.URL+`/$metadata#`+tt.metadata+`"`) {
			t.Errorf("%s %s: body %s, want metadata #%s", tt.method, tt.path, got, tt.metadata)
		}
	}

	// A required body is required.
	resp, got := b2.do(t, b2.request(t, "POST", "/jobs/j1/disable?api-version="+apiVersion, nil))
	wantError(t, resp, got, 400, "InvalidRequestBody")
	resp, got = b2.do(t, b2.request(t, "DELETE", "/jobs/j1?force=maybe&api-version="+apiVersion, nil))
	wantError(t, resp, got, 400, "InvalidQueryParameterValue", "QueryParameterName", "force")
}
