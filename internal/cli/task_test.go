package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

func TestParseTaskJSON(t *testing.T) {
	t.Parallel()

	t.Run("SingleObject", func(t *testing.T) {
		t.Parallel()
		tasks, many, err := parseTaskJSON([]byte(`
			{"id": "t1", "commandLine": "echo hi", "constraints": {"maxWallClockTime": "PT1H"},
			 "environmentSettings": [{"name": "A", "value": "1"}], "requiredSlots": 2}`))
		if err != nil {
			t.Fatal(err)
		}
		if many || len(tasks) != 1 {
			t.Fatalf("many=%v len=%d", many, len(tasks))
		}
		tk := tasks[0]
		if *tk.ID != "t1" || *tk.CommandLine != "echo hi" || *tk.Constraints.MaxWallClockTime != "PT1H" ||
			*tk.EnvironmentSettings[0].Name != "A" || *tk.RequiredSlots != 2 {
			t.Errorf("parsed %+v", tk)
		}
	})

	t.Run("SingleObjectMayLackFields", func(t *testing.T) {
		t.Parallel()
		// Flags can supply id and commandLine for a single task.
		tasks, many, err := parseTaskJSON([]byte(`{"displayName": "x"}`))
		if err != nil || many || len(tasks) != 1 {
			t.Errorf("tasks=%v many=%v err=%v", tasks, many, err)
		}
	})

	t.Run("Array", func(t *testing.T) {
		t.Parallel()
		tasks, many, err := parseTaskJSON([]byte("\xef\xbb\xbf[{\"id\":\"a\",\"commandLine\":\"x\"},{\"id\":\"b\",\"commandLine\":\"y\"}]"))
		if err != nil {
			t.Fatal(err)
		}
		if !many || len(tasks) != 2 || *tasks[1].ID != "b" {
			t.Errorf("many=%v tasks=%v", many, tasks)
		}
	})

	t.Run("TaskCollectionObject", func(t *testing.T) {
		t.Parallel()
		tasks, many, err := parseTaskJSON([]byte(`{"value": [{"id":"a","commandLine":"x"}]}`))
		if err != nil || !many || len(tasks) != 1 {
			t.Errorf("tasks=%v many=%v err=%v", tasks, many, err)
		}
	})

	for name, tc := range map[string]struct{ in, want string }{
		"Empty":          {"  ", "empty file"},
		"NotJSONObject":  {`"text"`, "want a JSON object"},
		"EmptyArray":     {`[]`, "no tasks"},
		"MissingID":      {`[{"commandLine":"x"}]`, `index 0: missing "id"`},
		"MissingCommand": {`[{"id":"a","commandLine":"x"},{"id":"b"}]`, `task "b" (index 1): missing "commandLine"`},
		"DuplicateID":    {`[{"id":"a","commandLine":"x"},{"id":"A","commandLine":"y"}]`, "same id as index 0"},
		"BadJSON":        {`[{"id":`, "unexpected end"},
	} {
		t.Run("Err"+name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parseTaskJSON([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func makeTasks(n int) []azbatch.CreateTaskContent {
	tasks := make([]azbatch.CreateTaskContent, n)
	for i := range tasks {
		tasks[i] = azbatch.CreateTaskContent{ID: ptr(fmt.Sprintf("t%03d", i)), CommandLine: ptr("true")}
	}
	return tasks
}

func TestChunkTasks(t *testing.T) {
	t.Parallel()
	for n, want := range map[int][]int{0: nil, 1: {1}, 100: {100}, 101: {100, 1}, 250: {100, 100, 50}} {
		chunks := chunkTasks(makeTasks(n), TaskCollectionMax)
		var sizes []int
		for _, c := range chunks {
			sizes = append(sizes, len(c))
		}
		if fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Errorf("chunk sizes for %d = %v, want %v", n, sizes, want)
		}
	}
	// Chunks keep the order and cannot grow into each other.
	chunks := chunkTasks(makeTasks(150), 100)
	if *chunks[1][0].ID != "t100" || cap(chunks[0]) != 100 {
		t.Errorf("second chunk starts at %s, first cap %d", *chunks[1][0].ID, cap(chunks[0]))
	}
}

// fakeAdder answers CreateTaskCollection with respond and records requests.
type fakeAdder struct {
	calls   [][]string
	respond func(call int, ids []string) (azbatch.CreateTaskCollectionResponse, error)
}

func (f *fakeAdder) CreateTaskCollection(_ context.Context, _ string, g azbatch.TaskGroup, _ *azbatch.CreateTaskCollectionOptions) (azbatch.CreateTaskCollectionResponse, error) {
	ids := make([]string, len(g.Value))
	for i, tk := range g.Value {
		ids[i] = *tk.ID
	}
	f.calls = append(f.calls, ids)
	return f.respond(len(f.calls), ids)
}

func results(ids []string, status func(id string) azbatch.TaskAddStatus) azbatch.CreateTaskCollectionResponse {
	var r azbatch.CreateTaskCollectionResponse
	// Answer in reverse order: results are matched by id, not position.
	for i := len(ids) - 1; i >= 0; i-- {
		s := status(ids[i])
		res := azbatch.TaskAddResult{TaskID: ptr(ids[i]), Status: &s}
		if s != azbatch.TaskAddStatusSuccess {
			res.Error = &azbatch.Error{Code: ptr("TaskExists"), Message: &azbatch.ErrorMessage{Value: ptr("The specified task already exists.")}}
		}
		r.Value = append(r.Value, res)
	}
	return r
}

func TestAddTasks(t *testing.T) {
	t.Parallel()

	t.Run("ChunksOf100InOrder", func(t *testing.T) {
		t.Parallel()
		f := &fakeAdder{respond: func(_ int, ids []string) (azbatch.CreateTaskCollectionResponse, error) {
			return results(ids, func(id string) azbatch.TaskAddStatus {
				if id == "t042" {
					return azbatch.TaskAddStatusClientError
				}
				return azbatch.TaskAddStatusSuccess
			}), nil
		}}
		var progress []int
		res, err := addTasks(context.Background(), f, "j", makeTasks(250), func(done, total int) {
			progress = append(progress, done)
			if total != 250 {
				t.Errorf("total %d", total)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.calls) != 3 || len(f.calls[0]) != 100 || len(f.calls[1]) != 100 || len(f.calls[2]) != 50 {
			t.Errorf("request sizes: %d calls", len(f.calls))
		}
		if fmt.Sprint(progress) != "[100 200 250]" {
			t.Errorf("progress %v", progress)
		}
		if len(res) != 250 || *res[0].TaskID != "t000" || *res[249].TaskID != "t249" {
			t.Fatalf("results not in input order")
		}
		if got := countFailedAdds(res); got != 1 || *res[42].Status != azbatch.TaskAddStatusClientError {
			t.Errorf("failed = %d, res[42] = %s", got, *res[42].Status)
		}
	})

	t.Run("RetriesServerErrors", func(t *testing.T) {
		t.Parallel()
		f := &fakeAdder{respond: func(call int, ids []string) (azbatch.CreateTaskCollectionResponse, error) {
			return results(ids, func(id string) azbatch.TaskAddStatus {
				if id == "t001" && call == 1 {
					return azbatch.TaskAddStatusServerError
				}
				return azbatch.TaskAddStatusSuccess
			}), nil
		}}
		res, err := addTasks(context.Background(), f, "j", makeTasks(3), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.calls) != 2 || fmt.Sprint(f.calls[1]) != "[t001]" {
			t.Errorf("calls %v", f.calls)
		}
		if countFailedAdds(res) != 0 {
			t.Errorf("results %v", res)
		}
	})

	t.Run("SplitsTooLargeBodies", func(t *testing.T) {
		t.Parallel()
		f := &fakeAdder{respond: func(_ int, ids []string) (azbatch.CreateTaskCollectionResponse, error) {
			if len(ids) > 30 {
				return azbatch.CreateTaskCollectionResponse{}, &azcore.ResponseError{ErrorCode: "RequestBodyTooLarge", StatusCode: http.StatusRequestEntityTooLarge}
			}
			return results(ids, func(string) azbatch.TaskAddStatus { return azbatch.TaskAddStatusSuccess }), nil
		}}
		res, err := addTasks(context.Background(), f, "j", makeTasks(100), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 100 || countFailedAdds(res) != 0 {
			t.Errorf("%d results, %d failed", len(res), countFailedAdds(res))
		}
		for _, c := range f.calls[1:] {
			if len(c) > 50 {
				t.Errorf("request of %d after split", len(c))
			}
		}
	})

	t.Run("StopsOnRequestError", func(t *testing.T) {
		t.Parallel()
		f := &fakeAdder{respond: func(call int, ids []string) (azbatch.CreateTaskCollectionResponse, error) {
			if call == 2 {
				return azbatch.CreateTaskCollectionResponse{}, &azcore.ResponseError{ErrorCode: "JobNotFound", StatusCode: 404}
			}
			return results(ids, func(string) azbatch.TaskAddStatus { return azbatch.TaskAddStatusSuccess }), nil
		}}
		res, err := addTasks(context.Background(), f, "j", makeTasks(150), nil)
		if err == nil || len(res) != 100 {
			t.Errorf("err=%v, %d results", err, len(res))
		}
	})
}

func TestTaskAddTable(t *testing.T) {
	t.Parallel()
	f := &fakeAdder{respond: func(_ int, ids []string) (azbatch.CreateTaskCollectionResponse, error) {
		return results(ids, func(id string) azbatch.TaskAddStatus {
			if id == "t001" {
				return azbatch.TaskAddStatusClientError
			}
			return azbatch.TaskAddStatusSuccess
		}), nil
	}}
	res, _ := addTasks(context.Background(), f, "j", makeTasks(2), nil)
	var b strings.Builder
	if err := writeTaskAddTable(&b, res); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"TASK ID  STATUS       ERROR\n" +
		"t000     success\n" +
		"t001     clienterror  TaskExists: The specified task already exists.\n"
	if b.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", b.String(), want)
	}
	// JSON is Azure's wire shape.
	out, _ := json.Marshal(res[1])
	if !strings.Contains(string(out), `"taskId":"t001"`) || !strings.Contains(string(out), `"status":"clienterror"`) {
		t.Errorf("json %s", out)
	}
}
