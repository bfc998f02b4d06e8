package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

// scheduleOps accepts every job schedule operation and records it; the
// schedule "missing" does not exist.
type scheduleOps struct{ *writeOps }

func missing(id string) error {
	if id == "missing" {
		return batch.NotFound("JobScheduleNotFound", "job schedule", id)
	}
	return nil
}

func (o scheduleOps) JobScheduleAdd(_ context.Context, _ string, c *azbatch.CreateJobScheduleContent) (service.Object, error) {
	return o.rec("JobScheduleAdd")
}
func (o scheduleOps) JobScheduleGet(_ context.Context, _, id string, _ service.Conditions) (service.Object, error) {
	if err := missing(id); err != nil {
		return service.Object{}, err
	}
	return o.rec("JobScheduleGet")
}
func (o scheduleOps) JobScheduleList(context.Context, string, service.ListParams) (service.ListPage, error) {
	obj, err := o.rec("JobScheduleList")
	return service.ListPage{Items: []service.Object{obj}, Next: "x"}, err
}
func (o scheduleOps) JobScheduleDelete(context.Context, string, string, service.Conditions) error {
	_, err := o.rec("JobScheduleDelete")
	return err
}
func (o scheduleOps) JobSchedulePatch(context.Context, string, string, *azbatch.UpdateJobScheduleContent, service.Conditions) (service.Object, error) {
	return o.rec("JobSchedulePatch")
}
func (o scheduleOps) JobScheduleReplace(context.Context, string, string, *azbatch.JobSchedule, service.Conditions) (service.Object, error) {
	return o.rec("JobScheduleReplace")
}
func (o scheduleOps) JobScheduleDisable(context.Context, string, string, service.Conditions) (service.Object, error) {
	return o.rec("JobScheduleDisable")
}
func (o scheduleOps) JobScheduleEnable(context.Context, string, string, service.Conditions) (service.Object, error) {
	return o.rec("JobScheduleEnable")
}
func (o scheduleOps) JobScheduleTerminate(context.Context, string, string, service.Conditions) (service.Object, error) {
	return o.rec("JobScheduleTerminate")
}
func (o scheduleOps) JobListFromSchedule(_ context.Context, _, id string, _ service.ListParams) (service.ListPage, error) {
	if err := missing(id); err != nil {
		return service.ListPage{}, err
	}
	obj, err := o.rec("JobListFromSchedule")
	return service.ListPage{Items: []service.Object{obj}}, err
}

// TestServer_JobScheduleStatuses checks each job schedule route against the
// spec's status, headers and body (the Go SDK refuses any other status).
func TestServer_JobScheduleStatuses(t *testing.T) {
	t.Parallel()
	ops := scheduleOps{&writeOps{fakeOps: &fakeOps{}}}
	b := setupWithOps(t, ops)

	tests := []struct {
		op, method, path, body string
		status                 int
		etag, json             bool
		metadata               string
	}{
		{"JobScheduleAdd", "POST", "/jobschedules", `{"id":"s1","schedule":{},"jobSpecification":{"poolInfo":{"poolId":"p1"}}}`, 201, true, false, ""},
		{"JobScheduleGet", "GET", "/jobschedules/s1", "", 200, true, true, "jobschedules/@Element"},
		{"JobScheduleGet", "HEAD", "/jobschedules/s1", "", 200, true, false, ""},
		{"JobScheduleList", "GET", "/jobschedules", "", 200, false, true, "jobschedules"},
		{"JobScheduleDelete", "DELETE", "/jobschedules/s1?force=true", "", 202, false, false, ""},
		{"JobSchedulePatch", "PATCH", "/jobschedules/s1", `{"metadata":[]}`, 200, true, false, ""},
		{"JobScheduleReplace", "PUT", "/jobschedules/s1", `{"schedule":{},"jobSpecification":{"poolInfo":{"poolId":"p1"}}}`, 200, true, false, ""},
		{"JobScheduleDisable", "POST", "/jobschedules/s1/disable", "", 204, true, false, ""},
		{"JobScheduleEnable", "POST", "/jobschedules/s1/enable", "", 204, true, false, ""},
		{"JobScheduleTerminate", "POST", "/jobschedules/s1/terminate", "", 202, true, false, ""},
		{"JobListFromSchedule", "GET", "/jobschedules/s1/jobs", "", 200, false, true, "jobs"},
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
		resp, got := b.do(t, b.request(t, tt.method, tt.path+sep+"api-version="+apiVersion, body))
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.status, got)
			continue
		}
		if len(ops.calls) != 1 || ops.calls[0] != tt.op {
			t.Errorf("%s %s: calls %v, want %s", tt.method, tt.path, ops.calls, tt.op)
		}
		if tt.etag != (resp.Header.Get("ETag") == "0xE") {
			t.Errorf("%s %s: ETag %q", tt.method, tt.path, resp.Header.Get("ETag"))
		}
		if tt.json != (len(got) > 0) {
			t.Errorf("%s %s: body %q", tt.method, tt.path, got)
		}
		if tt.metadata != "" && !contains(string(got), `"odata.metadata":"`+b.srv.URL+`/$metadata#`+tt.metadata+`"`) {
			t.Errorf("%s %s: body %s, want metadata #%s", tt.method, tt.path, got, tt.metadata)
		}
	}

	// Add answers Location and DataServiceId of the new schedule.
	resp, _ := b.do(t, b.request(t, "POST", "/jobschedules?api-version="+apiVersion, []byte(`{"id":"s1","jobSpecification":{"poolInfo":{"poolId":"p1"}}}`)))
	if want := b.srv.URL + "/jobschedules/s1"; resp.Header.Get("Location") != want || resp.Header.Get("DataServiceId") != want {
		t.Errorf("Location %q DataServiceId %q", resp.Header.Get("Location"), resp.Header.Get("DataServiceId"))
	}
	// Lists page with an absolute next link.
	_, got := b.do(t, b.request(t, "GET", "/jobschedules?api-version="+apiVersion+"&maxresults=1", nil))
	if !contains(string(got), `"odata.nextLink":"`+b.srv.URL+`/jobschedules?api-version=`) {
		t.Errorf("list body %s", got)
	}
	// Missing schedules: 404 with Azure's code, no body for HEAD.
	resp, got = b.do(t, b.request(t, "GET", "/jobschedules/missing?api-version="+apiVersion, nil))
	wantError(t, resp, got, 404, "JobScheduleNotFound")
	resp, got = b.do(t, b.request(t, "GET", "/jobschedules/missing/jobs?api-version="+apiVersion, nil))
	wantError(t, resp, got, 404, "JobScheduleNotFound")
	resp, got = b.do(t, b.request(t, "HEAD", "/jobschedules/missing?api-version="+apiVersion, nil))
	if resp.StatusCode != http.StatusNotFound || len(got) != 0 {
		t.Errorf("HEAD missing: %d %q", resp.StatusCode, got)
	}
	// Bodies are required where the spec requires them.
	resp, got = b.do(t, b.request(t, "POST", "/jobschedules?api-version="+apiVersion, nil))
	wantError(t, resp, got, 400, "InvalidRequestBody")
	resp, got = b.do(t, b.request(t, "POST", "/jobschedules/s1/terminate?force=maybe&api-version="+apiVersion, nil))
	wantError(t, resp, got, 400, "InvalidQueryParameterValue", "QueryParameterName", "force")
}
