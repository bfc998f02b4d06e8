package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Job preparation and release tasks (Azure's "Job preparation and release
// tasks on Batch compute nodes"), through the official Go SDK.

// prepStatus lists a job's preparation and release task status by node.
func prepStatus(t testing.TB, s *Server, jobID string) map[string]azbatch.JobPreparationAndReleaseTaskStatus {
	t.Helper()
	out := map[string]azbatch.JobPreparationAndReleaseTaskStatus{}
	pager := s.Client.NewListJobPreparationAndReleaseTaskStatusPager(jobID, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list job preparation and release task status: %v", err)
		}
		for _, st := range page.Value {
			out[*st.NodeID] = st
		}
	}
	return out
}

// prepLines reads a file of a node's shared directory as lines ("" when it
// does not exist).
func prepLines(s *Server, nodeID, name string) []string {
	b, err := os.ReadFile(filepath.Join(taskNodeRoot(s, nodeID), "shared", name))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// prepStamp is a shell command appending "<label> <unix nanoseconds>" to a
// file of the node's shared directory.
func prepStamp(label, file string) string {
	return `echo ` + label + ` $(date +%s%N) >> "$AZ_BATCH_NODE_SHARED_DIR/` + file + `"`
}

// prepServeFile serves one file over http for resource files.
func prepServeFile(t *testing.T, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/file"
}

// TestJobPrepRelease: the preparation task runs once on each node that gets
// a task of the job, before those tasks, with its resource files and
// environment; the tasks see its directories; terminating the job runs the
// release task on each of those nodes, the job staying terminating until
// they end; the status API shows both, and the job shows Azure's defaults.
func TestJobPrepRelease(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 2, 2, nil)
	input := prepServeFile(t, "common input\n")
	s.CreateJob(t, "prepjob", jobPool, func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("COMMON"), Value: to("from-job")}}
		c.JobPreparationTask = &azbatch.JobPreparationTask{
			CommandLine:         to(`/bin/sh -c '` + prepStamp("prep", "prep.log") + `; sleep 0.5; cat input.txt > prepared.txt; echo "$COMMON $OWN" >> prepared.txt; env | grep -q AZ_BATCH_JOB_PREP_DIR && exit 9; ` + prepStamp("prepend", "prep.log") + `'`),
			ResourceFiles:       []azbatch.ResourceFile{{HTTPURL: to(input), FilePath: to("input.txt")}},
			EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to("OWN"), Value: to("from-prep")}},
		}
		c.JobReleaseTask = &azbatch.JobReleaseTask{
			CommandLine: to(`/bin/sh -c 'sleep 1; ` + prepStamp("release", "prep.log") + `; echo "$AZ_BATCH_JOB_PREP_DIR" > "$AZ_BATCH_NODE_SHARED_DIR/release-prepdir"'`),
		}
	})
	job := jobGet(t, s, "prepjob")
	jp, jr := job.JobPreparationTask, job.JobReleaseTask
	if jp == nil || *jp.ID != "jobpreparation" || !*jp.WaitForSuccess || !*jp.RerunOnNodeRebootAfterSuccess || *jp.Constraints.MaxTaskRetryCount != 0 {
		t.Fatalf("job preparation task defaults: %+v", jp)
	}
	if jr == nil || *jr.ID != "jobrelease" || *jr.MaxWallClockTime != "PT15M" || *jr.RetentionTime != "P7D" {
		t.Fatalf("job release task defaults: %+v", jr)
	}

	var tasks []azbatch.CreateTaskContent
	for i := range 6 {
		tasks = append(tasks, taskCmd(fmt.Sprintf("t%d", i), `/bin/sh -c '`+prepStamp("task", "prep.log")+`; cat "$AZ_BATCH_JOB_PREP_WORKING_DIR/prepared.txt"; env'`))
	}
	s.AddTasks(t, "prepjob", tasks)
	counts := s.WaitJobTasks(t, "prepjob", time.Minute)
	if *counts.TaskCounts.Succeeded != 6 {
		t.Fatalf("counts %+v", *counts.TaskCounts)
	}

	ranOn := map[string]bool{}
	for _, task := range s.ListTasks(t, "prepjob", nil) {
		node := *task.NodeInfo.NodeID
		ranOn[node] = true
		out := taskMustReadFile(t, s, "prepjob", *task.ID, "stdout.txt")
		if !strings.HasPrefix(out, "common input\nfrom-job from-prep\n") {
			t.Errorf("task %s did not see the prepared data: %q", *task.ID, out)
		}
		env := taskEnvOf(out)
		prepDir := filepath.Join(taskNodeRoot(s, node), "workitems", "prepjob", "job-1", "jobpreparation")
		if env["AZ_BATCH_JOB_PREP_DIR"] != prepDir || env["AZ_BATCH_JOB_PREP_WORKING_DIR"] != filepath.Join(prepDir, "wd") {
			t.Errorf("task %s: AZ_BATCH_JOB_PREP_DIR %q, AZ_BATCH_JOB_PREP_WORKING_DIR %q", *task.ID, env["AZ_BATCH_JOB_PREP_DIR"], env["AZ_BATCH_JOB_PREP_WORKING_DIR"])
		}
	}
	if len(ranOn) != 2 {
		t.Fatalf("tasks ran on %d nodes, want both", len(ranOn))
	}
	// On each node: one preparation, finished before every task started.
	for node := range ranOn {
		log := prepLog(t, s, node, "prep.log")
		if len(log["prep"]) != 1 || len(log["prepend"]) != 1 {
			t.Fatalf("node %s ran the preparation %d times: %v", node, len(log["prep"]), log)
		}
		for _, ts := range log["task"] {
			if ts < log["prepend"][0] {
				t.Errorf("node %s: a task started before the preparation ended", node)
			}
		}
	}

	st := prepStatus(t, s, "prepjob")
	if len(st) != 2 {
		t.Fatalf("status of %d nodes, want 2", len(st))
	}
	for node, e := range st {
		p := e.JobPreparationTaskExecutionInfo
		if *e.PoolID != jobPool || !strings.HasSuffix(*e.NodeURL, "/pools/"+jobPool+"/nodes/"+node) {
			t.Errorf("node %s: pool %s url %s", node, *e.PoolID, *e.NodeURL)
		}
		if p == nil || *p.State != azbatch.JobPreparationTaskStateCompleted || *p.ExitCode != 0 || *p.Result != azbatch.TaskExecutionResultSuccess || *p.RetryCount != 0 || p.EndTime.Before(*p.StartTime) {
			t.Fatalf("node %s: preparation %+v", node, p)
		}
		if *p.TaskRootDirectory != "workitems/prepjob/job-1/jobpreparation" || !strings.HasSuffix(*p.TaskRootDirectoryURL, "/nodes/"+node+"/files/workitems/prepjob/job-1/jobpreparation") {
			t.Errorf("node %s: preparation directory %s %s", node, *p.TaskRootDirectory, *p.TaskRootDirectoryURL)
		}
		if e.JobReleaseTaskExecutionInfo != nil {
			t.Errorf("node %s: a release before the job ended: %+v", node, e.JobReleaseTaskExecutionInfo)
		}
	}

	// Terminate: the job waits in terminating for the release tasks.
	if _, err := s.Client.TerminateJob(ctx(t), "prepjob", nil); err != nil {
		t.Fatal(err)
	}
	if j := jobGet(t, s, "prepjob"); *j.State != azbatch.JobStateTerminating {
		t.Errorf("job %s while its release tasks run, want terminating", *j.State)
	}
	done := jobWaitState(t, s, "prepjob", azbatch.JobStateCompleted, 30*time.Second)
	if *done.ExecutionInfo.TerminationReason != "UserTerminate" {
		t.Errorf("termination reason %s", *done.ExecutionInfo.TerminationReason)
	}
	st = prepStatus(t, s, "prepjob")
	for node := range ranOn {
		r := st[node].JobReleaseTaskExecutionInfo
		if r == nil || *r.State != azbatch.JobReleaseTaskStateCompleted || *r.ExitCode != 0 || *r.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("node %s: release %+v", node, r)
		}
		if *r.TaskRootDirectory != "workitems/prepjob/job-1/jobrelease" || r.EndTime.After(*done.StateTransitionTime) {
			t.Errorf("node %s: release directory %s, ended %v, job completed %v", node, *r.TaskRootDirectory, *r.EndTime, *done.StateTransitionTime)
		}
		if log := prepLog(t, s, node, "prep.log"); len(log["release"]) != 1 {
			t.Errorf("node %s ran the release %d times", node, len(log["release"]))
		}
		if got := prepLines(s, node, "release-prepdir"); len(got) != 1 || got[0] != filepath.Join(taskNodeRoot(s, node), "workitems/prepjob/job-1/jobpreparation") {
			t.Errorf("node %s: release saw AZ_BATCH_JOB_PREP_DIR %v", node, got)
		}
		// The release task's files are the node's, under the job.
		if _, err := s.poolReadNodeFile(t, jobPool, node, "workitems/prepjob/job-1/jobrelease/stdout.txt"); err != nil {
			t.Errorf("node %s: release stdout: %v", node, err)
		}
	}
}

// prepLog parses a log of prepStamp lines in a node's shared directory into
// label -> timestamps.
func prepLog(t testing.TB, s *Server, node, file string) map[string][]int64 {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(taskNodeRoot(s, node), "shared", file))
	out := map[string][]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		label, ts, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("prep.log line %q", line)
		}
		out[label] = append(out[label], n)
	}
	return out
}

// TestJobPrepFailure: with waitForSuccess, a node whose preparation task
// fails for good (after its retries) runs no task of the job: the task
// that waited there goes back to the queue and runs elsewhere. Without
// waitForSuccess the tasks run anyway.
func TestJobPrepFailure(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 2, 1, nil)
	nodes := s.poolNodeIDs(t, jobPool)
	sort.Strings(nodes)
	bad := nodes[0]
	s.CreateJob(t, "prepfail", jobPool, func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("BAD"), Value: to(bad)}}
		c.JobPreparationTask = &azbatch.JobPreparationTask{
			CommandLine: to(`/bin/sh -c '` + prepStamp("prep", "fail.log") + `; test "$AZ_BATCH_NODE_ID" != "$BAD"'`),
			Constraints: &azbatch.TaskConstraints{MaxTaskRetryCount: to[int32](1)},
		}
	})
	var tasks []azbatch.CreateTaskContent
	for i := range 4 {
		tasks = append(tasks, taskCmd(fmt.Sprintf("t%d", i), "/bin/sh -c 'sleep 0.2'"))
	}
	s.AddTasks(t, "prepfail", tasks)
	counts := s.WaitJobTasks(t, "prepfail", time.Minute)
	if *counts.TaskCounts.Succeeded != 4 {
		t.Fatalf("counts %+v", *counts.TaskCounts)
	}
	for _, task := range s.ListTasks(t, "prepfail", nil) {
		if *task.NodeInfo.NodeID == bad {
			t.Errorf("task %s ran on the node whose preparation failed", *task.ID)
		}
	}
	if n := len(prepLog(t, s, bad, "fail.log")["prep"]); n != 2 {
		t.Errorf("the failing preparation ran %d times, want 2 (one retry)", n)
	}
	st := prepStatus(t, s, "prepfail")
	p := st[bad].JobPreparationTaskExecutionInfo
	if p == nil || *p.State != azbatch.JobPreparationTaskStateCompleted || *p.Result != azbatch.TaskExecutionResultFailure ||
		*p.ExitCode != 1 || *p.RetryCount != 1 || p.LastRetryTime == nil || *p.FailureInfo.Code != "FailureExitCode" || *p.FailureInfo.Category != azbatch.ErrorCategoryUserError {
		t.Fatalf("failed preparation status %+v", p)
	}
	if good := st[nodes[1]].JobPreparationTaskExecutionInfo; good == nil || *good.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("good node's preparation %+v", good)
	}

	// waitForSuccess false: the tasks run even where the preparation fails.
	s.CreateJob(t, "prepnowait", jobPool, func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{CommandLine: to("/bin/sh -c 'exit 3'"), WaitForSuccess: to(false)}
	})
	s.AddTasks(t, "prepnowait", []azbatch.CreateTaskContent{taskCmd("a", "true"), taskCmd("b", "true")})
	counts = s.WaitJobTasks(t, "prepnowait", time.Minute)
	if *counts.TaskCounts.Succeeded != 2 {
		t.Fatalf("counts %+v", *counts.TaskCounts)
	}
	eventually(t, 10*time.Second, "failed preparations reported", func() error {
		for node, e := range prepStatus(t, s, "prepnowait") {
			if p := e.JobPreparationTaskExecutionInfo; p == nil || p.ExitCode == nil || *p.ExitCode != 3 {
				return fmt.Errorf("node %s: %+v", node, p)
			}
		}
		return nil
	})
}

// TestJobPrepRestart: a restarted server neither runs a completed
// preparation task again nor loses a release task that was running.
func TestJobPrepRestart(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	node := s.poolNodeIDs(t, jobPool)[0]
	s.CreateJob(t, "preprestart", jobPool, func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{CommandLine: to(`/bin/sh -c '` + prepStamp("prep", "restart.log") + `'`)}
		c.JobReleaseTask = &azbatch.JobReleaseTask{CommandLine: to(`/bin/sh -c 'sleep 2; ` + prepStamp("release", "restart.log") + `'`)}
	})
	taskAdd(t, s, "preprestart", taskCmd("before", "true"))
	s.WaitJobTasks(t, "preprestart", time.Minute)

	s.Kill()
	s.Start()
	taskAdd(t, s, "preprestart", taskCmd("after", "true"))
	s.WaitJobTasks(t, "preprestart", time.Minute)
	if log := prepLog(t, s, node, "restart.log"); len(log["prep"]) != 1 {
		t.Fatalf("the preparation ran %d times across the restart", len(log["prep"]))
	}
	if p := prepStatus(t, s, "preprestart")[node].JobPreparationTaskExecutionInfo; p == nil || *p.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("preparation status after the restart: %+v", p)
	}

	// Restart while the release task runs: the job still completes after it.
	if _, err := s.Client.TerminateJob(ctx(t), "preprestart", nil); err != nil {
		t.Fatal(err)
	}
	jobWaitState(t, s, "preprestart", azbatch.JobStateTerminating, 10*time.Second)
	s.Kill()
	s.Start()
	if j := jobGet(t, s, "preprestart"); *j.State != azbatch.JobStateTerminating {
		t.Errorf("job %s after the restart, want terminating", *j.State)
	}
	jobWaitState(t, s, "preprestart", azbatch.JobStateCompleted, 30*time.Second)
	if log := prepLog(t, s, node, "restart.log"); len(log["release"]) != 1 {
		t.Fatalf("the release ran %d times", len(log["release"]))
	}
	if r := prepStatus(t, s, "preprestart")[node].JobReleaseTaskExecutionInfo; r == nil || *r.State != azbatch.JobReleaseTaskStateCompleted || *r.ExitCode != 0 {
		t.Fatalf("release status %+v", r)
	}
}

// TestJobPrepErrors: Azure's refusals around preparation and release tasks.
func TestJobPrepErrors(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 0, 0, nil)
	create := func(id string, mutate func(*azbatch.CreateJobContent)) error {
		c := azbatch.CreateJobContent{ID: to(id), PoolInfo: &azbatch.PoolInfo{PoolID: to("nopool")}}
		mutate(&c)
		_, err := s.Client.CreateJob(ctx(t), c, nil)
		return err
	}
	err := create("relonly", func(c *azbatch.CreateJobContent) {
		c.JobReleaseTask = &azbatch.JobReleaseTask{CommandLine: to("true")}
	})
	jobAzureError(t, err, 400, "InvalidPropertyValue")
	err = create("longrel", func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{CommandLine: to("true")}
		c.JobReleaseTask = &azbatch.JobReleaseTask{CommandLine: to("true"), MaxWallClockTime: to("PT16M")}
	})
	jobAzureError(t, err, 400, "InvalidPropertyValue")
	err = create("nocmd", func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{}
	})
	jobAzureError(t, err, 400, "MissingRequiredProperty")

	if err := create("ids", func(c *azbatch.CreateJobContent) {
		c.JobPreparationTask = &azbatch.JobPreparationTask{ID: to("setup"), CommandLine: to("true")}
		c.JobReleaseTask = &azbatch.JobReleaseTask{CommandLine: to("true")}
	}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.CreateTask(ctx(t), "ids", taskCmd("setup", "true"), nil)
	jobAzureError(t, err, 409, "TaskIdSameAsJobPreparationTask")
	_, err = s.Client.CreateTask(ctx(t), "ids", taskCmd("jobrelease", "true"), nil)
	jobAzureError(t, err, 409, "TaskIdSameAsJobReleaseTask")
	res, err := s.Client.CreateTaskCollection(ctx(t), "ids", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{taskCmd("setup", "true"), taskCmd("fine", "true")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Value[0]; *r.Status != azbatch.TaskAddStatusClientError || *r.Error.Code != "TaskIdSameAsJobPreparationTask" || *res.Value[1].Status != azbatch.TaskAddStatusSuccess {
		t.Fatalf("collection results %+v %+v", *r.Status, res.Value[1])
	}

	s.CreateJob(t, "plain", "nopool", nil)
	pager := s.Client.NewListJobPreparationAndReleaseTaskStatusPager("plain", nil)
	_, err = pager.NextPage(ctx(t))
	jobAzureError(t, err, 409, "JobPreparationTaskNotSpecified")
	if st := prepStatus(t, s, "ids"); len(st) != 0 {
		t.Fatalf("status of a job that ran nowhere: %v", st)
	}
}
