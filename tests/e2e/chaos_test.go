package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestChaosTenThousandTasks runs a 10,000-task job on joined agents that
// know both servers of a highly available pair on PostgreSQL, and kills with
// SIGKILL, in turn: an agent (restarted on the same root directory, as a
// service manager would), the leader (restarted as a follower), then the
// new leader and an agent at once. Every task ends completed exactly once:
// one completion in the API (no retry, exit code 0) and one finished run,
// except where a killed agent lost a run's report, where the run was
// requeued (requeueCount) and only the requeue's run is the task's.
func TestChaosTenThousandTasks(t *testing.T) {
	const n = 10000
	dsn := postgresURL(t)
	shared := "file://" + t.TempDir()
	addrB := freeAddr(t)
	urlB := "http://" + addrB
	common := []string{"--store", dsn, "--storage", shared, "--node-timeout", "20s", "--heartbeat-interval", "1s"}
	a := StartServer(t, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", urlB)})
	b := startServerAt(t, addrB, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", a.URL)})
	servers := a.URL + "," + b.URL

	createAgentsPool(t, a, "chaos", 4, 4)
	token, _, _ := joinToken(t, a, "chaos", false)
	dir := t.TempDir()
	var agents []*remoteAgent
	for i := range 4 {
		agents = append(agents, startRemoteAgent(t, servers, "chaos", token, filepath.Join(dir, fmt.Sprintf("agent%d", i))))
	}
	a.WaitNodes(t, "chaos", 4, azbatch.NodeStateIdle)

	markers := filepath.Join(dir, "markers")
	mkdirShared(t, markers)
	a.CreateJob(t, "chaosjob", "chaos", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("MARKERS"), Value: to(markers)}}
	})
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("t%05d", i)),
			CommandLine: to(`/bin/sh -c 'mktemp "$MARKERS/$AZ_BATCH_TASK_ID.XXXXXX"'`),
		})
	}
	a.AddTasks(t, "chaosjob", tasks)

	finished := func() int {
		m, _ := os.ReadDir(markers)
		return len(m)
	}
	waitFinished := func(k int) {
		t.Helper()
		eventually(t, 5*time.Minute, fmt.Sprintf("%d runs finished", k), func() error {
			if f := finished(); f < k {
				return fmt.Errorf("%d finished", f)
			}
			return nil
		})
	}
	// killAgent kills an agent with SIGKILL, leaving its running tasks
	// orphaned, and starts it again on the same root directory: the new
	// process kills the orphans and rejoins as the same node.
	killAgent := func(ra *remoteAgent) {
		t.Helper()
		_ = syscall.Kill(ra.cmd.Process.Pid, syscall.SIGKILL)
		<-ra.done
		ra.start(servers, "chaos", token)
	}
	leader := func() (*Server, *Server) {
		t.Helper()
		var l, f *Server
		eventually(t, 60*time.Second, "one leader", func() error {
			ia, ib := leaderInfo(t, a.URL), leaderInfo(t, b.URL)
			switch {
			case ia.Role == "leader" && ib.Role != "leader":
				l, f = a, b
			case ib.Role == "leader" && ia.Role != "leader":
				l, f = b, a
			default:
				return fmt.Errorf("roles %q and %q", ia.Role, ib.Role)
			}
			return nil
		})
		return l, f
	}

	waitFinished(n / 5)
	t.Logf("kill -9 of an agent at %d finished runs", finished())
	killAgent(agents[0])

	waitFinished(2 * n / 5)
	l, f := leader()
	t.Logf("kill -9 of the leader %s at %d finished runs", l.URL, finished())
	l.Kill()
	killed := time.Now()
	eventually(t, 60*time.Second, "the follower to take over", func() error {
		if info := leaderInfo(t, f.URL); info.Role != "leader" {
			return fmt.Errorf("%+v", info)
		}
		return nil
	})
	t.Logf("hand-over in %v", time.Since(killed).Round(time.Millisecond))
	l.Start() // back as a follower

	waitFinished(3 * n / 5)
	l, _ = leader()
	t.Logf("kill -9 of the leader %s and an agent at %d finished runs", l.URL, finished())
	l.Kill()
	killAgent(agents[1])
	l.Start()

	l, _ = leader()
	counts := l.WaitJobTasks(t, "chaosjob", 10*time.Minute)
	if c := counts.TaskCounts; int(*c.Completed) != n || int(*c.Succeeded) != n || *c.Failed != 0 {
		t.Fatalf("completed %d succeeded %d failed %d, want %d succeeded", *c.Completed, *c.Succeeded, *c.Failed, n)
	}
	runs := map[string]int{}
	entries, err := os.ReadDir(markers)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		runs[id]++
	}
	listed, requeued, rerun := 0, 0, 0
	for _, task := range l.ListTasks(t, "chaosjob", nil) {
		listed++
		id := *task.ID
		ei := task.ExecutionInfo
		if *task.State != azbatch.TaskStateCompleted || ei == nil || ei.ExitCode == nil || *ei.ExitCode != 0 || *ei.RetryCount != 0 {
			t.Errorf("task %s: state %s, execution %+v", id, *task.State, ei)
			continue
		}
		rq := int(*ei.RequeueCount)
		if rq > 0 {
			requeued++
		}
		switch r := runs[id]; {
		case r == 1:
		case r > 1 && r <= 1+rq:
			rerun++ // a killed agent lost the report of a finished run
		default:
			t.Errorf("task %s finished %d runs with requeueCount %d", id, r, rq)
		}
	}
	if listed != n {
		t.Fatalf("listed %d tasks, want %d", listed, n)
	}
	t.Logf("%d tasks requeued by the kills, %d of them had finished a run whose report died with its agent", requeued, rerun)
}
