package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		scenarios  []string
		scale      string
		out        string
		profileDir string
		keep       bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Kiln's performance against its own kiln server",
		Long: `Measure Kiln's performance end to end.

kiln bench starts its own 'kiln server' (this binary) in a temporary directory,
runs the scenarios against it through the Azure Batch Go SDK, prints one line
per figure next to the physical limit measured in the same run (the store
alone, xargs, a bare request...) and the performance target, writes every
figure to --out as JSON, and stops the server and its agents.

Scenarios: ` + strings.Join(bench.ScenarioNames(), ", ") + `.
Scales: tiny (seconds; the test suite runs it), small (a few minutes),
full (the performance issue's sizes: a million tasks, a thousand agents).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, bench.Config{
				Scale:      scale,
				Scenarios:  scenarios,
				ProfileDir: profileDir,
				Keep:       keep,
				Log:        cmd.ErrOrStderr(),
			})
			if rep == nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			rep.PrintTable(cmd.OutOrStdout())
			if out != "" {
				if werr := rep.WriteJSON(out); werr != nil {
					return werr
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\nResults written to %s\n", out)
			}
			if err != nil {
				return err
			}
			if failed := rep.Failed(); len(failed) > 0 {
				return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&scenarios, "scenario", nil, "scenario to run (repeatable; default all): "+strings.Join(bench.ScenarioNames(), ", "))
	f.StringVar(&scale, "scale", bench.ScaleSmall, "sizes: tiny, small or full")
	f.StringVar(&out, "out", "bench-results.json", "write the results as JSON to this file (empty: don't)")
	f.StringVar(&profileDir, "profile-dir", "", "save 1-second CPU profiles of the server during each measured phase here (go tool pprof -top <kiln> DIR/<scenario>-*.pb.gz)")
	f.BoolVar(&keep, "keep", false, "keep the temporary data directories and server logs")
	return cmd
}
