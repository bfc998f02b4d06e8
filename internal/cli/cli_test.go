package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// These tests run the real command tree against a fake Batch server, the way
// an end-to-end test against `kiln server` will: build a root, add the client
// commands, execute with args and buffers.

type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI executes `kiln <args>` against url with env isolated from the
// process environment. stdin feeds confirmation prompts and --json-file -.
func runCLI(t *testing.T, url, stdin string, args ...string) cliResult {
	t.Helper()
	root := &cobra.Command{Use: "kiln", SilenceErrors: true, SilenceUsage: true}
	addClientCommands(root, &globalOptions{getenv: envMap(nil)})
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetIn(strings.NewReader(stdin))
	full := append([]string{"--url", url, "--account-name", "acct", "--account-key", base64.StdEncoding.EncodeToString([]byte("secret")), "--data-dir", t.TempDir()}, args...)
	root.SetArgs(full)
	err := root.ExecuteContext(context.Background())
	code := HandleError(&stderr, err)
	return cliResult{stdout.String(), stderr.String(), code}
}

// fakeBatch is a minimal Batch endpoint: handlers by ServeMux pattern, with
// every request recorded.
type fakeBatch struct {
	*httptest.Server
	mux *http.ServeMux
	mu  sync.Mutex
	log []string
}

func newFakeBatch(t *testing.T) *fakeBatch {
	f := &fakeBatch{mux: http.NewServeMux()}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "SharedKey acct:") {
			t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		f.mu.Lock()
		f.log = append(f.log, r.Method+" "+r.URL.EscapedPath())
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBatch) handle(pattern string, h http.HandlerFunc) { f.mux.HandleFunc(pattern, h) }

func (f *fakeBatch) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;odata=minimalmetadata")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func replyError(w http.ResponseWriter, status int, code, msg string, kv ...string) {
	var values []string
	for i := 0; i+1 < len(kv); i += 2 {
		values = append(values, fmt.Sprintf(`{"key": %q, "value": %q}`, kv[i], kv[i+1]))
	}
	reply(w, status, fmt.Sprintf(`{"code": %q, "message": {"lang": "en-US", "value": %q}, "values": [%s]}`, code, msg, strings.Join(values, ",")))
}

func TestCLI_PoolList(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	f.handle("GET /pools", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("$filter") != "state eq 'active'" {
			t.Errorf("filter %q", r.URL.Query().Get("$filter"))
		}
		if r.URL.Query().Get("page") == "2" {
			reply(w, 200, `{"value": [{"id": "p3", "state": "active", "allocationState": "steady", "currentDedicatedNodes": 0, "targetDedicatedNodes": 0, "taskSlotsPerNode": 1, "vmSize": "s"}]}`)
			return
		}
		next := f.URL + "/pools?api-version=2024-07-01.20.0&%24filter=state+eq+%27active%27&page=2"
		reply(w, 200, `{"value": [
			{"id": "p1", "state": "active", "allocationState": "steady", "currentDedicatedNodes": 2, "targetDedicatedNodes": 2, "taskSlotsPerNode": 4, "vmSize": "s"},
			{"id": "p2", "state": "active", "allocationState": "resizing", "currentDedicatedNodes": 0, "targetDedicatedNodes": 3, "taskSlotsPerNode": 1, "vmSize": "s"}
		], "odata.nextLink": "`+next+`"}`)
	})

	res := runCLI(t, f.URL, "", "pool", "list", "--filter", "state eq 'active'")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := "" +
		"ID  STATE   ALLOCATION  NODES  SLOTS  VM SIZE\n" +
		"p1  active  steady      2/2    4      s\n" +
		"p2  active  resizing    0/3    1      s\n" +
		"p3  active  steady      0/0    1      s\n"
	if res.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", res.stdout, want)
	}

	res = runCLI(t, f.URL, "", "pool", "list", "--filter", "state eq 'active'", "-o", "json")
	var pools []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &pools); err != nil {
		t.Fatalf("json output %q: %v", res.stdout, err)
	}
	if len(pools) != 3 || pools[2]["id"] != "p3" || pools[0]["targetDedicatedNodes"] != float64(2) {
		t.Errorf("pools %v", pools)
	}
}

func TestCLI_Errors(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	f.handle("GET /pools/{id}", func(w http.ResponseWriter, r *http.Request) {
		replyError(w, 404, "PoolNotFound", "The specified pool does not exist.", "id", r.PathValue("id"))
	})

	res := runCLI(t, f.URL, "", "pool", "show", "nope")
	if res.code != 1 || res.stdout != "" {
		t.Errorf("exit %d, stdout %q", res.code, res.stdout)
	}
	if want := "ERROR: PoolNotFound: The specified pool does not exist.\n  id: nope\n"; res.stderr != want {
		t.Errorf("stderr %q, want %q", res.stderr, want)
	}

	// Usage errors are errors too, reported the same way.
	res = runCLI(t, f.URL, "", "job", "show")
	if res.code != 1 || res.stderr != "ERROR: --job-id is required\n" {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, f.URL, "", "pool", "list", "-o", "yaml")
	if res.code != 1 || !strings.Contains(res.stderr, "table or json") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestCLI_ServerDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := runCLI(t, url, "", "pool", "list")
	if res.code != 1 || !strings.Contains(res.stderr, "cannot reach Kiln server at "+url) {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestCLI_PoolCreateFromJSONFile(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	var sent map[string]any
	f.handle("POST /pools", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&sent)
		w.WriteHeader(201)
	})
	f.handle("GET /pools/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"id": "`+r.PathValue("id")+`", "state": "active", "allocationState": "resizing", "currentDedicatedNodes": 0, "targetDedicatedNodes": 5, "taskSlotsPerNode": 2, "vmSize": "big"}`)
	})
	file := filepath.Join(t.TempDir(), "pool.json")
	os.WriteFile(file, []byte(`{"id": "from-file", "vmSize": "big", "targetDedicatedNodes": 1, "taskSlotsPerNode": 2,
		"startTask": {"commandLine": "setup.sh", "waitForSuccess": true}}`), 0o644)

	res := runCLI(t, f.URL, "", "pool", "create", "--json-file", file, "--id", "p9", "--target-dedicated-nodes", "5")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if sent["id"] != "p9" || sent["vmSize"] != "big" || sent["targetDedicatedNodes"] != float64(5) || sent["taskSlotsPerNode"] != float64(2) {
		t.Errorf("sent %v", sent)
	}
	if st, _ := sent["startTask"].(map[string]any); st["commandLine"] != "setup.sh" || st["waitForSuccess"] != true {
		t.Errorf("start task %v", sent["startTask"])
	}
	if !strings.Contains(res.stdout, "p9  active  resizing    0/5    2      big") {
		t.Errorf("stdout %q", res.stdout)
	}

	res = runCLI(t, f.URL, "", "pool", "create", "--id", "p10", "--start-task-command-line", "x", "--start-task-wait-for-success")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if sent["vmSize"] != VMSizeDefault || sent["targetDedicatedNodes"] != float64(0) || sent["taskSlotsPerNode"] != float64(1) {
		t.Errorf("defaults sent %v", sent)
	}
}

func TestCLI_PoolResizeWait(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	var mu sync.Mutex
	gets := 0
	f.handle("POST /pools/{id}/resize", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		if body["targetDedicatedNodes"] != float64(3) || body["nodeDeallocationOption"] != "taskcompletion" {
			t.Errorf("resize body %v", body)
		}
		w.WriteHeader(202)
	})
	f.handle("GET /pools/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		state, cur := "resizing", n-1
		if n >= 4 {
			state, cur = "steady", 3
		}
		reply(w, 200, fmt.Sprintf(`{"id": "p1", "state": "active", "allocationState": %q, "currentDedicatedNodes": %d, "targetDedicatedNodes": 3, "taskSlotsPerNode": 1, "vmSize": "s"}`, state, cur))
	})
	res := runCLI(t, f.URL, "", "pool", "resize", "p1", "--target-dedicated-nodes", "3", "--node-deallocation-option", "TaskCompletion", "--wait")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{"resizing 0/3 nodes", "steady   3/3 nodes", "p1  active  steady      3/3"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runCLI(t, f.URL, "", "pool", "resize", "p1", "--target-dedicated-nodes", "1", "--node-deallocation-option", "later")
	if res.code != 1 || !strings.Contains(res.stderr, "requeue, retaineddata, taskcompletion, terminate") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestCLI_DeleteNeedsConfirmation(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	f.handle("DELETE /jobs/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) })

	res := runCLI(t, f.URL, "", "job", "delete", "j1")
	if res.code != 1 || !strings.Contains(res.stderr, "--yes") {
		t.Errorf("no answer: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, f.URL, "n\n", "job", "delete", "j1")
	if res.code != 1 || !strings.Contains(res.stderr, "cancelled") {
		t.Errorf("answer n: exit %d, stderr %q", res.code, res.stderr)
	}
	if got := f.requests(); len(got) != 0 {
		t.Errorf("requests before confirmation: %v", got)
	}
	res = runCLI(t, f.URL, "y\n", "job", "delete", "j1")
	if res.code != 0 || res.stdout != "Deleting job j1.\n" {
		t.Errorf("answer y: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, f.URL, "", "job", "delete", "--job-id", "j1", "--yes", "-o", "json")
	if res.code != 0 || res.stdout != "" {
		t.Errorf("--yes -o json: exit %d, stdout %q", res.code, res.stdout)
	}
}

func TestCLI_JobWait(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	var mu sync.Mutex
	polls := 0
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"id": "j1", "state": "active", "poolInfo": {"poolId": "p1"}}`)
	})
	f.handle("GET /jobs/{id}/taskcounts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		counts := [][5]int{{2, 1, 0, 0, 0}, {0, 1, 2, 2, 0}, {0, 0, 3, 2, 1}}[min(n, 3)-1]
		reply(w, 200, fmt.Sprintf(`{"taskCounts": {"active": %d, "running": %d, "completed": %d, "succeeded": %d, "failed": %d},
			"taskSlotCounts": {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}}`, counts[0], counts[1], counts[2], counts[3], counts[4]))
	})

	res := runCLI(t, f.URL, "", "job", "wait", "--job-id", "j1", "--fail-on-task-failure")
	if res.code != 1 {
		t.Errorf("exit %d, want 1 (a task failed)", res.code)
	}
	for _, want := range []string{"0/3 completed  1 running  2 active", "3/3 completed  0 running  0 active  2 succeeded  1 failed", "Job j1: 3 of 3 tasks completed, 2 succeeded, 1 failed."} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if res.stderr != "ERROR: job j1: 1 task(s) failed\n" {
		t.Errorf("stderr %q", res.stderr)
	}

	// JSON: progress on stderr, final counts on stdout; no failure flag, exit 0.
	res = runCLI(t, f.URL, "", "job", "wait", "j1", "-o", "json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var counts struct {
		TaskCounts map[string]int `json:"taskCounts"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &counts); err != nil || counts.TaskCounts["failed"] != 1 {
		t.Errorf("stdout %q: %v", res.stdout, err)
	}
	if !strings.Contains(res.stderr, "3/3 completed") {
		t.Errorf("stderr %q", res.stderr)
	}
}

func TestCLI_JobWaitTimeout(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	f.handle("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"id": "j1", "state": "active", "poolInfo": {"poolId": "p1"}}`)
	})
	f.handle("GET /jobs/{id}/taskcounts", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"taskCounts": {"active": 1, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}, "taskSlotCounts": {"active": 1, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}}`)
	})
	res := runCLI(t, f.URL, "", "job", "wait", "j1", "--timeout", "600ms")
	if res.code != 1 || !strings.Contains(res.stderr, "timed out after 600ms waiting for job j1") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestCLI_TaskCreate(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	var mu sync.Mutex
	var chunks []int
	var single map[string]any
	f.handle("POST /jobs/{job}/addtaskcollection", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		chunks = append(chunks, len(body.Value))
		mu.Unlock()
		var out []string
		for _, tk := range body.Value {
			if tk.ID == "t007" {
				out = append(out, `{"taskId": "t007", "status": "clienterror", "error": {"code": "TaskExists", "message": {"value": "The specified task already exists."}}}`)
				continue
			}
			out = append(out, `{"taskId": "`+tk.ID+`", "status": "success"}`)
		}
		reply(w, 200, `{"value": [`+strings.Join(out, ",")+`]}`)
	})
	f.handle("POST /jobs/{job}/tasks", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&single)
		w.WriteHeader(201)
	})
	f.handle("GET /jobs/{job}/tasks/{task}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"id": "`+r.PathValue("task")+`", "state": "active", "commandLine": "echo hi"}`)
	})

	t.Run("Flags", func(t *testing.T) {
		res := runCLI(t, f.URL, "", "task", "create", "--job-id", "j1", "--task-id", "t1", "--command-line", "echo hi",
			"--env", "A=1", "--env", "B=x=y", "--max-wall-clock-time", "90m", "--max-task-retry-count", "2", "--required-slots", "2")
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		b, _ := json.Marshal(single)
		want := `{"commandLine":"echo hi","constraints":{"maxTaskRetryCount":2,"maxWallClockTime":"PT1H30M"},"environmentSettings":[{"name":"A","value":"1"},{"name":"B","value":"x=y"}],"id":"t1","requiredSlots":2}`
		if string(b) != want {
			t.Errorf("sent %s\nwant %s", b, want)
		}
		if res.stdout != "ID  STATE   EXIT CODE  NODE  COMMAND LINE\nt1  active                   echo hi\n" {
			t.Errorf("stdout %q", res.stdout)
		}
	})

	t.Run("JSONArrayInChunks", func(t *testing.T) {
		var tasks []string
		for i := range 250 {
			tasks = append(tasks, fmt.Sprintf(`{"id": "t%03d", "commandLine": "echo %d"}`, i, i))
		}
		res := runCLI(t, f.URL, "["+strings.Join(tasks, ",\n")+"]", "task", "create", "--job-id", "j1", "--json-file", "-")
		if res.code != 1 {
			t.Errorf("exit %d, want 1", res.code)
		}
		mu.Lock()
		got := fmt.Sprint(chunks)
		mu.Unlock()
		if got != "[100 100 50]" {
			t.Errorf("chunks %s", got)
		}
		if !strings.Contains(res.stdout, "t007     clienterror  TaskExists: The specified task already exists.") ||
			!strings.Contains(res.stdout, "t249     success") || strings.Count(res.stdout, "\n") < 251 {
			t.Errorf("stdout:\n%s", res.stdout)
		}
		if !strings.Contains(res.stdout, "250/250 tasks sent") {
			t.Errorf("no progress in stdout")
		}
		if res.stderr != "ERROR: 1 of 250 tasks were not added\n" {
			t.Errorf("stderr %q", res.stderr)
		}
	})

	t.Run("ArrayRefusesTaskFlags", func(t *testing.T) {
		res := runCLI(t, f.URL, `[{"id": "a", "commandLine": "x"}]`, "task", "create", "--job-id", "j1", "--json-file", "-", "--command-line", "y")
		if res.code != 1 || !strings.Contains(res.stderr, "--command-line cannot be used") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

func TestCLI_TaskFileDownload(t *testing.T) {
	t.Parallel()
	f := newFakeBatch(t)
	f.handle("GET /jobs/{job}/tasks/{task}/files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("path") != "wd/out dir/result.txt" {
			replyError(w, 404, "FileNotFound", "The specified file does not exist.", "path", r.PathValue("path"))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "hello\n")
	})
	f.handle("GET /jobs/{job}/tasks/{task}/files", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("recursive") != "true" {
			t.Errorf("recursive %q", r.URL.Query().Get("recursive"))
		}
		reply(w, 200, `{"value": [{"name": "wd", "isDirectory": true}, {"name": "stdout.txt", "isDirectory": false, "properties": {"contentLength": "6", "lastModified": "2024-03-04T05:06:07Z"}}]}`)
	})

	res := runCLI(t, f.URL, "", "task", "file", "download", "--job-id", "j1", "--task-id", "t1", "--file-path", "wd/out dir/result.txt", "--destination", "-")
	if res.code != 0 || res.stdout != "hello\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if got := f.requests(); !strings.Contains(got[0], "/files/wd%2Fout%20dir%2Fresult.txt") {
		t.Errorf("request %v", got)
	}

	dir := t.TempDir()
	res = runCLI(t, f.URL, "", "task", "file", "download", "--job-id", "j1", "--task-id", "t1", "--file-path", "wd/out dir/result.txt", "--destination", dir)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("file %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in destination, want 1", len(entries))
	}

	res = runCLI(t, f.URL, "", "task", "file", "download", "--job-id", "j1", "--task-id", "t1", "--file-path", "missing.txt", "--destination", filepath.Join(dir, "x"))
	if res.code != 1 || !strings.HasPrefix(res.stderr, "ERROR: FileNotFound: ") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("failed download left a file: %v", err)
	}

	res = runCLI(t, f.URL, "", "task", "file", "list", "--job-id", "j1", "--task-id", "t1", "--recursive")
	if res.code != 0 || !strings.Contains(res.stdout, "wd/") || !strings.Contains(res.stdout, "stdout.txt  6 B") {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestCommandTree(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "kiln"}
	AddClientCommands(root)
	for _, path := range []string{
		"pool create", "pool list", "pool show", "pool resize", "pool delete",
		"node list", "node show", "node reboot", "node file list", "node file download",
		"job create", "job list", "job show", "job terminate", "job delete", "job wait",
		"task create", "task list", "task show", "task delete", "task terminate", "task reactivate",
		"task file list", "task file download",
	} {
		cmd, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) != 0 || cmd.CommandPath() != "kiln "+path {
			t.Errorf("%s: found %q, rest %v, err %v", path, cmd.CommandPath(), rest, err)
		}
		if cmd.RunE == nil {
			t.Errorf("%s: no RunE", path)
		}
	}
	for _, flag := range []string{"url", "account-name", "account-key", "data-dir", "output"} {
		if root.PersistentFlags().Lookup(flag) == nil {
			t.Errorf("no persistent --%s", flag)
		}
	}
	if root.PersistentFlags().ShorthandLookup("o") == nil {
		t.Error("no -o")
	}
}
