package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

func newNodeCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Inspect and manage the compute nodes of a pool",
	}
	cmd.AddCommand(
		newNodeListCommand(o),
		newNodeShowCommand(o),
		newNodeRebootCommand(o),
		newNodePreemptCommand(o),
		newNodeFileCommand(o),
	)
	return cmd
}

func newNodeListCommand(o *globalOptions) *cobra.Command {
	var poolID, filter, sel string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the nodes of a pool",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&poolID, "pool-id", "", "pool ID (required)")
	cmd.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"state eq 'idle'\"")
	cmd.Flags().StringVar(&sel, "select", "", "OData $select: comma-separated properties to return")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if poolID == "" {
			return fmt.Errorf("--pool-id is required")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListNodesPager(poolID, &azbatch.ListNodesOptions{Filter: optString(filter), SelectParam: splitList(sel)})
		var nodes []azbatch.Node
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			nodes = append(nodes, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), nodes, func(w io.Writer) error { return writeNodeTable(w, nodes) })
	})
	return cmd
}

func newNodeShowCommand(o *globalOptions) *cobra.Command {
	var poolID string
	cmd := &cobra.Command{
		Use:   "show [NODE_ID]",
		Short: "Show a node",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVar(&poolID, "pool-id", "", "pool ID (required)")
	cmd.Flags().String("node-id", "", "node ID")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if poolID == "" {
			return fmt.Errorf("--pool-id is required")
		}
		nodeID, err := idFrom(cmd, args, "node-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.GetNode(ctx, poolID, nodeID, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Node, func(w io.Writer) error { return writeNodeDetails(w, got.Node) })
	})
	return cmd
}

func newNodeRebootCommand(o *globalOptions) *cobra.Command {
	var poolID, option string
	cmd := &cobra.Command{
		Use:   "reboot [NODE_ID]",
		Short: "Restart a node",
		Args:  cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVar(&poolID, "pool-id", "", "pool ID (required)")
	cmd.Flags().String("node-id", "", "node ID")
	cmd.Flags().StringVar(&option, "node-reboot-option", "", "what to do with running tasks: requeue (default), terminate, taskcompletion or retaineddata")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if poolID == "" {
			return fmt.Errorf("--pool-id is required")
		}
		nodeID, err := idFrom(cmd, args, "node-id")
		if err != nil {
			return err
		}
		var opts *azbatch.RebootNodeOptions
		if option != "" {
			v, err := parseEnum(option, "--node-reboot-option", azbatch.PossibleNodeRebootOptionValues())
			if err != nil {
				return err
			}
			opts = &azbatch.RebootNodeOptions{Parameters: &azbatch.RebootNodeContent{NodeRebootOption: &v}}
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.RebootNode(ctx, poolID, nodeID, opts); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Rebooting node %s in pool %s.", nodeID, poolID)
		return nil
	})
	return cmd
}

// writeNodeTable prints nodes as: ID, STATE, SCHEDULING, RUNNING TASKS, IP.
func writeNodeTable(w io.Writer, nodes []azbatch.Node) error {
	t := output.NewTable(w, "ID", "STATE", "SCHEDULING", "RUNNING TASKS", "IP")
	for _, n := range nodes {
		t.Row(output.Str(n.ID), output.Str(n.State), output.Str(n.SchedulingState), output.Int(n.RunningTasksCount), output.Str(n.IPAddress))
	}
	return t.Flush()
}

func writeNodeDetails(w io.Writer, n azbatch.Node) error {
	var startState, startExit, startFailure string
	if si := n.StartTaskInfo; si != nil {
		startState = output.Str(si.State)
		startExit = output.Int(si.ExitCode)
		startFailure = failureText(si.FailureInfo)
	}
	var startTask string
	if n.StartTask != nil {
		startTask = output.Str(n.StartTask.CommandLine)
	}
	var agent string
	if n.NodeAgentInfo != nil {
		agent = output.Str(n.NodeAgentInfo.Version)
	}
	errs := make([]string, 0, len(n.Errors))
	for _, e := range n.Errors {
		s := output.Str(e.Code)
		if m := output.Str(e.Message); m != "" {
			s += ": " + m
		}
		errs = append(errs, s)
	}
	return output.Details(w,
		[2]string{"ID", output.Str(n.ID)},
		[2]string{"State", output.Str(n.State)},
		[2]string{"Scheduling", output.Str(n.SchedulingState)},
		[2]string{"IP address", output.Str(n.IPAddress)},
		[2]string{"VM size", output.Str(n.VMSize)},
		[2]string{"Dedicated", output.Bool(n.IsDedicated)},
		[2]string{"Running tasks", output.Int(n.RunningTasksCount)},
		[2]string{"Running task slots", output.Int(n.RunningTaskSlotsCount)},
		[2]string{"Tasks run", output.Int(n.TotalTasksRun)},
		[2]string{"Tasks succeeded", output.Int(n.TotalTasksSucceeded)},
		[2]string{"Start task", startTask},
		[2]string{"Start task state", startState},
		[2]string{"Start task exit code", startExit},
		[2]string{"Start task failure", startFailure},
		[2]string{"Errors", strings.Join(errs, "; ")},
		[2]string{"Agent version", agent},
		[2]string{"Allocated", output.Time(n.AllocationTime)},
		[2]string{"Last boot", output.Time(n.LastBootTime)},
		[2]string{"State changed", output.Time(n.StateTransitionTime)},
	)
}

// failureText renders a task failure as "code: message (name=value, ...)".
func failureText(f *azbatch.TaskFailureInfo) string {
	if f == nil {
		return ""
	}
	s := output.Str(f.Code)
	if s == "" {
		s = output.Str(f.Category)
	}
	if m := output.Str(f.Message); m != "" {
		s += ": " + m
	}
	if len(f.Details) > 0 {
		parts := make([]string, 0, len(f.Details))
		for _, d := range f.Details {
			parts = append(parts, output.Str(d.Name)+"="+output.Str(d.Value))
		}
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
