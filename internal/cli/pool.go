package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/cli/progress"
)

// VMSizeDefault is the vmSize sent by `kiln pool create` when neither
// --vm-size nor the JSON file gives one (Azure requires the field).
const VMSizeDefault = "standard_d2s_v3"

// pollInterval is how often waiting commands poll the server.
const pollInterval = 250 * time.Millisecond

func newPoolCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Manage pools of compute nodes",
	}
	cmd.AddCommand(
		newPoolCreateCommand(o),
		newPoolListCommand(o),
		newPoolShowCommand(o),
		newPoolResizeCommand(o),
		newPoolDeleteCommand(o),
		newPoolAutoScaleCommand(o),
		newPoolJoinTokenCommand(o), // pool_join_token.go
	)
	return cmd
}

func newPoolCreateCommand(o *globalOptions) *cobra.Command {
	var (
		jsonFile, id, vmSize, displayName, startCmd string
		dedicated, lowPriority, slots               int32
		startWait                                   bool
		metadata                                    []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a pool",
		Long: "Create a pool. With --json-file, the file holds Azure's pool add JSON (as for `az batch pool create --json-file`);\n" +
			"flags given as well override the file's fields.",
		Example: "  kiln pool create --id p1 --target-dedicated-nodes 2 --task-slots-per-node 4\n" +
			"  kiln pool create --json-file pool.json",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&jsonFile, "json-file", "", "file with the pool in Azure Batch JSON (- for standard input)")
	f.StringVar(&id, "id", "", "pool ID")
	f.StringVar(&vmSize, "vm-size", VMSizeDefault, "VM size")
	f.StringVar(&displayName, "display-name", "", "display name")
	f.Int32Var(&dedicated, "target-dedicated-nodes", 0, "desired number of dedicated nodes")
	f.Int32Var(&lowPriority, "target-low-priority-nodes", 0, "desired number of low-priority nodes")
	f.Int32Var(&slots, "task-slots-per-node", 1, "task slots (concurrent tasks) per node")
	f.StringVar(&startCmd, "start-task-command-line", "", "command line of the start task run on each node as it joins")
	f.BoolVar(&startWait, "start-task-wait-for-success", false, "wait for the start task to succeed before scheduling tasks on a node")
	f.StringArrayVar(&metadata, "metadata", nil, "metadata item NAME=VALUE (repeatable), e.g. kiln.provider=agents for nodes that join from other machines")

	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		var pool azbatch.CreatePoolContent
		fromFile := jsonFile != ""
		if fromFile {
			b, err := readJSONFile(cmd, jsonFile)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &pool); err != nil {
				return fmt.Errorf("%s: %w", jsonFile, err)
			}
		}
		set := func(name string) bool { return !fromFile || cmd.Flags().Changed(name) }
		if cmd.Flags().Changed("id") || pool.ID == nil {
			pool.ID = optString(id)
		}
		if set("vm-size") || pool.VMSize == nil {
			pool.VMSize = ptr(vmSize)
		}
		if cmd.Flags().Changed("display-name") {
			pool.DisplayName = ptr(displayName)
		}
		autoScale := pool.EnableAutoScale != nil && *pool.EnableAutoScale
		if (set("target-dedicated-nodes") && !autoScale) || cmd.Flags().Changed("target-dedicated-nodes") {
			pool.TargetDedicatedNodes = ptr(dedicated)
		}
		if cmd.Flags().Changed("target-low-priority-nodes") {
			pool.TargetLowPriorityNodes = ptr(lowPriority)
		}
		if set("task-slots-per-node") {
			pool.TaskSlotsPerNode = ptr(slots)
		}
		if startCmd != "" {
			if pool.StartTask == nil {
				pool.StartTask = &azbatch.StartTask{}
			}
			pool.StartTask.CommandLine = ptr(startCmd)
		}
		if cmd.Flags().Changed("start-task-wait-for-success") {
			if pool.StartTask == nil {
				return errors.New("--start-task-wait-for-success needs a start task: pass --start-task-command-line")
			}
			pool.StartTask.WaitForSuccess = ptr(startWait)
		}
		if pool.ID == nil || *pool.ID == "" {
			return errors.New("--id is required (or an \"id\" in --json-file)")
		}
		if err := addMetadata(&pool.Metadata, metadata); err != nil { // pool_join_token.go
			return err
		}

		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.CreatePool(ctx, pool, nil); err != nil {
			return err
		}
		got, err := client.GetPool(ctx, *pool.ID, nil)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		return o.printResult(w, got.Pool, func(w io.Writer) error { return writePoolTable(w, []azbatch.Pool{got.Pool}) })
	})
	return cmd
}

func newPoolListCommand(o *globalOptions) *cobra.Command {
	var filter, sel string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pools",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"state eq 'active'\"")
	cmd.Flags().StringVar(&sel, "select", "", "OData $select: comma-separated properties to return")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListPoolsPager(&azbatch.ListPoolsOptions{Filter: optString(filter), SelectParam: splitList(sel)})
		var pools []azbatch.Pool
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			pools = append(pools, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), pools, func(w io.Writer) error { return writePoolTable(w, pools) })
	})
	return cmd
}

func newPoolShowCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show [POOL_ID]",
		Short: "Show a pool",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("pool-id", "", "pool ID")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "pool-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.GetPool(ctx, id, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Pool, func(w io.Writer) error { return writePoolDetails(w, got.Pool) })
	})
	return cmd
}

func newPoolResizeCommand(o *globalOptions) *cobra.Command {
	var (
		dedicated, lowPriority int32
		dealloc, resizeTimeout string
		wait                   bool
		timeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "resize [POOL_ID]",
		Short: "Change the number of nodes in a pool",
		Example: "  kiln pool resize --pool-id p1 --target-dedicated-nodes 4 --wait\n" +
			"  kiln pool resize --pool-id p1 --target-dedicated-nodes 0 --node-deallocation-option taskcompletion",
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	f.String("pool-id", "", "pool ID")
	f.Int32Var(&dedicated, "target-dedicated-nodes", 0, "desired number of dedicated nodes")
	f.Int32Var(&lowPriority, "target-low-priority-nodes", 0, "desired number of low-priority nodes")
	f.StringVar(&dealloc, "node-deallocation-option", "", "when shrinking, what to do with running tasks: requeue, terminate, taskcompletion or retaineddata")
	f.StringVar(&resizeTimeout, "resize-timeout", "", "timeout for the resize (e.g. 15m or PT15M)")
	f.BoolVar(&wait, "wait", false, "wait until the pool's allocation state is steady, showing progress")
	f.DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (0: no limit)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "pool-id")
		if err != nil {
			return err
		}
		var content azbatch.ResizePoolContent
		if !cmd.Flags().Changed("target-dedicated-nodes") && !cmd.Flags().Changed("target-low-priority-nodes") {
			return errors.New("--target-dedicated-nodes or --target-low-priority-nodes is required")
		}
		if cmd.Flags().Changed("target-dedicated-nodes") {
			content.TargetDedicatedNodes = ptr(dedicated)
		}
		if cmd.Flags().Changed("target-low-priority-nodes") {
			content.TargetLowPriorityNodes = ptr(lowPriority)
		}
		if dealloc != "" {
			opt, err := parseEnum(dealloc, "--node-deallocation-option", azbatch.PossibleNodeDeallocationOptionValues())
			if err != nil {
				return err
			}
			content.NodeDeallocationOption = &opt
		}
		if resizeTimeout != "" {
			d, err := isoDuration(resizeTimeout)
			if err != nil {
				return fmt.Errorf("--resize-timeout: %w", err)
			}
			content.ResizeTimeout = &d
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.ResizePool(ctx, id, content, nil); err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if !wait {
			o.say(w, "Resizing pool %s.", id)
			return nil
		}
		pool, err := o.waitPoolSteady(ctx, cmd, client, id, timeout)
		if err != nil {
			return err
		}
		if err := o.printResult(w, pool, func(w io.Writer) error { return writePoolTable(w, []azbatch.Pool{pool}) }); err != nil {
			return err
		}
		if len(pool.ResizeErrors) > 0 {
			return &ExitError{Code: 1, Err: fmt.Errorf("pool %s resize finished with errors: %s", id, resizeErrorsText(pool.ResizeErrors))}
		}
		return nil
	})
	return cmd
}

// waitPoolSteady polls the pool until its allocation state is steady, drawing
// progress on stdout (stderr for JSON output).
func (o *globalOptions) waitPoolSteady(ctx context.Context, cmd *cobra.Command, client poolGetter, id string, timeout time.Duration) (azbatch.Pool, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	rep := progress.New(o.progressWriter(cmd))
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		got, err := client.GetPool(ctx, id, nil)
		if err != nil {
			rep.Abort()
			if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
				return azbatch.Pool{}, fmt.Errorf("timed out after %s waiting for pool %s to reach a steady allocation state", timeout, id)
			}
			return azbatch.Pool{}, err
		}
		pool := got.Pool
		if pool.AllocationState != nil && *pool.AllocationState == azbatch.AllocationStateSteady {
			rep.Finish(poolProgressLine(pool))
			return pool, nil
		}
		rep.Update(poolProgressLine(pool))
		select {
		case <-ctx.Done():
			rep.Abort()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				return azbatch.Pool{}, fmt.Errorf("timed out after %s waiting for pool %s to reach a steady allocation state", timeout, id)
			}
			return azbatch.Pool{}, ctx.Err()
		case <-tick.C:
		}
	}
}

type poolGetter interface {
	GetPool(ctx context.Context, poolID string, options *azbatch.GetPoolOptions) (azbatch.GetPoolResponse, error)
}

// poolProgressLine is the status drawn while a pool resizes.
func poolProgressLine(p azbatch.Pool) string {
	cur := i32(p.CurrentDedicatedNodes) + i32(p.CurrentLowPriorityNodes)
	target := i32(p.TargetDedicatedNodes) + i32(p.TargetLowPriorityNodes)
	done, total := cur, target
	if cur > target { // shrinking: fill as nodes leave
		done, total = target, cur
	}
	state := output.Str(p.AllocationState)
	if state == "" {
		state = "unknown"
	}
	line := fmt.Sprintf("%s %-8s %s nodes", progress.Bar(done, total, 0), state, nodesText(p))
	if n := len(p.ResizeErrors); n > 0 {
		line += fmt.Sprintf("  %d resize error(s)", n)
	}
	return line
}

func newPoolDeleteCommand(o *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete [POOL_ID]",
		Short: "Delete a pool and its nodes",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("pool-id", "", "pool ID")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "pool-id")
		if err != nil {
			return err
		}
		if err := confirm(cmd, yes, fmt.Sprintf("Delete pool %s and all its nodes?", id)); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.DeletePool(ctx, id, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Deleting pool %s.", id)
		return nil
	})
	return cmd
}

// writePoolTable prints pools as: ID, STATE, ALLOCATION, NODES
// (current/target, dedicated plus low-priority), SLOTS, VM SIZE.
func writePoolTable(w io.Writer, pools []azbatch.Pool) error {
	t := output.NewTable(w, "ID", "STATE", "ALLOCATION", "NODES", "SLOTS", "VM SIZE")
	for _, p := range pools {
		t.Row(output.Str(p.ID), output.Str(p.State), output.Str(p.AllocationState), nodesText(p),
			output.Int(p.TaskSlotsPerNode), output.Str(p.VMSize))
	}
	return t.Flush()
}

// nodesText is "current/target" over dedicated and low-priority nodes.
func nodesText(p azbatch.Pool) string {
	if p.CurrentDedicatedNodes == nil && p.TargetDedicatedNodes == nil && p.CurrentLowPriorityNodes == nil && p.TargetLowPriorityNodes == nil {
		return ""
	}
	cur := i32(p.CurrentDedicatedNodes) + i32(p.CurrentLowPriorityNodes)
	target := i32(p.TargetDedicatedNodes) + i32(p.TargetLowPriorityNodes)
	return fmt.Sprintf("%d/%d", cur, target)
}

func writePoolDetails(w io.Writer, p azbatch.Pool) error {
	var startTask, startWait string
	if p.StartTask != nil {
		startTask = output.Str(p.StartTask.CommandLine)
		startWait = output.Bool(p.StartTask.WaitForSuccess)
	}
	var autoScale string
	if p.EnableAutoScale != nil && *p.EnableAutoScale {
		autoScale = output.Str(p.AutoScaleFormula)
	}
	return output.Details(w,
		[2]string{"ID", output.Str(p.ID)},
		[2]string{"Display name", output.Str(p.DisplayName)},
		[2]string{"State", output.Str(p.State)},
		[2]string{"Allocation state", output.Str(p.AllocationState)},
		[2]string{"VM size", output.Str(p.VMSize)},
		[2]string{"Dedicated nodes", pairText(p.CurrentDedicatedNodes, p.TargetDedicatedNodes)},
		[2]string{"Low-priority nodes", pairText(p.CurrentLowPriorityNodes, p.TargetLowPriorityNodes)},
		[2]string{"Task slots per node", output.Int(p.TaskSlotsPerNode)},
		[2]string{"Autoscale formula", autoScale},
		[2]string{"Start task", startTask},
		[2]string{"Start task waits", startWait},
		[2]string{"Resize timeout", output.Str(p.ResizeTimeout)},
		[2]string{"Resize errors", resizeErrorsText(p.ResizeErrors)},
		[2]string{"Created", output.Time(p.CreationTime)},
		[2]string{"Last modified", output.Time(p.LastModified)},
	)
}

func pairText(cur, target *int32) string {
	if cur == nil && target == nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", i32(cur), i32(target))
}

func resizeErrorsText(errs []azbatch.ResizeError) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		s := output.Str(e.Code)
		if m := output.Str(e.Message); m != "" {
			s += ": " + m
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func i32(p *int32) int {
	if p == nil {
		return 0
	}
	return int(*p)
}

// parseEnum matches s case-insensitively against an azbatch enum's values.
func parseEnum[T ~string](s, flag string, values []T) (T, error) {
	names := make([]string, 0, len(values))
	for _, v := range values {
		if strings.EqualFold(string(v), s) {
			return v, nil
		}
		names = append(names, string(v))
	}
	var zero T
	return zero, fmt.Errorf("invalid %s %q: use one of %s", flag, s, strings.Join(names, ", "))
}

// progressWriter is where live progress goes: stdout for tables, stderr for
// JSON so that stdout stays parseable.
func (o *globalOptions) progressWriter(cmd *cobra.Command) io.Writer {
	if f, _ := o.format(); f == output.FormatJSON {
		return cmd.ErrOrStderr()
	}
	return cmd.OutOrStdout()
}
