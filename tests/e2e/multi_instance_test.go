package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Multi-instance tasks (Azure's "Use multi-instance tasks to run MPI
// applications in Batch"), through the official Go SDK, on local nodes.

// miPool creates a pool of n nodes fit for multi-instance tasks (inter-node
// communication, one task slot per node).
func miPool(t *testing.T, s *Server, id string, n int32) {
	t.Helper()
	s.CreatePool(t, id, n, 1, func(c *azbatch.CreatePoolContent) { c.EnableInterNodeCommunication = to(true) })
}

// miSubtasks lists a task's subtasks.
func miSubtasks(t testing.TB, s *Server, jobID, taskID string) []azbatch.Subtask {
	t.Helper()
	var out []azbatch.Subtask
	pager := s.Client.NewListSubTasksPager(jobID, taskID, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list subtasks of %s: %v", taskID, err)
		}
		out = append(out, page.Value...)
	}
	return out
}

// miTask is a multi-instance task.
func miTask(id string, instances int32, coordination, app string) azbatch.CreateTaskContent {
	return azbatch.CreateTaskContent{
		ID:          to(id),
		CommandLine: to(app),
		MultiInstanceSettings: &azbatch.MultiInstanceSettings{
			NumberOfInstances:       to(instances),
			CoordinationCommandLine: to(coordination),
		},
	}
}

// miServe serves files over http for resource files: name -> content.
func miServe(t *testing.T, files map[string][]byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// miTaskDir is the task directory of a task on a node.
func miTaskDir(s *Server, node, jobID, taskID string) string {
	return filepath.Join(taskNodeRoot(s, node), "workitems", jobID, "job-1", taskID)
}

// miCoordCmd runs on every node: it appends "<node> <unix ns>" to a ledger
// shared by the whole test, checks the common resource file, and leaves a
// daemon running whose pid it writes to the task's shared directory.
const miCoordCmd = `/bin/sh -c 'echo "$AZ_BATCH_NODE_ID $(date +%s%N)" >> "$LEDGER"; cat "$AZ_BATCH_TASK_SHARED_DIR/common.txt" || exit 7; sleep 300 & echo $! > "$AZ_BATCH_TASK_SHARED_DIR/daemon.pid"; env'`

// TestMultiInstance runs a 3-instance task on 3 local nodes: the common
// resource files reach every node's task directory, the coordination
// command runs once on each node before the application command starts on
// the master, the application command sees every host and the master, the
// subtasks list shows the two other instances, and the daemons the
// coordination commands left behind die when the primary ends.
func TestMultiInstance(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	miPool(t, s, "mpipool", 3)
	ledger := filepath.Join(taskTempDir(t), "ledger")
	base := miServe(t, map[string][]byte{"common.txt": []byte("common\n"), "input.txt": []byte("input\n")})
	s.CreateJob(t, "mpijob", "mpipool", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	})
	task := miTask("mpi", 3, miCoordCmd,
		`/bin/sh -c 'echo "app $(date +%s%N)" >> "$LEDGER"; echo application; cat input.txt; env'`)
	task.MultiInstanceSettings.CommonResourceFiles = []azbatch.ResourceFile{{HTTPURL: to(base + "common.txt"), FilePath: to("common.txt")}}
	task.ResourceFiles = []azbatch.ResourceFile{{HTTPURL: to(base + "input.txt"), FilePath: to("input.txt")}}
	taskAdd(t, s, "mpijob", task)

	done := taskWaitState(t, s, "mpijob", "mpi", azbatch.TaskStateCompleted, time.Minute)
	if ei := done.ExecutionInfo; *ei.Result != azbatch.TaskExecutionResultSuccess || *ei.ExitCode != 0 {
		t.Fatalf("task result %s exit %d: %+v", *ei.Result, *ei.ExitCode, ei.FailureInfo)
	}
	if mi := done.MultiInstanceSettings; mi == nil || *mi.NumberOfInstances != 3 || *mi.CoordinationCommandLine != miCoordCmd {
		t.Fatalf("multiInstanceSettings %+v", mi)
	}
	master := *done.NodeInfo.NodeID

	// One coordination per node, all before the application command.
	coord := map[string]int64{}
	var app int64
	b, _ := os.ReadFile(ledger)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		who, ts, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(ts, 10, 64)
		if who == "app" {
			app = n
			continue
		}
		if _, dup := coord[who]; dup {
			t.Errorf("node %s coordinated twice", who)
		}
		coord[who] = n
	}
	nodes := s.poolNodeIDs(t, "mpipool")
	if len(coord) != 3 {
		t.Fatalf("coordination ran on %d nodes: %s", len(coord), b)
	}
	for _, n := range nodes {
		if coord[n] == 0 || coord[n] > app {
			t.Errorf("node %s: coordinated at %d, application started at %d", n, coord[n], app)
		}
		dir := miTaskDir(s, n, "mpijob", "mpi")
		if got, err := os.ReadFile(filepath.Join(dir, "common.txt")); err != nil || string(got) != "common\n" {
			t.Errorf("node %s: common resource file %q %v", n, got, err)
		}
		_, err := os.Stat(filepath.Join(dir, "wd", "input.txt"))
		if (n == master) != (err == nil) {
			t.Errorf("node %s (master %v): the task's own resource file: %v", n, n == master, err)
		}
		pidb, err := os.ReadFile(filepath.Join(dir, "daemon.pid"))
		if err != nil {
			t.Fatalf("node %s: daemon pid: %v", n, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
		eventually(t, 10*time.Second, "daemon of node "+n+" killed", func() error {
			if syscall.Kill(pid, 0) == nil && !miZombie(pid) {
				return fmt.Errorf("pid %d alive", pid)
			}
			return nil
		})
	}

	// The primary's stdout: its coordination output, then the application's.
	out := taskMustReadFile(t, s, "mpijob", "mpi", "stdout.txt")
	if !strings.HasPrefix(out, "common\n") || !strings.Contains(out, "\napplication\ninput\n") {
		t.Fatalf("primary stdout %q", out)
	}
	env := taskEnvOf(out[strings.Index(out, "\napplication\n"):])
	hosts := strings.Split(env["AZ_BATCH_HOST_LIST"], ",")
	if len(hosts) != 3 || env["AZ_BATCH_NODE_LIST"] != strings.Join(hosts, ";") {
		t.Fatalf("AZ_BATCH_HOST_LIST %q AZ_BATCH_NODE_LIST %q", env["AZ_BATCH_HOST_LIST"], env["AZ_BATCH_NODE_LIST"])
	}
	for _, h := range hosts {
		if h != "127.0.0.1" { // local nodes all register the loopback address
			t.Errorf("host %q", h)
		}
	}
	if !strings.HasPrefix(env["AZ_BATCH_MASTER_NODE"], hosts[0]+":") || env["AZ_BATCH_IS_CURRENT_NODE_MASTER"] != "true" ||
		env["AZ_BATCH_TASK_SHARED_DIR"] != miTaskDir(s, master, "mpijob", "mpi") {
		t.Fatalf("master variables: %q %q %q", env["AZ_BATCH_MASTER_NODE"], env["AZ_BATCH_IS_CURRENT_NODE_MASTER"], env["AZ_BATCH_TASK_SHARED_DIR"])
	}

	// The subtasks: ids 1 and 2, on the two other nodes, completed.
	subs := miSubtasks(t, s, "mpijob", "mpi")
	if len(subs) != 2 {
		t.Fatalf("%d subtasks, want 2", len(subs))
	}
	seen := map[string]bool{master: true}
	for i, sub := range subs {
		node := *sub.NodeInfo.NodeID
		if *sub.ID != int32(i+1) || seen[node] || *sub.State != azbatch.SubtaskStateCompleted || *sub.ExitCode != 0 ||
			*sub.Result != azbatch.TaskExecutionResultSuccess || sub.StartTime == nil || sub.EndTime.Before(*sub.StartTime) {
			t.Fatalf("subtask %d: %+v", i, sub)
		}
		seen[node] = true
		if *sub.NodeInfo.TaskRootDirectory != "workitems/mpijob/job-1/mpi" || *sub.NodeInfo.PoolID != "mpipool" {
			t.Errorf("subtask %d node info %+v", *sub.ID, *sub.NodeInfo)
		}
		// A subtask's files are on its node: its coordination output.
		sout, err := s.poolReadNodeFile(t, "mpipool", node, *sub.NodeInfo.TaskRootDirectory+"/stdout.txt")
		if err != nil || !strings.HasPrefix(sout, "common\n") || taskEnvOf(sout)["AZ_BATCH_IS_CURRENT_NODE_MASTER"] != "false" {
			t.Errorf("subtask %d stdout %q %v", *sub.ID, sout, err)
		}
	}
	if subs := miSubtasks(t, s, "mpijob", "mpi"); len(subs) != 2 {
		t.Fatal("subtasks changed")
	}

	// Deleting the task deletes every subtask's directory.
	if _, err := s.Client.DeleteTask(ctx(t), "mpijob", "mpi", nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, "task directory gone from "+n, func() error {
			if _, err := os.Stat(miTaskDir(s, n, "mpijob", "mpi")); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
	}
}

// miZombie reports whether pid is a zombie (dead, not yet reaped).
func miZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestMultiInstanceMPI runs an MPI hello world (Open MPI, compiled with
// mpicc) as a 3-instance task: the executable reaches every node as a
// common resource file and mpirun starts one rank per host of
// AZ_BATCH_HOST_LIST. Kiln's local nodes share this machine and register
// 127.0.0.1, so mpirun starts every rank on the master (--oversubscribe);
// with agents on other machines the same command line reaches them.
func TestMultiInstanceMPI(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mpirun", "mpicc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: apt-get install openmpi-bin libopenmpi-dev (.ci/run does)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	if err := os.WriteFile(src, []byte(miHelloC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mpicc", "-o", filepath.Join(dir, "mpi_hello"), src).CombinedOutput(); err != nil {
		t.Fatalf("mpicc: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "mpi_hello"))
	if err != nil {
		t.Fatal(err)
	}
	base := miServe(t, map[string][]byte{"mpi_hello": bin})

	s := StartServer(t, nil)
	miPool(t, s, "mpipool", 3)
	s.CreateJob(t, "mpijob", "mpipool", nil)
	task := miTask("hello", 3, "/bin/sh -c 'test -x $AZ_BATCH_TASK_SHARED_DIR/mpi_hello'",
		`/bin/sh -c 'mpirun --allow-run-as-root --oversubscribe --host $AZ_BATCH_HOST_LIST -np 3 $AZ_BATCH_TASK_SHARED_DIR/mpi_hello'`)
	task.MultiInstanceSettings.CommonResourceFiles = []azbatch.ResourceFile{{HTTPURL: to(base + "mpi_hello"), FilePath: to("mpi_hello"), FileMode: to("0755")}}
	taskAdd(t, s, "mpijob", task)
	done := taskWaitState(t, s, "mpijob", "hello", azbatch.TaskStateCompleted, time.Minute)
	out := taskMustReadFile(t, s, "mpijob", "hello", "stdout.txt")
	if *done.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("mpirun exit %d:\n%s\n%s", *done.ExecutionInfo.ExitCode, out, taskMustReadFile(t, s, "mpijob", "hello", "stderr.txt"))
	}
	var ranks []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "hello from rank") {
			ranks = append(ranks, line)
		}
	}
	sort.Strings(ranks)
	want := []string{"hello from rank 0 of 3, sum of ranks 3", "hello from rank 1 of 3, sum of ranks 3", "hello from rank 2 of 3, sum of ranks 3"}
	if strings.Join(ranks, "\n") != strings.Join(want, "\n") {
		t.Fatalf("MPI output:\n%s", out)
	}
	if subs := miSubtasks(t, s, "mpijob", "hello"); len(subs) != 2 {
		t.Fatalf("%d subtasks", len(subs))
	}
}

// miHelloC is an MPI program: every rank adds its rank with MPI_Allreduce
// and prints the sum, so the output shows the ranks talked to each other.
const miHelloC = `#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
	int rank, size, sum = 0;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	printf("hello from rank %d of %d, sum of ranks %d\n", rank, size, sum);
	MPI_Finalize();
	return 0;
}
`

// TestMultiInstanceSubtaskFails: a coordination command that fails on one
// node fails the whole task, which is retried as a whole up to
// maxTaskRetryCount; the application command never runs.
func TestMultiInstanceSubtaskFails(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	miPool(t, s, "mpipool", 2)
	ledger := filepath.Join(taskTempDir(t), "ledger")
	s.CreateJob(t, "mpijob", "mpipool", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	})
	task := miTask("bad", 2, `/bin/sh -c 'echo "coord-$AZ_BATCH_IS_CURRENT_NODE_MASTER" >> "$LEDGER"; $AZ_BATCH_IS_CURRENT_NODE_MASTER || exit 4'`, `/bin/sh -c 'echo app >> "$LEDGER"'`)
	task.Constraints = &azbatch.TaskConstraints{MaxTaskRetryCount: to[int32](1)}
	taskAdd(t, s, "mpijob", task)
	done := taskWaitState(t, s, "mpijob", "bad", azbatch.TaskStateCompleted, time.Minute)
	ei := done.ExecutionInfo
	if *ei.Result != azbatch.TaskExecutionResultFailure || *ei.ExitCode != 4 || *ei.RetryCount != 1 || *ei.FailureInfo.Code != "FailureExitCode" ||
		!strings.Contains(*ei.FailureInfo.Message, "Subtask 1") {
		t.Fatalf("execution info %+v failure %+v", ei, ei.FailureInfo)
	}
	b, _ := os.ReadFile(ledger)
	// The master's coordination may be stopped before it starts, the other
	// one failing first.
	if strings.Contains(string(b), "app") || strings.Count(string(b), "coord-false") != 2 {
		t.Fatalf("ledger %q: want 2 runs of the failing coordination and no application", b)
	}
	subs := miSubtasks(t, s, "mpijob", "bad")
	if len(subs) != 1 || *subs[0].ExitCode != 4 || *subs[0].Result != azbatch.TaskExecutionResultFailure || *subs[0].State != azbatch.SubtaskStateCompleted {
		t.Fatalf("subtasks %+v", subs)
	}
}

// TestMultiInstanceGang: a multi-instance task waits until it has all its
// nodes at once, and the nodes that are free meanwhile are kept for it: a
// task behind it in its job and a task of another job wait too.
func TestMultiInstanceGang(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	miPool(t, s, "gang", 3)
	ledger := filepath.Join(taskTempDir(t), "ledger")
	env := []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	s.CreateJob(t, "first", "gang", func(c *azbatch.CreateJobContent) { c.CommonEnvironmentSettings = env })
	s.CreateJob(t, "second", "gang", func(c *azbatch.CreateJobContent) { c.CommonEnvironmentSettings = env })
	taskAdd(t, s, "first", taskCmd("busy", taskGateCmd))
	taskWaitState(t, s, "first", "busy", azbatch.TaskStateRunning, 30*time.Second)
	taskAdd(t, s, "first", miTask("gang", 3, "true", `/bin/sh -c 'echo gang >> "$LEDGER"'`))
	taskAdd(t, s, "first", taskCmd("after", `/bin/sh -c 'echo after >> "$LEDGER"'`))
	taskAdd(t, s, "second", taskCmd("other", `/bin/sh -c 'echo other >> "$LEDGER"'`))
	time.Sleep(time.Second)
	for _, id := range []string{"gang", "after"} {
		if tk := taskGet(t, s, "first", id); *tk.State != azbatch.TaskStateActive {
			t.Fatalf("task %s is %s while a node is busy", id, *tk.State)
		}
	}
	if tk := taskGet(t, s, "second", "other"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("another job's task took a node kept for the multi-instance task: %s", *tk.State)
	}
	taskRelease(t, s, "first", "busy")
	s.WaitJobTasks(t, "first", 30*time.Second)
	s.WaitJobTasks(t, "second", 30*time.Second)
	b, _ := os.ReadFile(ledger)
	if lines := strings.Fields(string(b)); len(lines) != 3 || lines[0] != "gang" {
		t.Fatalf("order %v: the multi-instance task must run first", lines)
	}
}

// TestMultiInstanceRules: what Azure accepts and refuses. A pool without
// inter-node communication never runs a multi-instance task (it stays
// active, as in Azure); a task that is not multi-instance has no subtasks.
func TestMultiInstanceRules(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "plain", 2, 1, nil)
	s.CreateJob(t, "job", "plain", nil)
	bad := miTask("slots", 2, "true", "true")
	bad.RequiredSlots = to[int32](2)
	_, err := s.Client.CreateTask(ctx(t), "job", bad, nil)
	jobAzureError(t, err, 400, "InvalidPropertyValue")
	bad = miTask("none", 0, "true", "true")
	_, err = s.Client.CreateTask(ctx(t), "job", bad, nil)
	jobAzureError(t, err, 400, "InvalidPropertyValue")
	bad = miTask("nocoord", 2, "", "true")
	_, err = s.Client.CreateTask(ctx(t), "job", bad, nil)
	jobAzureError(t, err, 400, "MissingRequiredProperty")

	one := miTask("default", 2, "true", "true")
	one.MultiInstanceSettings.NumberOfInstances = nil
	taskAdd(t, s, "job", one)
	taskAdd(t, s, "job", miTask("stuck", 2, "true", "true"))
	if tk := taskGet(t, s, "job", "default"); *tk.MultiInstanceSettings.NumberOfInstances != 1 {
		t.Fatalf("numberOfInstances default %d", *tk.MultiInstanceSettings.NumberOfInstances)
	}
	time.Sleep(time.Second)
	for _, id := range []string{"default", "stuck"} {
		if tk := taskGet(t, s, "job", id); *tk.State != azbatch.TaskStateActive {
			t.Fatalf("multi-instance task %s is %s on a pool without inter-node communication", id, *tk.State)
		}
	}

	s.CreateJob(t, "plainjob", "plain", nil)
	taskAdd(t, s, "plainjob", taskCmd("single", "true"))
	s.WaitJobTasks(t, "plainjob", 30*time.Second)
	if subs := miSubtasks(t, s, "plainjob", "single"); len(subs) != 0 {
		t.Fatalf("subtasks of a plain task: %+v", subs)
	}
	_, err = s.Client.NewListSubTasksPager("plainjob", "missing", nil).NextPage(ctx(t))
	jobAzureError(t, err, 404, "TaskNotFound")
}

// TestMultiInstanceRestart: the server restarts while the coordination
// commands run (the primary waits for them) and again while the
// application command runs; the task completes, each command having run
// once.
func TestMultiInstanceRestart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	miPool(t, s, "mpipool", 2)
	tmp := taskTempDir(t)
	ledger, gate := filepath.Join(tmp, "ledger"), filepath.Join(tmp, "coordinate")
	s.CreateJob(t, "mpijob", "mpipool", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}, {Name: to("GATE"), Value: to(gate)}}
	})
	taskAdd(t, s, "mpijob", miTask("mpi", 2, `/bin/sh -c 'echo coord >> "$LEDGER"; while [ ! -e "$GATE" ]; do sleep 0.05; done'`,
		`/bin/sh -c 'echo app >> "$LEDGER"; while [ ! -e release ]; do sleep 0.05; done'`))
	eventually(t, 30*time.Second, "both coordination commands running", func() error {
		if b, _ := os.ReadFile(ledger); strings.Count(string(b), "coord") != 2 {
			return fmt.Errorf("ledger %q", b)
		}
		return nil
	})
	s.Kill()
	s.Start()
	time.Sleep(300 * time.Millisecond)
	if tk := taskGet(t, s, "mpijob", "mpi"); *tk.State != azbatch.TaskStatePreparing {
		t.Fatalf("task %s while its coordination commands run", *tk.State)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	taskWaitState(t, s, "mpijob", "mpi", azbatch.TaskStateRunning, 30*time.Second)
	s.Kill()
	s.Start()
	taskRelease(t, s, "mpijob", "mpi")
	done := taskWaitState(t, s, "mpijob", "mpi", azbatch.TaskStateCompleted, 30*time.Second)
	if *done.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("exit %d", *done.ExecutionInfo.ExitCode)
	}
	b, _ := os.ReadFile(ledger)
	if strings.Count(string(b), "coord") != 2 || strings.Count(string(b), "app") != 1 {
		t.Fatalf("ledger %q", b)
	}
	if subs := miSubtasks(t, s, "mpijob", "mpi"); len(subs) != 1 || *subs[0].State != azbatch.SubtaskStateCompleted || *subs[0].ExitCode != 0 {
		t.Fatalf("subtasks %+v", subs)
	}
}

// TestMultiInstanceNoPreemption: a multi-instance task of a high-priority
// job does not preempt lower-priority tasks (which would give it one node):
// it waits for its nodes, then runs with all of them.
func TestMultiInstanceNoPreemption(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	miPool(t, s, "prio", 2)
	s.CreateJob(t, "low", "prio", func(c *azbatch.CreateJobContent) { c.AllowTaskPreemption = to(true) })
	s.AddTasks(t, "low", []azbatch.CreateTaskContent{taskCmd("a", taskGateCmd), taskCmd("b", taskGateCmd)})
	taskWaitState(t, s, "low", "a", azbatch.TaskStateRunning, 30*time.Second)
	taskWaitState(t, s, "low", "b", azbatch.TaskStateRunning, 30*time.Second)
	s.CreateJob(t, "high", "prio", func(c *azbatch.CreateJobContent) { c.Priority = to[int32](100) })
	taskAdd(t, s, "high", miTask("mpi", 2, "true", "true"))
	time.Sleep(time.Second)
	if tk := taskGet(t, s, "high", "mpi"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("multi-instance task %s while the nodes are busy", *tk.State)
	}
	for _, id := range []string{"a", "b"} {
		if tk := taskGet(t, s, "low", id); *tk.ExecutionInfo.RequeueCount != 0 {
			t.Fatalf("task %s was preempted", id)
		}
		taskRelease(t, s, "low", id)
	}
	done := taskWaitState(t, s, "high", "mpi", azbatch.TaskStateCompleted, 30*time.Second)
	if *done.ExecutionInfo.ExitCode != 0 || len(miSubtasks(t, s, "high", "mpi")) != 1 {
		t.Fatalf("multi-instance task: exit %d, subtasks %d", *done.ExecutionInfo.ExitCode, len(miSubtasks(t, s, "high", "mpi")))
	}
}
