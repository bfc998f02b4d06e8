package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestBasicScenario is Azure Batch's basic workflow: a pool of 2 nodes, a
// job of 100 tasks that each write their id, all complete, outputs read back
// and task counts right.
func TestBasicScenario(t *testing.T) {
	s := StartServer(t, nil)
	s.CreatePool(t, "basic", 2, 4, nil)
	s.CreateJob(t, "basicjob", "basic", nil)
	var tasks []azbatch.CreateTaskContent
	for i := 0; i < 100; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("task%03d", i)),
			CommandLine: to(`/bin/sh -c 'echo "$AZ_BATCH_TASK_ID"'`),
		})
	}
	s.AddTasks(t, "basicjob", tasks)
	counts := s.WaitJobTasks(t, "basicjob", 2*time.Minute)
	if c := counts.TaskCounts; *c.Completed != 100 || *c.Succeeded != 100 || *c.Failed != 0 {
		t.Fatalf("task counts: completed %d succeeded %d failed %d", *c.Completed, *c.Succeeded, *c.Failed)
	}
	if c := counts.TaskSlotCounts; *c.Completed != 100 {
		t.Fatalf("slot counts: completed %d", *c.Completed)
	}
	listed := s.ListTasks(t, "basicjob", nil)
	if len(listed) != 100 {
		t.Fatalf("listed %d tasks", len(listed))
	}
	nodes := map[string]int{}
	for _, task := range listed {
		if *task.State != azbatch.TaskStateCompleted || *task.ExecutionInfo.ExitCode != 0 || *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("task %s: state %s", *task.ID, *task.State)
		}
		nodes[*task.NodeInfo.NodeID]++
		resp, err := s.Client.GetTaskFile(ctx(t), "basicjob", *task.ID, "stdout.txt", nil)
		if err != nil {
			t.Fatalf("get stdout of %s: %v", *task.ID, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(b)) != *task.ID {
			t.Fatalf("stdout of %s = %q", *task.ID, b)
		}
	}
	if len(nodes) != 2 {
		t.Fatalf("tasks ran on %d nodes, want 2: %v", len(nodes), nodes)
	}
}
