package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/cli/progress"
)

// TaskCollectionMax is the most tasks Azure Batch accepts in one add task
// collection request; larger --json-file arrays are sent in chunks this size.
const TaskCollectionMax = 100

// taskAddAttempts is how often a task refused with a server error is sent.
const taskAddAttempts = 3

// commandLineWidth is where the task table cuts command lines.
const commandLineWidth = 60

func newTaskCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Manage the tasks of a job",
	}
	cmd.AddCommand(
		newTaskCreateCommand(o),
		newTaskListCommand(o),
		newTaskShowCommand(o),
		newTaskDeleteCommand(o),
		newTaskTerminateCommand(o),
		newTaskReactivateCommand(o),
		newTaskFileCommand(o),
	)
	return cmd
}

// taskFlagNames are the create flags that describe one task; they cannot be
// combined with a --json-file holding several tasks.
var taskFlagNames = []string{"task-id", "command-line", "display-name", "env", "max-wall-clock-time", "max-task-retry-count", "retention-time", "required-slots"}

func newTaskCreateCommand(o *globalOptions) *cobra.Command {
	var (
		jobID, jsonFile, taskID, commandLine, displayName, maxWall, retention string
		env                                                                   []string
		maxRetries, slots                                                     int32
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Add one task, or many from a JSON file, to a job",
		Long: "Add a task to a job. With --json-file, the file holds Azure's task add JSON: one task (an object),\n" +
			"or many (an array, or {\"value\": [...]}), which are sent in chunks of 100 and reported one by one.\n" +
			"Flags given with a single-task file override its fields.",
		Example: "  kiln task create --job-id j1 --task-id t1 --command-line \"/bin/sh -c 'echo hello'\"\n" +
			"  kiln task create --job-id j1 --task-id t2 --command-line ./run.sh --env MODE=fast --max-wall-clock-time 10m\n" +
			"  kiln task create --job-id j1 --json-file tasks.json",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&jobID, "job-id", "", "job ID (required)")
	f.StringVar(&jsonFile, "json-file", "", "file with one task (object) or many (array) in Azure Batch JSON (- for standard input)")
	f.StringVar(&taskID, "task-id", "", "task ID")
	f.StringVar(&commandLine, "command-line", "", "command line (not run in a shell: use /bin/sh -c '...' for shell features)")
	f.StringVar(&displayName, "display-name", "", "display name")
	f.StringArrayVar(&env, "env", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringVar(&maxWall, "max-wall-clock-time", "", "maximum run time (e.g. 10m, 1h30m or PT1H30M)")
	f.Int32Var(&maxRetries, "max-task-retry-count", 0, "retries after a non-zero exit (-1: unlimited)")
	f.StringVar(&retention, "retention-time", "", "how long to keep the task directory after it completes (e.g. 7d or P7D)")
	f.Int32Var(&slots, "required-slots", 1, "task slots the task needs on a node")

	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if jobID == "" {
			return errors.New("--job-id is required")
		}
		var tasks []azbatch.CreateTaskContent
		many := false
		if jsonFile != "" {
			b, err := readJSONFile(cmd, jsonFile)
			if err != nil {
				return err
			}
			if tasks, many, err = parseTaskJSON(b); err != nil {
				return fmt.Errorf("%s: %w", jsonFile, err)
			}
		} else {
			tasks = []azbatch.CreateTaskContent{{}}
		}
		if many {
			for _, name := range taskFlagNames {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s cannot be used with a --json-file holding several tasks", name)
				}
			}
		} else {
			t := &tasks[0]
			changed := cmd.Flags().Changed
			if changed("task-id") || t.ID == nil {
				t.ID = optString(taskID)
			}
			if changed("command-line") || t.CommandLine == nil {
				t.CommandLine = optString(commandLine)
			}
			if changed("display-name") {
				t.DisplayName = ptr(displayName)
			}
			if len(env) > 0 {
				kvs, err := parseEnv(env)
				if err != nil {
					return err
				}
				for _, kv := range kvs {
					t.EnvironmentSettings = setEnv(t.EnvironmentSettings, kv[0], kv[1])
				}
			}
			if changed("max-wall-clock-time") || changed("max-task-retry-count") || changed("retention-time") {
				if t.Constraints == nil {
					t.Constraints = &azbatch.TaskConstraints{}
				}
				if changed("max-wall-clock-time") {
					d, err := isoDuration(maxWall)
					if err != nil {
						return fmt.Errorf("--max-wall-clock-time: %w", err)
					}
					t.Constraints.MaxWallClockTime = &d
				}
				if changed("retention-time") {
					d, err := isoDuration(retention)
					if err != nil {
						return fmt.Errorf("--retention-time: %w", err)
					}
					t.Constraints.RetentionTime = &d
				}
				if changed("max-task-retry-count") {
					t.Constraints.MaxTaskRetryCount = ptr(maxRetries)
				}
			}
			if changed("required-slots") {
				t.RequiredSlots = ptr(slots)
			}
			if t.ID == nil || *t.ID == "" {
				return errors.New("--task-id is required (or an \"id\" in --json-file)")
			}
			if t.CommandLine == nil || *t.CommandLine == "" {
				return errors.New("--command-line is required (or a \"commandLine\" in --json-file)")
			}
		}

		client, err := o.client()
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if !many {
			if _, err := client.CreateTask(ctx, jobID, tasks[0], nil); err != nil {
				return err
			}
			got, err := client.GetTask(ctx, jobID, *tasks[0].ID, nil)
			if err != nil {
				return err
			}
			return o.printResult(w, got.Task, func(w io.Writer) error { return writeTaskTable(w, []azbatch.Task{got.Task}) })
		}

		var rep *progress.Reporter
		if len(tasks) > TaskCollectionMax {
			rep = progress.New(o.progressWriter(cmd))
		}
		results, addErr := addTasks(ctx, client, jobID, tasks, func(done, total int) {
			if rep != nil {
				rep.Update(fmt.Sprintf("%s %d/%d tasks sent", progress.Bar(done, total, 0), done, total))
			}
		})
		if rep != nil {
			if addErr != nil {
				rep.Abort()
			} else {
				rep.Finish(fmt.Sprintf("%s %d/%d tasks sent", progress.Bar(len(tasks), len(tasks), 0), len(tasks), len(tasks)))
			}
		}
		if err := o.printResult(w, results, func(w io.Writer) error { return writeTaskAddTable(w, results) }); err != nil {
			return err
		}
		if addErr != nil {
			return addErr
		}
		if failed := countFailedAdds(results); failed > 0 {
			return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d tasks were not added", failed, len(tasks))}
		}
		return nil
	})
	return cmd
}

func setEnv(list []azbatch.EnvironmentSetting, name, value string) []azbatch.EnvironmentSetting {
	for i := range list {
		if list[i].Name != nil && *list[i].Name == name {
			list[i].Value = ptr(value)
			return list
		}
	}
	return append(list, azbatch.EnvironmentSetting{Name: ptr(name), Value: ptr(value)})
}

// parseTaskJSON reads a --json-file for task create: one task (a JSON
// object), or many (an array, or Azure's task collection {"value": [...]}).
// many reports whether the file held a collection. Every task needs an id
// and a commandLine, and ids must be unique (case-insensitively, as Azure
// compares them).
func parseTaskJSON(b []byte) (tasks []azbatch.CreateTaskContent, many bool, err error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, false, errors.New("empty file")
	}
	switch b[0] {
	case '[':
		if err := json.Unmarshal(b, &tasks); err != nil {
			return nil, false, err
		}
		many = true
	case '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, false, err
		}
		_, hasValue := probe["value"]
		_, hasCmd := probe["commandLine"]
		if hasValue && !hasCmd {
			var group azbatch.TaskGroup
			if err := json.Unmarshal(b, &group); err != nil {
				return nil, false, err
			}
			tasks, many = group.Value, true
		} else {
			var t azbatch.CreateTaskContent
			if err := json.Unmarshal(b, &t); err != nil {
				return nil, false, err
			}
			return []azbatch.CreateTaskContent{t}, false, nil
		}
	default:
		return nil, false, errors.New("want a JSON object (one task) or array (many tasks)")
	}
	if len(tasks) == 0 {
		return nil, true, errors.New("no tasks in file")
	}
	seen := make(map[string]int, len(tasks))
	for i, t := range tasks {
		if t.ID == nil || *t.ID == "" {
			return nil, true, fmt.Errorf("task at index %d: missing \"id\"", i)
		}
		if t.CommandLine == nil || *t.CommandLine == "" {
			return nil, true, fmt.Errorf("task %q (index %d): missing \"commandLine\"", *t.ID, i)
		}
		key := strings.ToLower(*t.ID)
		if j, dup := seen[key]; dup {
			return nil, true, fmt.Errorf("task %q (index %d): same id as index %d", *t.ID, i, j)
		}
		seen[key] = i
	}
	return tasks, true, nil
}

// chunkTasks splits tasks into slices of at most size, in order.
func chunkTasks(tasks []azbatch.CreateTaskContent, size int) [][]azbatch.CreateTaskContent {
	if size <= 0 {
		size = TaskCollectionMax
	}
	var out [][]azbatch.CreateTaskContent
	for len(tasks) > 0 {
		n := min(size, len(tasks))
		out = append(out, tasks[:n:n])
		tasks = tasks[n:]
	}
	return out
}

type taskAdder interface {
	CreateTaskCollection(ctx context.Context, jobID string, taskCollection azbatch.TaskGroup, options *azbatch.CreateTaskCollectionOptions) (azbatch.CreateTaskCollectionResponse, error)
}

// addTasks adds tasks with add task collection requests of at most
// TaskCollectionMax tasks, returning one result per task in input order.
// Tasks refused with a server error are sent again (taskAddAttempts in all);
// a chunk refused as RequestBodyTooLarge is split in two. A request that
// fails as a whole stops the work: the results so far come back with the
// error (tasks never sent have no entry). progress, if not nil, is called
// after each request with the number of tasks settled.
func addTasks(ctx context.Context, c taskAdder, jobID string, tasks []azbatch.CreateTaskContent, onProgress func(done, total int)) ([]azbatch.TaskAddResult, error) {
	results := make([]*azbatch.TaskAddResult, len(tasks))
	settled := 0
	collect := func() []azbatch.TaskAddResult {
		out := make([]azbatch.TaskAddResult, 0, len(tasks))
		for _, r := range results {
			if r != nil {
				out = append(out, *r)
			}
		}
		return out
	}

	// send adds the tasks at idx (indices into tasks) in one request, retrying
	// server errors and splitting when the body is too large.
	var send func(idx []int) error
	send = func(idx []int) error {
		pending := idx
		for attempt := 1; len(pending) > 0; attempt++ {
			group := azbatch.TaskGroup{Value: make([]azbatch.CreateTaskContent, len(pending))}
			for i, k := range pending {
				group.Value[i] = tasks[k]
			}
			resp, err := c.CreateTaskCollection(ctx, jobID, group, nil)
			if err != nil {
				var re *azcore.ResponseError
				if errors.As(err, &re) && re.ErrorCode == "RequestBodyTooLarge" && len(pending) > 1 {
					half := len(pending) / 2
					if err := send(pending[:half]); err != nil {
						return err
					}
					return send(pending[half:])
				}
				return err
			}
			// Match results to tasks by id; each result is used once.
			byID := make(map[string][]azbatch.TaskAddResult, len(resp.Value))
			for _, r := range resp.Value {
				id := strings.ToLower(output.Str(r.TaskID))
				byID[id] = append(byID[id], r)
			}
			var retry []int
			for _, k := range pending {
				id := strings.ToLower(output.Str(tasks[k].ID))
				rs := byID[id]
				if len(rs) == 0 {
					results[k] = &azbatch.TaskAddResult{
						TaskID: tasks[k].ID,
						Status: ptr(azbatch.TaskAddStatusServerError),
						Error:  &azbatch.Error{Code: ptr("NoResult"), Message: &azbatch.ErrorMessage{Value: ptr("the server returned no result for this task")}},
					}
				} else {
					r := rs[0]
					byID[id] = rs[1:]
					results[k] = &r
				}
				if s := results[k].Status; s != nil && *s == azbatch.TaskAddStatusServerError && attempt < taskAddAttempts {
					retry = append(retry, k)
				} else {
					settled++
				}
			}
			if onProgress != nil {
				onProgress(settled, len(tasks))
			}
			pending = retry
			if len(pending) > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
				}
			}
		}
		return nil
	}

	next := 0
	for _, chunk := range chunkTasks(tasks, TaskCollectionMax) {
		idx := make([]int, len(chunk))
		for i := range chunk {
			idx[i] = next + i
		}
		next += len(chunk)
		if err := send(idx); err != nil {
			return collect(), err
		}
	}
	return collect(), nil
}

func countFailedAdds(results []azbatch.TaskAddResult) int {
	n := 0
	for _, r := range results {
		if r.Status == nil || *r.Status != azbatch.TaskAddStatusSuccess {
			n++
		}
	}
	return n
}

// writeTaskAddTable prints add task collection results: TASK ID, STATUS, ERROR.
func writeTaskAddTable(w io.Writer, results []azbatch.TaskAddResult) error {
	t := output.NewTable(w, "TASK ID", "STATUS", "ERROR")
	for _, r := range results {
		var errText string
		if e := r.Error; e != nil {
			errText = output.Str(e.Code)
			if e.Message != nil && e.Message.Value != nil {
				errText += ": " + *e.Message.Value
			}
		}
		t.Row(output.Str(r.TaskID), output.Str(r.Status), errText)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if failed := countFailedAdds(results); failed == 0 {
		_, err := fmt.Fprintf(w, "%d tasks added.\n", len(results))
		return err
	}
	return nil
}

func newTaskListCommand(o *globalOptions) *cobra.Command {
	var jobID, filter, sel string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tasks of a job",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&jobID, "job-id", "", "job ID (required)")
	cmd.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"state eq 'completed'\"")
	cmd.Flags().StringVar(&sel, "select", "", "OData $select: comma-separated properties to return, e.g. id,state")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if jobID == "" {
			return errors.New("--job-id is required")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListTasksPager(jobID, &azbatch.ListTasksOptions{Filter: optString(filter), SelectParam: splitList(sel)})
		var tasks []azbatch.Task
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			tasks = append(tasks, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), tasks, func(w io.Writer) error { return writeTaskTable(w, tasks) })
	})
	return cmd
}

// taskCommand builds the commands that act on one task, identified by
// --job-id and --task-id (or a positional TASK_ID).
func (o *globalOptions) taskCommand(use, short string, act func(ctx context.Context, cmd *cobra.Command, jobID, taskID string) error) *cobra.Command {
	var jobID string
	cmd := &cobra.Command{
		Use:   use + " [TASK_ID]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVar(&jobID, "job-id", "", "job ID (required)")
	cmd.Flags().String("task-id", "", "task ID")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if jobID == "" {
			return errors.New("--job-id is required")
		}
		taskID, err := idFrom(cmd, args, "task-id")
		if err != nil {
			return err
		}
		return act(ctx, cmd, jobID, taskID)
	})
	return cmd
}

func newTaskShowCommand(o *globalOptions) *cobra.Command {
	return o.taskCommand("show", "Show a task", func(ctx context.Context, cmd *cobra.Command, jobID, taskID string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.GetTask(ctx, jobID, taskID, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Task, func(w io.Writer) error { return writeTaskDetails(w, got.Task) })
	})
}

func newTaskDeleteCommand(o *globalOptions) *cobra.Command {
	var yes bool
	cmd := o.taskCommand("delete", "Delete a task", func(ctx context.Context, cmd *cobra.Command, jobID, taskID string) error {
		if err := confirm(cmd, yes, fmt.Sprintf("Delete task %s of job %s?", taskID, jobID)); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.DeleteTask(ctx, jobID, taskID, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Deleted task %s of job %s.", taskID, jobID)
		return nil
	})
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func newTaskTerminateCommand(o *globalOptions) *cobra.Command {
	return o.taskCommand("terminate", "Terminate a task", func(ctx context.Context, cmd *cobra.Command, jobID, taskID string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.TerminateTask(ctx, jobID, taskID, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Terminated task %s of job %s.", taskID, jobID)
		return nil
	})
}

func newTaskReactivateCommand(o *globalOptions) *cobra.Command {
	return o.taskCommand("reactivate", "Run a failed task again", func(ctx context.Context, cmd *cobra.Command, jobID, taskID string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.ReactivateTask(ctx, jobID, taskID, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Reactivated task %s of job %s.", taskID, jobID)
		return nil
	})
}

// writeTaskTable prints tasks as: ID, STATE, EXIT CODE, NODE, COMMAND LINE
// (cut to commandLineWidth).
func writeTaskTable(w io.Writer, tasks []azbatch.Task) error {
	t := output.NewTable(w, "ID", "STATE", "EXIT CODE", "NODE", "COMMAND LINE")
	for _, task := range tasks {
		var exit, node string
		if e := task.ExecutionInfo; e != nil {
			exit = output.Int(e.ExitCode)
		}
		if n := task.NodeInfo; n != nil {
			node = output.Str(n.NodeID)
		}
		t.Row(output.Str(task.ID), output.Str(task.State), exit, node, output.Truncate(output.Str(task.CommandLine), commandLineWidth))
	}
	return t.Flush()
}

func writeTaskDetails(w io.Writer, t azbatch.Task) error {
	var exit, result, failure, started, ended, retries, requeues string
	if e := t.ExecutionInfo; e != nil {
		exit = output.Int(e.ExitCode)
		result = output.Str(e.Result)
		failure = failureText(e.FailureInfo)
		started = output.Time(e.StartTime)
		ended = output.Time(e.EndTime)
		retries = output.Int(e.RetryCount)
		requeues = output.Int(e.RequeueCount)
	}
	var node, pool, dir string
	if n := t.NodeInfo; n != nil {
		node = output.Str(n.NodeID)
		pool = output.Str(n.PoolID)
		dir = output.Str(n.TaskRootDirectory)
	}
	var maxWall, maxRetries, retention string
	if c := t.Constraints; c != nil {
		maxWall = durationText(c.MaxWallClockTime)
		maxRetries = output.Int(c.MaxTaskRetryCount)
		retention = output.Str(c.RetentionTime)
	}
	env := make([]string, 0, len(t.EnvironmentSettings))
	for _, e := range t.EnvironmentSettings {
		env = append(env, output.Str(e.Name)+"="+output.Str(e.Value))
	}
	return output.Details(w,
		[2]string{"ID", output.Str(t.ID)},
		[2]string{"Display name", output.Str(t.DisplayName)},
		[2]string{"State", output.Str(t.State)},
		[2]string{"Command line", output.Str(t.CommandLine)},
		[2]string{"Environment", strings.Join(env, " ")},
		[2]string{"Required slots", output.Int(t.RequiredSlots)},
		[2]string{"Exit code", exit},
		[2]string{"Result", result},
		[2]string{"Failure", failure},
		[2]string{"Node", node},
		[2]string{"Pool", pool},
		[2]string{"Task directory", dir},
		[2]string{"Retries", retries},
		[2]string{"Requeues", requeues},
		[2]string{"Max retries", maxRetries},
		[2]string{"Max wall clock time", maxWall},
		[2]string{"Retention time", retention},
		[2]string{"Created", output.Time(t.CreationTime)},
		[2]string{"Started", started},
		[2]string{"Ended", ended},
	)
}
