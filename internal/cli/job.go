package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/cli/progress"
)

func newJobCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Manage jobs",
	}
	cmd.AddCommand(
		newJobCreateCommand(o),
		newJobListCommand(o),
		newJobShowCommand(o),
		newJobTerminateCommand(o),
		newJobDeleteCommand(o),
		newJobWaitCommand(o),
	)
	return cmd
}

func newJobCreateCommand(o *globalOptions) *cobra.Command {
	var (
		jsonFile, id, poolID, displayName, onAll, onFail, maxWall string
		priority, maxRetries, maxParallel                         int32
		usesDeps                                                  bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a job on a pool",
		Long: "Create a job. With --json-file, the file holds Azure's job add JSON (as for `az batch job create --json-file`);\n" +
			"flags given as well override the file's fields.",
		Example: "  kiln job create --id j1 --pool-id p1\n" +
			"  kiln job create --id j1 --pool-id p1 --on-all-tasks-complete terminatejob --priority 100",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&jsonFile, "json-file", "", "file with the job in Azure Batch JSON (- for standard input)")
	f.StringVar(&id, "id", "", "job ID")
	f.StringVar(&poolID, "pool-id", "", "pool to run the job's tasks on")
	f.StringVar(&displayName, "display-name", "", "display name")
	f.Int32Var(&priority, "priority", 0, "priority, -1000 to 1000")
	f.StringVar(&onAll, "on-all-tasks-complete", "", "when all tasks complete: noaction (default) or terminatejob")
	f.StringVar(&onFail, "on-task-failure", "", "when a task fails: noaction (default) or performexitoptionsjobaction")
	f.Int32Var(&maxRetries, "max-task-retry-count", 0, "default retries per task (-1: unlimited)")
	f.StringVar(&maxWall, "max-wall-clock-time", "", "maximum run time of the job (e.g. 2h or PT2H)")
	f.Int32Var(&maxParallel, "max-parallel-tasks", -1, "maximum tasks running at once (-1: no limit)")
	f.BoolVar(&usesDeps, "uses-task-dependencies", false, "tasks of the job may depend on each other")

	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		var job azbatch.CreateJobContent
		if jsonFile != "" {
			b, err := readJSONFile(cmd, jsonFile)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &job); err != nil {
				return fmt.Errorf("%s: %w", jsonFile, err)
			}
		}
		changed := cmd.Flags().Changed
		if changed("id") || job.ID == nil {
			job.ID = optString(id)
		}
		if poolID != "" {
			job.PoolInfo = &azbatch.PoolInfo{PoolID: ptr(poolID)}
		}
		if changed("display-name") {
			job.DisplayName = ptr(displayName)
		}
		if changed("priority") {
			job.Priority = ptr(priority)
		}
		if onAll != "" {
			v, err := parseEnum(onAll, "--on-all-tasks-complete", azbatch.PossibleOnAllTasksCompleteValues())
			if err != nil {
				return err
			}
			job.OnAllTasksComplete = &v
		}
		if onFail != "" {
			v, err := parseEnum(onFail, "--on-task-failure", azbatch.PossibleOnTaskFailureValues())
			if err != nil {
				return err
			}
			job.OnTaskFailure = &v
		}
		if changed("max-task-retry-count") || maxWall != "" {
			if job.Constraints == nil {
				job.Constraints = &azbatch.JobConstraints{}
			}
			if changed("max-task-retry-count") {
				job.Constraints.MaxTaskRetryCount = ptr(maxRetries)
			}
			if maxWall != "" {
				d, err := isoDuration(maxWall)
				if err != nil {
					return fmt.Errorf("--max-wall-clock-time: %w", err)
				}
				job.Constraints.MaxWallClockTime = &d
			}
		}
		if changed("max-parallel-tasks") {
			job.MaxParallelTasks = ptr(maxParallel)
		}
		if changed("uses-task-dependencies") {
			job.UsesTaskDependencies = ptr(usesDeps)
		}
		if job.ID == nil || *job.ID == "" {
			return errors.New("--id is required (or an \"id\" in --json-file)")
		}
		if job.PoolInfo == nil {
			return errors.New("--pool-id is required (or a \"poolInfo\" in --json-file)")
		}

		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.CreateJob(ctx, job, nil); err != nil {
			return err
		}
		got, err := client.GetJob(ctx, *job.ID, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Job, func(w io.Writer) error { return writeJobTable(w, []azbatch.Job{got.Job}) })
	})
	return cmd
}

func newJobListCommand(o *globalOptions) *cobra.Command {
	var filter, sel string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"state eq 'active'\"")
	cmd.Flags().StringVar(&sel, "select", "", "OData $select: comma-separated properties to return")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListJobsPager(&azbatch.ListJobsOptions{Filter: optString(filter), SelectParam: splitList(sel)})
		var jobs []azbatch.Job
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			jobs = append(jobs, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), jobs, func(w io.Writer) error { return writeJobTable(w, jobs) })
	})
	return cmd
}

func newJobShowCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show [JOB_ID]",
		Short: "Show a job",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("job-id", "", "job ID")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.GetJob(ctx, id, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Job, func(w io.Writer) error { return writeJobDetails(w, got.Job) })
	})
	return cmd
}

func newJobTerminateCommand(o *globalOptions) *cobra.Command {
	var reason string
	var force bool
	cmd := &cobra.Command{
		Use:   "terminate [JOB_ID]",
		Short: "Terminate a job and its running tasks",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("job-id", "", "job ID")
	cmd.Flags().StringVar(&reason, "reason", "", "termination reason recorded on the job (default UserTerminate)")
	cmd.Flags().BoolVar(&force, "force", false, "terminate even if the job is being deleted or is already terminating")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		opts := &azbatch.TerminateJobOptions{}
		if reason != "" {
			opts.Parameters = &azbatch.TerminateJobContent{TerminationReason: &reason}
		}
		if force {
			opts.Force = ptr(true)
		}
		if _, err := client.TerminateJob(ctx, id, opts); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Terminating job %s.", id)
		return nil
	})
	return cmd
}

func newJobDeleteCommand(o *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete [JOB_ID]",
		Short: "Delete a job and its tasks",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("job-id", "", "job ID")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-id")
		if err != nil {
			return err
		}
		if err := confirm(cmd, yes, fmt.Sprintf("Delete job %s and all its tasks?", id)); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.DeleteJob(ctx, id, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Deleting job %s.", id)
		return nil
	})
	return cmd
}

func newJobWaitCommand(o *globalOptions) *cobra.Command {
	var (
		timeout     time.Duration
		failOnTasks bool
	)
	cmd := &cobra.Command{
		Use:   "wait [JOB_ID]",
		Short: "Wait for all tasks of a job to complete, showing progress",
		Long: "Wait until every task of the job has completed (none active or running, and at least one task),\n" +
			"or the job itself has completed. Progress goes to standard output (standard error with -o json,\n" +
			"which then prints the final task counts).",
		Args: cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("job-id", "", "job ID")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long, e.g. 30m (0: no limit)")
	cmd.Flags().BoolVar(&failOnTasks, "fail-on-task-failure", false, "exit with status 1 if any task failed")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		res, err := waitJob(ctx, client, id, timeout, progress.New(o.progressWriter(cmd)), pollInterval)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		c := countsOf(res.TaskCounts)
		if err := o.printResult(w, res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Job %s: %d of %d tasks completed, %d succeeded, %d failed.\n", id, c.Completed, c.total(), c.Succeeded, c.Failed)
			return err
		}); err != nil {
			return err
		}
		if failOnTasks && c.Failed > 0 {
			return &ExitError{Code: 1, Err: fmt.Errorf("job %s: %d task(s) failed", id, c.Failed)}
		}
		return nil
	})
	return cmd
}

// jobWaiter is the part of *azbatch.Client that job wait uses.
type jobWaiter interface {
	GetJobTaskCounts(ctx context.Context, jobID string, options *azbatch.GetJobTaskCountsOptions) (azbatch.GetJobTaskCountsResponse, error)
	GetJob(ctx context.Context, jobID string, options *azbatch.GetJobOptions) (azbatch.GetJobResponse, error)
}

// waitJob polls the job's task counts (and its state) every interval until
// jobDone, reporting progress on rep.
func waitJob(ctx context.Context, client jobWaiter, id string, timeout time.Duration, rep *progress.Reporter, interval time.Duration) (azbatch.TaskCountsResult, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fail := func(err error) (azbatch.TaskCountsResult, error) {
		rep.Abort()
		if timeout > 0 && errors.Is(err, context.DeadlineExceeded) {
			return azbatch.TaskCountsResult{}, fmt.Errorf("timed out after %s waiting for job %s", timeout, id)
		}
		return azbatch.TaskCountsResult{}, err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		job, err := client.GetJob(ctx, id, nil)
		if err != nil {
			return fail(err)
		}
		counts, err := client.GetJobTaskCounts(ctx, id, nil)
		if err != nil {
			return fail(err)
		}
		c := countsOf(counts.TaskCounts)
		if jobDone(c, job.State) {
			rep.Finish(taskCountsLine(c))
			return counts.TaskCountsResult, nil
		}
		rep.Update(taskCountsLine(c))
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-tick.C:
		}
	}
}

// taskCounts is azbatch.TaskCounts without pointers.
type taskCounts struct {
	Active, Running, Completed, Succeeded, Failed int
}

func (c taskCounts) total() int { return c.Active + c.Running + c.Completed }

func countsOf(tc *azbatch.TaskCounts) taskCounts {
	if tc == nil {
		return taskCounts{}
	}
	return taskCounts{
		Active:    i32(tc.Active),
		Running:   i32(tc.Running),
		Completed: i32(tc.Completed),
		Succeeded: i32(tc.Succeeded),
		Failed:    i32(tc.Failed),
	}
}

// jobDone: all tasks completed (none active or running, at least one task),
// or the job itself completed.
func jobDone(c taskCounts, state *azbatch.JobState) bool {
	if state != nil && *state == azbatch.JobStateCompleted {
		return true
	}
	return c.Active+c.Running == 0 && c.total() > 0
}

// taskCountsLine is the progress status of job wait, e.g.
// "[###...] 40%  4/10 completed  2 running  4 active  3 succeeded  1 failed".
func taskCountsLine(c taskCounts) string {
	total := c.total()
	return fmt.Sprintf("%s %3d%%  %d/%d completed  %d running  %d active  %d succeeded  %d failed",
		progress.Bar(c.Completed, total, 0), progress.Percent(c.Completed, total), c.Completed, total,
		c.Running, c.Active, c.Succeeded, c.Failed)
}

// writeJobTable prints jobs as: ID, STATE, POOL, PRIORITY, CREATED.
func writeJobTable(w io.Writer, jobs []azbatch.Job) error {
	t := output.NewTable(w, "ID", "STATE", "POOL", "PRIORITY", "CREATED")
	for _, j := range jobs {
		t.Row(output.Str(j.ID), output.Str(j.State), jobPool(j), output.Int(j.Priority), output.Time(j.CreationTime))
	}
	return t.Flush()
}

func jobPool(j azbatch.Job) string {
	if j.PoolInfo != nil && j.PoolInfo.PoolID != nil {
		return *j.PoolInfo.PoolID
	}
	if j.ExecutionInfo != nil && j.ExecutionInfo.PoolID != nil {
		return *j.ExecutionInfo.PoolID
	}
	return ""
}

func writeJobDetails(w io.Writer, j azbatch.Job) error {
	var maxRetries, maxWall string
	if c := j.Constraints; c != nil {
		maxRetries = output.Int(c.MaxTaskRetryCount)
		maxWall = durationText(c.MaxWallClockTime)
	}
	var started, ended, reason, schedErr string
	if e := j.ExecutionInfo; e != nil {
		started = output.Time(e.StartTime)
		ended = output.Time(e.EndTime)
		reason = output.Str(e.TerminationReason)
		if se := e.SchedulingError; se != nil {
			schedErr = failureText(&azbatch.TaskFailureInfo{Category: se.Category, Code: se.Code, Message: se.Message, Details: se.Details})
		}
	}
	return output.Details(w,
		[2]string{"ID", output.Str(j.ID)},
		[2]string{"Display name", output.Str(j.DisplayName)},
		[2]string{"State", output.Str(j.State)},
		[2]string{"Pool", jobPool(j)},
		[2]string{"Priority", output.Int(j.Priority)},
		[2]string{"On all tasks complete", output.Str(j.OnAllTasksComplete)},
		[2]string{"On task failure", output.Str(j.OnTaskFailure)},
		[2]string{"Max task retries", maxRetries},
		[2]string{"Max wall clock time", maxWall},
		[2]string{"Max parallel tasks", output.Int(j.MaxParallelTasks)},
		[2]string{"Uses task dependencies", output.Bool(j.UsesTaskDependencies)},
		[2]string{"Created", output.Time(j.CreationTime)},
		[2]string{"Started", started},
		[2]string{"Ended", ended},
		[2]string{"Termination reason", reason},
		[2]string{"Scheduling error", schedErr},
	)
}
