package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// kiln pool autoscale enable|disable|evaluate, as `az batch pool autoscale`.

func newPoolAutoScaleCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "autoscale",
		Short: "Enable, disable or evaluate a pool's autoscale formula",
	}
	cmd.AddCommand(newPoolAutoScaleEnableCommand(o), newPoolAutoScaleDisableCommand(o), newPoolAutoScaleEvaluateCommand(o))
	return cmd
}

func newPoolAutoScaleEnableCommand(o *globalOptions) *cobra.Command {
	var formula, interval string
	cmd := &cobra.Command{
		Use:   "enable [POOL_ID]",
		Short: "Enable autoscale on a pool, or change its formula or interval (the formula is evaluated at once)",
		Example: "  kiln pool autoscale enable --pool-id p1 --auto-scale-formula '$TargetDedicatedNodes = min(4, $PendingTasks.GetSample(1));'\n" +
			"  kiln pool autoscale enable --pool-id p1 --auto-scale-evaluation-interval 10m",
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	f.String("pool-id", "", "pool ID")
	f.StringVar(&formula, "auto-scale-formula", "", "the formula (required when autoscale is off)")
	f.StringVar(&interval, "auto-scale-evaluation-interval", "", "how often the formula runs (e.g. 15m or PT15M; default 15m, at least 5m)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "pool-id")
		if err != nil {
			return err
		}
		content := azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: optString(formula)}
		if interval != "" {
			d, err := isoDuration(interval)
			if err != nil {
				return fmt.Errorf("--auto-scale-evaluation-interval: %w", err)
			}
			content.AutoScaleEvaluationInterval = &d
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.EnablePoolAutoScale(ctx, id, content, nil); err != nil {
			return err
		}
		got, err := client.GetPool(ctx, id, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Pool, func(w io.Writer) error { return writePoolAutoScale(w, got.Pool) })
	})
	return cmd
}

func newPoolAutoScaleDisableCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disable [POOL_ID]",
		Short: "Disable autoscale: the pool keeps its current target sizes",
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
		if _, err := client.DisablePoolAutoScale(ctx, id, nil); err != nil {
			return err
		}
		got, err := client.GetPool(ctx, id, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.Pool, func(w io.Writer) error { return writePoolAutoScale(w, got.Pool) })
	})
	return cmd
}

func newPoolAutoScaleEvaluateCommand(o *globalOptions) *cobra.Command {
	var formula string
	cmd := &cobra.Command{
		Use:     "evaluate [POOL_ID]",
		Short:   "Evaluate a formula on an autoscale pool without applying it",
		Example: "  kiln pool autoscale evaluate --pool-id p1 --auto-scale-formula '$TargetDedicatedNodes = avg($CPUPercent.GetSample(TimeInterval_Minute * 5)) > 70 ? 4 : 1;'",
		Args:    cobra.MaximumNArgs(1),
	}
	cmd.Flags().String("pool-id", "", "pool ID")
	cmd.Flags().StringVar(&formula, "auto-scale-formula", "", "the formula to evaluate (required)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "pool-id")
		if err != nil {
			return err
		}
		if formula == "" {
			return errors.New("--auto-scale-formula is required")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.EvaluatePoolAutoScale(ctx, id, azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: &formula}, nil)
		if err != nil {
			return err
		}
		run := got.AutoScaleRun
		if err := o.printResult(cmd.OutOrStdout(), run, func(w io.Writer) error { return writeAutoScaleRun(w, &run) }); err != nil {
			return err
		}
		if run.Error != nil {
			return &ExitError{Code: 1, Err: fmt.Errorf("the formula failed: %s", output.Str(run.Error.Code))}
		}
		return nil
	})
	return cmd
}

func writePoolAutoScale(w io.Writer, p azbatch.Pool) error {
	if err := output.Details(w,
		[2]string{"ID", output.Str(p.ID)},
		[2]string{"Autoscale", output.Bool(p.EnableAutoScale)},
		[2]string{"Formula", output.Str(p.AutoScaleFormula)},
		[2]string{"Evaluation interval", output.Str(p.AutoScaleEvaluationInterval)},
		[2]string{"Dedicated nodes", pairText(p.CurrentDedicatedNodes, p.TargetDedicatedNodes)},
		[2]string{"Low-priority nodes", pairText(p.CurrentLowPriorityNodes, p.TargetLowPriorityNodes)},
	); err != nil {
		return err
	}
	if p.AutoScaleRun == nil {
		return nil
	}
	fmt.Fprintln(w, "Last run:")
	return writeAutoScaleRun(w, p.AutoScaleRun)
}

// writeAutoScaleRun shows a run: its time, each variable on a line, and
// the error with its details.
func writeAutoScaleRun(w io.Writer, r *azbatch.AutoScaleRun) error {
	pairs := [][2]string{{"Timestamp", output.Time(r.Timestamp)}}
	for _, v := range strings.Split(output.Str(r.Results), ";") {
		if name, val, ok := strings.Cut(v, "="); ok {
			pairs = append(pairs, [2]string{name, val})
		}
	}
	if e := r.Error; e != nil {
		pairs = append(pairs, [2]string{"Error", output.Str(e.Code) + ": " + output.Str(e.Message)})
		for _, v := range e.Values {
			pairs = append(pairs, [2]string{"  " + output.Str(v.Name), output.Str(v.Value)})
		}
	}
	return output.Details(w, pairs...)
}
