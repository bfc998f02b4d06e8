package e2e

// Auto pools through the official Go SDK: a job's pool is created for it,
// runs its tasks on real agents and goes when the job completes, unless
// keepAlive; a schedule's pool (jobschedule lifetime) lives as long as the
// schedule.

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// autoPoolInfo is a poolInfo asking for an auto pool of n local nodes.
func autoPoolInfo(life azbatch.PoolLifetimeOption, prefix string, keepAlive bool, n int32) *azbatch.PoolInfo {
	p := poolContent("", n, 2)
	return &azbatch.PoolInfo{AutoPoolSpecification: &azbatch.AutoPoolSpecification{
		PoolLifetimeOption: &life,
		AutoPoolIDPrefix:   &prefix,
		KeepAlive:          &keepAlive,
		Pool: &azbatch.PoolSpecification{
			VMSize:                      p.VMSize,
			TargetDedicatedNodes:        p.TargetDedicatedNodes,
			TaskSlotsPerNode:            p.TaskSlotsPerNode,
			VirtualMachineConfiguration: p.VirtualMachineConfiguration,
		},
	}}
}

var autoPoolIDRE = regexp.MustCompile(`^[a-z]+_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`)

// autoPoolRun creates a job on an auto pool, runs two tasks on it, reads a
// task's output and lets the job complete (onAllTasksComplete). It returns
// the pool's id.
func autoPoolRun(t *testing.T, s *Server, jobID string, keepAlive bool) string {
	t.Helper()
	c := s.Client
	_, err := c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to(jobID), PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJob, "auto", keepAlive, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := jobGet(t, s, jobID)
	poolID := *job.ExecutionInfo.PoolID
	if !autoPoolIDRE.MatchString(poolID) || job.PoolInfo.PoolID != nil || *job.PoolInfo.AutoPoolSpecification.PoolLifetimeOption != azbatch.PoolLifetimeOptionJob {
		t.Fatalf("job pool info %+v, execution pool %q", job.PoolInfo, poolID)
	}
	s.AddTasks(t, jobID, []azbatch.CreateTaskContent{
		taskCmd("t1", `/bin/sh -c 'echo on $AZ_BATCH_POOL_ID'`),
		taskCmd("t2", `/bin/sh -c 'exit 0'`),
	})
	s.WaitJobTasks(t, jobID, 60*time.Second)
	for _, task := range s.ListTasks(t, jobID, nil) {
		if *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess || *task.NodeInfo.PoolID != poolID {
			t.Fatalf("task %s: %s on pool %s", *task.ID, *task.ExecutionInfo.Result, *task.NodeInfo.PoolID)
		}
	}
	// Files are read while the pool lives: its nodes hold them.
	if out := taskMustReadFile(t, s, jobID, "t1", "stdout.txt"); out != "on "+poolID+"\n" {
		t.Fatalf("stdout = %q", out)
	}
	if _, err := c.UpdateJob(ctx(t), jobID, azbatch.UpdateJobContent{OnAllTasksComplete: to(azbatch.OnAllTasksCompleteTerminateJob)}, nil); err != nil {
		t.Fatal(err)
	}
	job = jobWaitState(t, s, jobID, azbatch.JobStateCompleted, 60*time.Second)
	if *job.ExecutionInfo.TerminationReason != "AllTasksComplete" {
		t.Fatalf("termination reason %q", *job.ExecutionInfo.TerminationReason)
	}
	return poolID
}

func TestAutoPool_JobLifetime(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	poolID := autoPoolRun(t, s, "autojob", false)
	s.poolWaitGone(t, poolID)

	// Azure refuses the jobschedule lifetime on a job.
	_, err := s.Client.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("bad"), PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJobSchedule, "", false, 1)}, nil)
	schedExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}

func TestAutoPool_KeepAlive(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	poolID := autoPoolRun(t, s, "keepjob", true)
	time.Sleep(2 * time.Second)
	p := s.poolGet(t, poolID)
	if *p.State != azbatch.PoolStateActive {
		t.Fatalf("kept pool is %s", *p.State)
	}
	// It is the user's to delete.
	if _, err := s.Client.DeletePool(ctx(t), poolID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitGone(t, poolID)
}

// TestAutoPool_Schedule: a schedule's jobschedule-lifetime pool runs its
// job's tasks and goes when the schedule completes.
func TestAutoPool_Schedule(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	_, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("sp"),
		Schedule:         &azbatch.JobScheduleConfiguration{},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJobSchedule, "sched", false, 1)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var job azbatch.Job
	eventually(t, 15*time.Second, "sp:job-1", func() error {
		r, err := c.GetJob(ctx(t), "sp:job-1", nil)
		job = r.Job
		return err
	})
	poolID := *job.ExecutionInfo.PoolID
	if !autoPoolIDRE.MatchString(poolID) {
		t.Fatalf("pool id %q", poolID)
	}
	s.AddTasks(t, "sp:job-1", []azbatch.CreateTaskContent{taskCmd("t1", `/bin/sh -c 'echo scheduled'`)})
	s.WaitJobTasks(t, "sp:job-1", 60*time.Second)
	if task := taskGet(t, s, "sp:job-1", "t1"); *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task result %s", *task.ExecutionInfo.Result)
	}
	// The pool outlives the job while the schedule is active...
	if _, err := c.TerminateJob(ctx(t), "sp:job-1", nil); err != nil {
		t.Fatal(err)
	}
	jobWaitState(t, s, "sp:job-1", azbatch.JobStateCompleted, 30*time.Second)
	// ...the run-once schedule completes with its job, and the pool goes.
	schedWaitState(t, s, "sp", azbatch.JobScheduleStateCompleted)
	s.poolWaitGone(t, poolID)
	eventually(t, 5*time.Second, "no pool left", func() error {
		pager := c.NewListPoolsPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				return err
			}
			if len(page.Value) > 0 {
				return fmt.Errorf("pool %s", *page.Value[0].ID)
			}
		}
		return nil
	})
}
