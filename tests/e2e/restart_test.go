package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestRestartExactlyOnce kills the server in the middle of a 1,000-task job
// (SIGKILL, then SIGTERM) and checks that after restarts every task
// completed, and ran exactly once: each task appends its id to a ledger
// outside the nodes, and every id must appear there once.
func TestRestartExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tasks int
		stop  func(*Server)
	}{
		{"SIGKILL", 1000, (*Server).Kill},
		{"SIGTERM", 300, (*Server).Stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := StartServer(t, nil)
			ledger := filepath.Join(taskTempDir(t), "ledger.txt")
			s.CreatePool(t, "restart", 2, 4, nil)
			s.CreateJob(t, "restartjob", "restart", func(c *azbatch.CreateJobContent) {
				c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
			})
			var tasks []azbatch.CreateTaskContent
			for i := 0; i < tc.tasks; i++ {
				tasks = append(tasks, azbatch.CreateTaskContent{
					ID:          to(fmt.Sprintf("t%04d", i)),
					CommandLine: to(`/bin/sh -c 'sleep 0.02; echo "$AZ_BATCH_TASK_ID" >> "$LEDGER"'`),
				})
			}
			s.AddTasks(t, "restartjob", tasks)

			// Stop the server twice while the job runs: at about a quarter
			// and at about two thirds of the work.
			for _, frac := range []float64{0.25, 0.66} {
				eventually(t, 2*time.Minute, "progress", func() error {
					b, _ := os.ReadFile(ledger)
					if n := strings.Count(string(b), "\n"); float64(n) < frac*float64(tc.tasks) {
						return fmt.Errorf("%d done", n)
					}
					return nil
				})
				tc.stop(s)
				time.Sleep(500 * time.Millisecond) // agents keep working while the server is down
				s.Start()
			}

			counts := s.WaitJobTasks(t, "restartjob", 3*time.Minute)
			if c := counts.TaskCounts; int(*c.Succeeded) != tc.tasks || *c.Failed != 0 {
				t.Fatalf("counts after restart: succeeded %d failed %d", *c.Succeeded, *c.Failed)
			}
			b, err := os.ReadFile(ledger)
			if err != nil {
				t.Fatal(err)
			}
			runs := map[string]int{}
			for _, line := range strings.Fields(string(b)) {
				runs[line]++
			}
			for i := 0; i < tc.tasks; i++ {
				id := fmt.Sprintf("t%04d", i)
				if runs[id] != 1 {
					t.Errorf("task %s ran %d times", id, runs[id])
				}
			}
			if len(runs) != tc.tasks {
				t.Errorf("ledger has %d distinct ids, want %d", len(runs), tc.tasks)
			}
			for _, task := range s.ListTasks(t, "restartjob", nil) {
				if *task.State != azbatch.TaskStateCompleted || *task.ExecutionInfo.ExitCode != 0 {
					t.Fatalf("task %s: state %s", *task.ID, *task.State)
				}
			}
		})
	}
}

// TestAgentLostRequeues kills a node's agent: the node goes unusable once it
// stops heartbeating, its running task is requeued (requeueCount, not
// retryCount) and completes on the other node.
func TestAgentLostRequeues(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: []string{"--node-timeout", "3s"}})
	s.CreatePool(t, "lost", 2, 1, nil)
	s.CreateJob(t, "lostjob", "lost", nil)
	s.AddTasks(t, "lostjob", []azbatch.CreateTaskContent{
		{ID: to("a"), CommandLine: to("sleep 4")},
		{ID: to("b"), CommandLine: to("sleep 4")},
	})
	var victim string
	eventually(t, 30*time.Second, "task a running", func() error {
		task, err := s.Client.GetTask(ctx(t), "lostjob", "a", nil)
		if err != nil {
			return err
		}
		if *task.State != azbatch.TaskStateRunning {
			return fmt.Errorf("state %s", *task.State)
		}
		victim = *task.NodeInfo.NodeID
		return nil
	})
	pidFile := filepath.Join(s.DataDir, "nodes", victim, "agent.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Kill()

	eventually(t, 30*time.Second, "victim node unusable", func() error {
		n, err := s.Client.GetNode(ctx(t), "lost", victim, nil)
		if err != nil {
			return err
		}
		if *n.State != azbatch.NodeStateUnusable {
			return fmt.Errorf("state %s", *n.State)
		}
		return nil
	})
	s.WaitJobTasks(t, "lostjob", time.Minute)
	task, err := s.Client.GetTask(ctx(t), "lostjob", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	ei := task.ExecutionInfo
	if *task.State != azbatch.TaskStateCompleted || *ei.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task a: %s %v", *task.State, ei.Result)
	}
	if *ei.RequeueCount < 1 || *ei.RetryCount != 0 {
		t.Fatalf("task a: requeueCount %d retryCount %d", *ei.RequeueCount, *ei.RetryCount)
	}
	if *task.NodeInfo.NodeID == victim {
		t.Fatalf("task a completed on the dead node")
	}
}
