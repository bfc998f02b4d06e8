package e2e

// Helpers of the job, task, task file and OData tests (job_test.go,
// task_test.go, filter_test.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// jobPool is the pool id the job and task tests use.
const jobPool = "pool"

// jobStartPool starts a server and, when nodes > 0, creates pool "pool" of
// nodes nodes with slots task slots each, waiting until they are idle.
func jobStartPool(t *testing.T, nodes, slots int32, mutate func(*azbatch.CreatePoolContent)) *Server {
	t.Helper()
	s := StartServer(t, nil)
	if nodes > 0 {
		s.CreatePool(t, jobPool, nodes, slots, mutate)
	}
	return s
}

// jobGet returns a job or fails the test.
func jobGet(t testing.TB, s *Server, jobID string) azbatch.Job {
	t.Helper()
	r, err := s.Client.GetJob(ctx(t), jobID, nil)
	if err != nil {
		t.Fatalf("get job %s: %v", jobID, err)
	}
	return r.Job
}

// jobWaitState waits until the job is in state want and returns it.
func jobWaitState(t testing.TB, s *Server, jobID string, want azbatch.JobState, timeout time.Duration) azbatch.Job {
	t.Helper()
	var job azbatch.Job
	eventually(t, timeout, fmt.Sprintf("job %s %s", jobID, want), func() error {
		r, err := s.Client.GetJob(ctx(t), jobID, nil)
		if err != nil {
			return err
		}
		job = r.Job
		if *job.State != want {
			return fmt.Errorf("state %s", *job.State)
		}
		return nil
	})
	return job
}

// taskAdd adds one task or fails the test.
func taskAdd(t testing.TB, s *Server, jobID string, c azbatch.CreateTaskContent) {
	t.Helper()
	if _, err := s.Client.CreateTask(ctx(t), jobID, c, nil); err != nil {
		t.Fatalf("add task %s: %v", *c.ID, err)
	}
}

// taskCmd is a CreateTaskContent with an id and a command line.
func taskCmd(id, cmd string) azbatch.CreateTaskContent {
	return azbatch.CreateTaskContent{ID: to(id), CommandLine: to(cmd)}
}

// taskGateCmd prints "started", then waits until a file named "release"
// appears in its working directory (see taskRelease), then prints "released".
const taskGateCmd = `/bin/sh -c 'echo started; while [ ! -e release ]; do sleep 0.05; done; echo released'`

// taskGet returns a task or fails the test.
func taskGet(t testing.TB, s *Server, jobID, taskID string) azbatch.Task {
	t.Helper()
	r, err := s.Client.GetTask(ctx(t), jobID, taskID, nil)
	if err != nil {
		t.Fatalf("get task %s/%s: %v", jobID, taskID, err)
	}
	return r.Task
}

// taskWaitState waits until the task is in state want and returns it.
func taskWaitState(t testing.TB, s *Server, jobID, taskID string, want azbatch.TaskState, timeout time.Duration) azbatch.Task {
	t.Helper()
	var task azbatch.Task
	eventually(t, timeout, fmt.Sprintf("task %s/%s %s", jobID, taskID, want), func() error {
		r, err := s.Client.GetTask(ctx(t), jobID, taskID, nil)
		if err != nil {
			return err
		}
		task = r.Task
		if *task.State != want {
			return fmt.Errorf("state %s", *task.State)
		}
		return nil
	})
	return task
}

// taskNodeRoot is the root directory (AZ_BATCH_NODE_ROOT_DIR) of a local node.
func taskNodeRoot(s *Server, nodeID string) string {
	return filepath.Join(s.DataDir, "nodes", nodeID)
}

// taskDirOf is the task directory (AZ_BATCH_TASK_DIR) of a task that was
// assigned to a node.
func taskDirOf(t testing.TB, s *Server, jobID string, task azbatch.Task) string {
	t.Helper()
	if task.NodeInfo == nil || task.NodeInfo.NodeID == nil {
		t.Fatalf("task %s has no nodeInfo", *task.ID)
	}
	return filepath.Join(taskNodeRoot(s, *task.NodeInfo.NodeID), "workitems", jobID, "job-1", *task.ID)
}

// taskRelease lets a task running taskGateCmd finish.
func taskRelease(t testing.TB, s *Server, jobID, taskID string) {
	t.Helper()
	task := taskGet(t, s, jobID, taskID)
	p := filepath.Join(taskDirOf(t, s, jobID, task), "wd", "release")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatalf("release task %s: %v", taskID, err)
	}
}

// taskReadFile reads a task file through the API.
func taskReadFile(t testing.TB, s *Server, jobID, taskID, path string) (string, error) {
	t.Helper()
	r, err := s.Client.GetTaskFile(ctx(t), jobID, taskID, path, nil)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// taskMustReadFile reads a task file through the API or fails the test.
func taskMustReadFile(t testing.TB, s *Server, jobID, taskID, path string) string {
	t.Helper()
	b, err := taskReadFile(t, s, jobID, taskID, path)
	if err != nil {
		t.Fatalf("read %s of task %s: %v", path, taskID, err)
	}
	return b
}

// taskFileNames lists a task's files (recursively or not) by name.
func taskFileNames(t testing.TB, s *Server, jobID, taskID string, recursive bool) (map[string]azbatch.NodeFile, error) {
	t.Helper()
	out := map[string]azbatch.NodeFile{}
	pager := s.Client.NewListTaskFilesPager(jobID, taskID, &azbatch.ListTaskFilesOptions{Recursive: to(recursive)})
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			return nil, err
		}
		for _, f := range page.Value {
			out[*f.Name] = f
		}
	}
	return out, nil
}

// taskProcsUnder returns the processes whose working directory is dir or
// inside it (the processes of a task, as the task runs in its wd).
func taskProcsUnder(dir string) []string {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue // gone, a zombie, or not ours
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+": "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
		}
	}
	return out
}

// taskWaitNoProcs waits until no process runs inside dir.
func taskWaitNoProcs(t testing.TB, dir string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "no process left in "+dir, func() error {
		if ps := taskProcsUnder(dir); len(ps) > 0 {
			return fmt.Errorf("still running: %v", ps)
		}
		return nil
	})
}

// jobAzureError checks that err is an Azure Batch error response with the
// given status and code, whose body has Azure's shape (odata.metadata, code,
// message.lang/value), and returns its "values" as a map.
func jobAzureError(t testing.TB, err error, status int, code string) map[string]string {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d %s", status, code)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a response error (want %d %s)", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %s, want %d %s: %v", re.StatusCode, re.ErrorCode, status, code, err)
	}
	if re.RawResponse == nil || re.RawResponse.Request.Method == "HEAD" {
		return nil
	}
	b, rerr := io.ReadAll(re.RawResponse.Body)
	if rerr != nil {
		t.Fatalf("read error body: %v", rerr)
	}
	var body struct {
		Metadata string `json:"odata.metadata"`
		Code     string `json:"code"`
		Message  struct {
			Lang  string `json:"lang"`
			Value string `json:"value"`
		} `json:"message"`
		Values []struct{ Key, Value string } `json:"values"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	if body.Code != code || body.Message.Lang != "en-US" || body.Message.Value == "" || !strings.Contains(body.Metadata, "$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element") {
		t.Fatalf("error body is not Azure-shaped: %s", b)
	}
	values := map[string]string{}
	for _, kv := range body.Values {
		values[kv.Key] = kv.Value
	}
	return values
}

// taskEnvOf parses the output of /usr/bin/env.
func taskEnvOf(out string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// jobListPages lists jobs and returns them with the size of every page.
func jobListPages(t *testing.T, s *Server, opts *azbatch.ListJobsOptions) ([]azbatch.Job, []int) {
	t.Helper()
	var jobs []azbatch.Job
	var pages []int
	pager := s.Client.NewListJobsPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list jobs: %v", err)
		}
		jobs = append(jobs, page.Value...)
		pages = append(pages, len(page.Value))
	}
	return jobs, pages
}

// taskListPages lists tasks and returns them with the size of every page.
func taskListPages(t *testing.T, s *Server, jobID string, opts *azbatch.ListTasksOptions) ([]azbatch.Task, []int) {
	t.Helper()
	var tasks []azbatch.Task
	var pages []int
	pager := s.Client.NewListTasksPager(jobID, opts)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list tasks %+v: %v", opts, err)
		}
		tasks = append(tasks, page.Value...)
		pages = append(pages, len(page.Value))
	}
	return tasks, pages
}

// jobIDs returns the ids of jobs.
func jobIDs(jobs []azbatch.Job) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, *j.ID)
	}
	return ids
}

// taskIDs returns the ids of tasks.
func taskIDs(tasks []azbatch.Task) []string {
	var ids []string
	for _, tk := range tasks {
		ids = append(ids, *tk.ID)
	}
	return ids
}

// taskOnceCmd sleeps 30 s on its first run and succeeds at once on the next.
const taskOnceCmd = `/bin/sh -c 'f="$AZ_BATCH_NODE_SHARED_DIR/once-$AZ_BATCH_JOB_ID-$AZ_BATCH_TASK_ID"; if [ -e "$f" ]; then echo second; exit 0; fi; touch "$f"; echo first; exec sleep 30'`
