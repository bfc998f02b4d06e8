package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

func mustUnmarshal[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPoolTable(t *testing.T) {
	t.Parallel()
	pools := mustUnmarshal[[]azbatch.Pool](t, `[
		{"id": "p1", "state": "active", "allocationState": "resizing", "vmSize": "standard_d2s_v3",
		 "currentDedicatedNodes": 1, "targetDedicatedNodes": 3, "currentLowPriorityNodes": 1, "targetLowPriorityNodes": 1, "taskSlotsPerNode": 4},
		{"id": "empty-pool", "state": "deleting", "allocationState": "steady", "vmSize": "small",
		 "currentDedicatedNodes": 0, "targetDedicatedNodes": 0, "taskSlotsPerNode": 1},
		{"id": "selected"}
	]`)
	var b bytes.Buffer
	if err := writePoolTable(&b, pools); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID          STATE     ALLOCATION  NODES  SLOTS  VM SIZE\n" +
		"p1          active    resizing    2/4    4      standard_d2s_v3\n" +
		"empty-pool  deleting  steady      0/0    1      small\n" +
		"selected\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestJobTable(t *testing.T) {
	t.Parallel()
	jobs := mustUnmarshal[[]azbatch.Job](t, `[
		{"id": "j1", "state": "active", "poolInfo": {"poolId": "p1"}, "priority": 100, "creationTime": "2024-03-04T05:06:07Z"},
		{"id": "j2", "state": "completed", "poolInfo": {}, "executionInfo": {"startTime": "2024-03-04T05:06:07Z", "poolId": "auto-1"}, "priority": -5}
	]`)
	var b bytes.Buffer
	if err := writeJobTable(&b, jobs); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC).Local().Format(output.TimeLayout)
	want := "" +
		"ID  STATE      POOL    PRIORITY  CREATED\n" +
		"j1  active     p1      100       " + created + "\n" +
		"j2  completed  auto-1  -5\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestTaskTable(t *testing.T) {
	t.Parallel()
	long := "/bin/sh -c 'for i in $(seq 1 100); do echo line $i; sleep 1; done; exit 3'"
	tasks := mustUnmarshal[[]azbatch.Task](t, `[
		{"id": "t1", "state": "completed", "commandLine": "echo hi",
		 "executionInfo": {"exitCode": 0, "retryCount": 0, "requeueCount": 0, "result": "success"},
		 "nodeInfo": {"nodeId": "node-1"}},
		{"id": "t2", "state": "active", "commandLine": `+fmt.Sprintf("%q", long)+`}
	]`)
	var b bytes.Buffer
	if err := writeTaskTable(&b, tasks); err != nil {
		t.Fatal(err)
	}
	cut := output.Truncate(long, commandLineWidth)
	if len([]rune(cut)) != commandLineWidth || !strings.HasSuffix(cut, "...") {
		t.Fatalf("truncated %q", cut)
	}
	want := "" +
		"ID  STATE      EXIT CODE  NODE    COMMAND LINE\n" +
		"t1  completed  0          node-1  echo hi\n" +
		"t2  active                        " + cut + "\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestNodeTable(t *testing.T) {
	t.Parallel()
	nodes := mustUnmarshal[[]azbatch.Node](t, `[
		{"id": "n1", "state": "running", "schedulingState": "enabled", "runningTasksCount": 2, "ipAddress": "10.0.0.4"},
		{"id": "n2", "state": "idle", "schedulingState": "disabled", "runningTasksCount": 0}
	]`)
	var b bytes.Buffer
	if err := writeNodeTable(&b, nodes); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID  STATE    SCHEDULING  RUNNING TASKS  IP\n" +
		"n1  running  enabled     2              10.0.0.4\n" +
		"n2  idle     disabled    0\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFileTable(t *testing.T) {
	t.Parallel()
	files := mustUnmarshal[[]azbatch.NodeFile](t, `[
		{"name": "wd", "isDirectory": true},
		{"name": "stdout.txt", "isDirectory": false, "properties": {"contentLength": "2048", "lastModified": "2024-03-04T05:06:07Z"}}
	]`)
	var b bytes.Buffer
	if err := writeFileTable(&b, files); err != nil {
		t.Fatal(err)
	}
	mod := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC).Local().Format(output.TimeLayout)
	want := "" +
		"NAME        SIZE     MODIFIED\n" +
		"wd/\n" +
		"stdout.txt  2.0 KiB  " + mod + "\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestPrintResultJSON(t *testing.T) {
	t.Parallel()
	o := &globalOptions{output: "json"}
	pools := mustUnmarshal[[]azbatch.Pool](t, `[{"id": "p1", "targetDedicatedNodes": 2, "allocationState": "steady"}]`)
	var b bytes.Buffer
	if err := o.printResult(&b, pools, func(io.Writer) error { t.Fatal("table used"); return nil }); err != nil {
		t.Fatal(err)
	}
	// Azure's wire names, an array, indented.
	want := "[\n  {\n    \"allocationState\": \"steady\",\n    \"id\": \"p1\",\n    \"targetDedicatedNodes\": 2\n  }\n]\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	var none []azbatch.Pool
	if err := o.printResult(&b, none, nil); err != nil || b.String() != "[]\n" {
		t.Errorf("empty list: %q, %v", b.String(), err)
	}
}

func TestDetailsViews(t *testing.T) {
	t.Parallel()
	task := mustUnmarshal[azbatch.Task](t, `{"id": "t1", "state": "completed", "commandLine": "false",
		"environmentSettings": [{"name": "A", "value": "1"}],
		"executionInfo": {"exitCode": 1, "retryCount": 2, "requeueCount": 0, "result": "failure",
			"failureInfo": {"category": "usererror", "code": "FailureExitCode", "message": "The task exited with an exit code representing a failure",
				"details": [{"name": "Message", "value": "exit 1"}]}},
		"nodeInfo": {"nodeId": "n1", "poolId": "p1"}}`)
	task.Constraints = &azbatch.TaskConstraints{MaxWallClockTime: ptr("P10675199DT2H48M5.4775807S")}
	var b bytes.Buffer
	if err := writeTaskDetails(&b, task); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Exit code:", "Failure:", "FailureExitCode: The task exited with an exit code representing a failure (Message=exit 1)",
		"Environment:", "A=1", "Retries:", "Node:", "n1", "Max wall clock time:  unlimited",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("task details lack %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	pool := mustUnmarshal[azbatch.Pool](t, `{"id": "p1", "allocationState": "steady", "currentDedicatedNodes": 1, "targetDedicatedNodes": 2,
		"resizeErrors": [{"code": "AllocationFailed", "message": "no capacity"}]}`)
	if err := writePoolDetails(&b, pool); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Dedicated nodes:") || !strings.Contains(b.String(), "AllocationFailed: no capacity") {
		t.Errorf("pool details:\n%s", b.String())
	}
}

func responseError(t *testing.T, status int, header http.Header, body string) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/pools/p1", nil)
	if header == nil {
		header = http.Header{}
	}
	resp := &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header: header, Body: io.NopCloser(strings.NewReader(body)), Request: req,
	}
	return runtime.NewResponseError(resp)
}

func TestFormatError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{
			"BatchBody",
			responseError(t, 404, nil, `{"odata.metadata": "x", "code": "PoolNotFound", "message": {"lang": "en-US", "value": "The specified pool does not exist.\nRequestId:abc"}, "values": [{"key": "id", "value": "p1"}]}`),
			"ERROR: PoolNotFound: The specified pool does not exist.\nRequestId:abc\n  id: p1",
		},
		{
			"HeaderCodePlainMessage",
			responseError(t, 409, http.Header{"X-Ms-Error-Code": {"JobExists"}}, `{"code": "JobExists", "message": "The specified job already exists."}`),
			"ERROR: JobExists: The specified job already exists.",
		},
		{
			"ODataWrapped",
			responseError(t, 400, nil, `{"odata.error": {"code": "InvalidPropertyValue", "message": {"value": "bad"}}}`),
			"ERROR: InvalidPropertyValue: bad",
		},
		{
			"NoBody",
			responseError(t, 500, nil, ``),
			"ERROR: HTTP500: 500 Internal Server Error",
		},
		{
			"Wrapped",
			fmt.Errorf("context: %w", responseError(t, 403, nil, `{"code": "AuthenticationFailed", "message": {"value": "Server failed to authenticate the request."}}`)),
			"ERROR: AuthenticationFailed: Server failed to authenticate the request.",
		},
		{"Plain", errors.New("--job-id is required"), "ERROR: --job-id is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatError(c.err); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
			var b bytes.Buffer
			if code := HandleError(&b, c.err); code != 1 || b.String() != c.want+"\n" {
				t.Errorf("HandleError = %d, %q", code, b.String())
			}
		})
	}
	var re *azcore.ResponseError
	if !errors.As(cases[0].err, &re) {
		t.Fatal("not a ResponseError")
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 || ExitCode(&ExitError{Code: 3}) != 3 {
		t.Error("ExitCode")
	}
	var b bytes.Buffer
	PrintError(&b, &ExitError{Code: 2})
	if b.Len() != 0 {
		t.Errorf("silent ExitError printed %q", b.String())
	}
	PrintError(&b, fmt.Errorf("wrapped: %w", &ExitError{Code: 1, Err: errors.New("2 task(s) failed")}))
	if b.String() != "ERROR: wrapped: 2 task(s) failed\n" {
		t.Errorf("got %q", b.String())
	}
}

func TestISODuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"90m": "PT1H30M", "1h30m": "PT1H30M", "2.5s": "PT2.5S", "0s": "PT0S", "45s": "PT45S",
		"25h": "PT25H", "1h0m5s": "PT1H5S", "7d": "P7D", "PT1H": "PT1H", "p7d": "P7D", "P1DT2H": "P1DT2H",
	} {
		got, err := isoDuration(in)
		if err != nil || got != want {
			t.Errorf("isoDuration(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "soon", "-5m", "P1X", "1.5d"} {
		if got, err := isoDuration(bad); err == nil {
			t.Errorf("isoDuration(%q) = %q, want error", bad, got)
		}
	}
}

func TestJobWaitHelpers(t *testing.T) {
	t.Parallel()
	active, completed := azbatch.JobStateActive, azbatch.JobStateCompleted
	cases := []struct {
		c     taskCounts
		state *azbatch.JobState
		done  bool
	}{
		{taskCounts{}, &active, false},
		{taskCounts{Active: 1}, &active, false},
		{taskCounts{Running: 1, Completed: 3}, &active, false},
		{taskCounts{Completed: 3, Succeeded: 3}, &active, true},
		{taskCounts{}, &completed, true},
		{taskCounts{Active: 2}, &completed, true},
		{taskCounts{Completed: 1}, nil, true},
	}
	for _, c := range cases {
		if got := jobDone(c.c, c.state); got != c.done {
			t.Errorf("jobDone(%+v, %v) = %v", c.c, output.Str(c.state), got)
		}
	}
	line := taskCountsLine(taskCounts{Active: 4, Running: 2, Completed: 4, Succeeded: 3, Failed: 1})
	want := "[############..................]  40%  4/10 completed  2 running  4 active  3 succeeded  1 failed"
	if line != want {
		t.Errorf("line\n%q\nwant\n%q", line, want)
	}
}

func TestPoolProgressLine(t *testing.T) {
	t.Parallel()
	grow := mustUnmarshal[azbatch.Pool](t, `{"allocationState": "resizing", "currentDedicatedNodes": 1, "targetDedicatedNodes": 4}`)
	if got := poolProgressLine(grow); !strings.HasPrefix(got, "[#######.......................] resizing 1/4 nodes") {
		t.Errorf("grow: %q", got)
	}
	shrink := mustUnmarshal[azbatch.Pool](t, `{"allocationState": "resizing", "currentDedicatedNodes": 4, "targetDedicatedNodes": 1}`)
	if got := poolProgressLine(shrink); !strings.Contains(got, "4/1 nodes") {
		t.Errorf("shrink: %q", got)
	}
}
