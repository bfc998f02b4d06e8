package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

func TestTask_AddWithSDK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.taskAdd = func(account, jobID string, c *azbatch.CreateTaskContent) (service.Object, error) {
		if jobID != "job 1" || *c.ID != "t1" || *c.CommandLine != "echo hi" {
			t.Errorf("TaskAdd(%q, %+v)", jobID, c)
		}
		return service.Object{ETag: "0x8DC1", LastModified: lastModified}, nil
	}
	resp, err := b.client.CreateTask(context.Background(), "job 1", azbatch.CreateTaskContent{
		ID: ptr("t1"), CommandLine: ptr("echo hi"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ETag == nil || *resp.ETag != "0x8DC1" || resp.LastModified == nil ||
		resp.DataServiceID == nil || *resp.DataServiceID != b.srv.URL+"/jobs/job%201/tasks/t1" {
		t.Errorf("response %+v", resp)
	}
}

func TestTask_AddCollection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.taskAddCollection = func(_, jobID string, tasks []azbatch.CreateTaskContent) ([]azbatch.TaskAddResult, error) {
		var out []azbatch.TaskAddResult
		for i, tk := range tasks {
			r := azbatch.TaskAddResult{TaskID: tk.ID, Status: ptr(azbatch.TaskAddStatusSuccess)}
			if i == 1 {
				r.Status = ptr(azbatch.TaskAddStatusClientError)
				r.Error = &azbatch.Error{Code: ptr("TaskExists"), Message: &azbatch.ErrorMessage{Value: ptr("The specified task already exists.")}}
			}
			out = append(out, r)
		}
		return out, nil
	}
	group := func(n int) azbatch.TaskGroup {
		var g azbatch.TaskGroup
		for i := range n {
			g.Value = append(g.Value, azbatch.CreateTaskContent{ID: ptr(fmt.Sprintf("t%d", i)), CommandLine: ptr("true")})
		}
		return g
	}
	resp, err := b.client.CreateTaskCollection(context.Background(), "job1", group(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Value) != 3 || *resp.Value[1].Status != azbatch.TaskAddStatusClientError || *resp.Value[1].Error.Code != "TaskExists" {
		t.Errorf("results %+v", resp.Value)
	}

	_, err = b.client.CreateTaskCollection(context.Background(), "job1", group(101), nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 413 || re.ErrorCode != "RequestBodyTooLarge" {
		t.Fatalf("101 tasks: %v", err)
	}
	raw, body := b.do(t, b.request(t, "POST", "/jobs/job1/addtaskcollection?api-version="+apiVersion, []byte(`{"value":[]}`)))
	wantError(t, raw, body, 400, "InvalidPropertyValue", "PropertyName", "value")
	raw, body = b.do(t, b.request(t, "POST", "/jobs/job1/addtaskcollection?api-version="+apiVersion, []byte(`{}`)))
	wantError(t, raw, body, 400, "MissingRequiredProperty", "PropertyName", "value")

	raw, body = b.do(t, b.request(t, "POST", "/jobs/job1/addtaskcollection?api-version="+apiVersion,
		[]byte(`{"value":[{"id":"a","commandLine":"true"}]}`)))
	if raw.StatusCode != 200 || !strings.HasPrefix(string(body), `{"odata.metadata":"`+b.srv.URL+`/$metadata#taskaddresult","value":[{`) {
		t.Errorf("raw answer %d %s", raw.StatusCode, body)
	}
}

func TestJob_TaskCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.jobTaskCounts = func(_, jobID string) (service.TaskCounts, error) {
		if jobID != "missing" {
			return service.TaskCounts{
				TaskCounts:     &azbatch.TaskCounts{Active: ptr(int32(1)), Running: ptr(int32(2)), Completed: ptr(int32(3)), Succeeded: ptr(int32(3)), Failed: ptr(int32(0))},
				TaskSlotCounts: &azbatch.TaskSlotCounts{Active: ptr(int32(1)), Running: ptr(int32(2)), Completed: ptr(int32(3)), Succeeded: ptr(int32(3)), Failed: ptr(int32(0))},
			}, nil
		}
		return service.TaskCounts{}, batch.ErrJobNotFound
	}
	resp, err := b.client.GetJobTaskCounts(context.Background(), "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *resp.TaskCounts.Running != 2 || *resp.TaskSlotCounts.Completed != 3 {
		t.Errorf("counts %+v", resp.TaskCountsResult)
	}
	raw, body := b.do(t, b.request(t, "GET", "/jobs/job1/taskcounts?api-version="+apiVersion, nil))
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || raw.StatusCode != http.StatusOK || m["odata.metadata"] != b.srv.URL+"/$metadata#taskcounts/@Element" {
		t.Errorf("raw %d %s", raw.StatusCode, body)
	}
	raw, body = b.do(t, b.request(t, "GET", "/jobs/missing/taskcounts?api-version="+apiVersion, nil))
	wantError(t, raw, body, 404, "JobNotFound")
}
