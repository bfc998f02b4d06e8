package service

// Unit tests of job preparation and release tasks where timing matters
// (reboots, an agent that forgot an attempt, deletion): the test plays the
// node's agent through the agent protocol (lcBundle, job_lifecycle_test.go).

import (
	"context"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

func (b *lcBundle) addPrepJob(id string, rerun bool, release bool) {
	b.t.Helper()
	b.addJob(id, func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{CommandLine: ptr("true"), RerunOnNodeRebootAfterSuccess: ptr(rerun)}
		if release {
			c.JobReleaseTask = &azbatch.JobReleaseTask{CommandLine: ptr("true")}
		}
	})
}

// runs reports which tasks (by id) the agent was given.
func (b *lcBundle) runs() []string {
	var ids []string
	for _, id := range b.known {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (b *lcBundle) prepStatus(jobID string) []azbatch.JobPreparationAndReleaseTaskStatus {
	b.t.Helper()
	page, err := b.s.JobPrepReleaseStatus(context.Background(), lcAccount, jobID, ListParams{})
	if err != nil {
		b.t.Fatal(err)
	}
	var out []azbatch.JobPreparationAndReleaseTaskStatus
	for _, o := range page.Items {
		var st azbatch.JobPreparationAndReleaseTaskStatus
		if err := st.UnmarshalJSON(o.Doc); err != nil {
			b.t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func TestJobPrep(t *testing.T) {
	t.Parallel()

	// A task waits, preparing, for the preparation task, and is delivered
	// once it succeeded; a reboot makes it run again before the next task,
	// unless rerunOnNodeRebootAfterSuccess is false.
	for _, rerun := range []bool{true, false} {
		name := "RebootReruns"
		if !rerun {
			name = "RebootKeepsSuccess"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newLCBundle(t, 2)
			b.addPrepJob("j", rerun, false)
			b.addTask("j", "t1")
			b.sync()
			if got := b.runs(); !slices.Equal(got, []string{"jobpreparation"}) {
				t.Fatalf("agent runs %v before the preparation succeeded", got)
			}
			if st := *b.task("j", "t1").State; st != azbatch.TaskStatePreparing {
				t.Fatalf("waiting task %s", st)
			}
			b.end("jobpreparation", 0, false, nil)
			if got := b.runs(); !slices.Equal(got, []string{"t1"}) {
				t.Fatalf("agent runs %v after the preparation", got)
			}
			b.end("t1", 0, false, nil)
			if err := b.s.NodeReboot(context.Background(), lcAccount, "pool", b.nodeID, nil); err != nil {
				t.Fatal(err)
			}
			b.sync()
			b.addTask("j", "t2")
			b.sync()
			want := []string{"t2"}
			if rerun {
				want = []string{"jobpreparation"}
			}
			if got := b.runs(); !slices.Equal(got, want) {
				t.Fatalf("after a reboot the agent runs %v, want %v", got, want)
			}
		})
	}

	// The agent registers again without the preparation attempt (its
	// process died with the agent's): it runs again, the task still waits.
	t.Run("LostAttemptRunsAgain", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 1)
		b.addPrepJob("j", true, false)
		b.addTask("j", "t")
		b.sync()
		lost := b.attemptOf("jobpreparation")
		delete(b.known, lost)
		b.register()
		if got := b.runs(); !slices.Equal(got, []string{"jobpreparation"}) || b.attemptOf("jobpreparation") == lost {
			t.Fatalf("after the agent lost the preparation it runs %v", got)
		}
		b.end("jobpreparation", 0, false, nil)
		if got := b.runs(); !slices.Equal(got, []string{"t"}) {
			t.Fatalf("agent runs %v", got)
		}
	})

	// Deleting an active job runs its release task; the job is deleting
	// until the release ends, then gone.
	t.Run("DeleteRunsRelease", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 1)
		b.addPrepJob("j", true, true)
		b.addTask("j", "t")
		b.sync()
		b.end("jobpreparation", 0, false, nil)
		b.end("t", 0, false, nil)
		if err := b.s.JobDelete(context.Background(), lcAccount, "j", Conditions{}); err != nil {
			t.Fatal(err)
		}
		b.sync()
		if got := b.runs(); !slices.Equal(got, []string{"jobrelease"}) {
			t.Fatalf("agent runs %v after the delete", got)
		}
		if st := b.jobState("j"); st != azbatch.JobStateDeleting {
			t.Fatalf("job %s while its release runs", st)
		}
		if st := b.prepStatus("j"); len(st) != 1 || *st[0].JobReleaseTaskExecutionInfo.State != azbatch.JobReleaseTaskStateRunning {
			t.Fatalf("status while releasing %+v", st)
		}
		b.end("jobrelease", 0, false, nil)
		if _, err := b.job("j"); err == nil || !isNotFound(err) {
			t.Fatalf("job after its release: %v", err)
		}
		// A job created again with the id starts afresh on the node.
		b.addPrepJob("j", true, false)
		b.addTask("j", "t")
		b.sync()
		if got := b.runs(); !slices.Equal(got, []string{"jobpreparation"}) {
			t.Fatalf("the new job's task skipped its preparation: %v", got)
		}
	})

	// Terminating a job stops a preparation still running (its tasks
	// waiting for it end with the job) and runs the release there.
	t.Run("TerminateStopsPreparation", func(t *testing.T) {
		t.Parallel()
		b := newLCBundle(t, 1)
		b.addPrepJob("j", true, true)
		b.addTask("j", "t")
		b.sync()
		prep := b.attemptOf("jobpreparation")
		if _, err := b.s.JobTerminate(context.Background(), lcAccount, "j", nil, Conditions{}); err != nil {
			t.Fatal(err)
		}
		b.sync()
		if !slices.Contains(b.lastKill, prep) {
			t.Fatalf("kill orders %v lack the preparation", b.lastKill)
		}
		if ei := b.task("j", "t").ExecutionInfo; *ei.FailureInfo.Code != "TaskEnded" {
			t.Fatalf("waiting task ended with %+v", ei.FailureInfo)
		}
		delete(b.known, prep)
		b.sync()
		if got := b.runs(); !slices.Equal(got, []string{"jobrelease"}) {
			t.Fatalf("agent runs %v", got)
		}
		st := b.prepStatus("j")
		if p := st[0].JobPreparationTaskExecutionInfo; *p.State != azbatch.JobPreparationTaskStateCompleted || *p.Result != azbatch.TaskExecutionResultFailure {
			t.Fatalf("stopped preparation %+v", p)
		}
		b.end("jobrelease", 0, false, nil)
		if st := b.jobState("j"); st != azbatch.JobStateCompleted {
			t.Fatalf("job %s after its release", st)
		}
	})
}

func isNotFound(err error) bool {
	be, ok := err.(*batch.Error)
	return ok && be.Status == 404
}
