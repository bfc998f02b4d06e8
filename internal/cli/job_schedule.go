package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// kiln job-schedule: as `az batch job-schedule`, a schedule is created from
// Azure's JSON (its schedule and jobSpecification have too many fields for
// flags); the other commands take its id.
func newJobScheduleCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job-schedule",
		Short: "Manage job schedules (jobs created on a recurrence)",
	}
	simple := func(use, short, done string, call func(ctx context.Context, c *azbatch.Client, id string) error) *cobra.Command {
		c := &cobra.Command{Use: use + " [JOB_SCHEDULE_ID]", Short: short, Args: cobra.MaximumNArgs(1)}
		c.Flags().String("job-schedule-id", "", "job schedule ID")
		c.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			id, err := idFrom(cmd, args, "job-schedule-id")
			if err != nil {
				return err
			}
			client, err := o.client()
			if err != nil {
				return err
			}
			if err := call(ctx, client, id); err != nil {
				return err
			}
			o.say(cmd.OutOrStdout(), done, id)
			return nil
		})
		return c
	}
	cmd.AddCommand(
		newJobScheduleCreateCommand(o),
		newJobScheduleListCommand(o),
		newJobScheduleShowCommand(o),
		simple("disable", "Stop a schedule from creating jobs", "Disabled job schedule %s.", func(ctx context.Context, c *azbatch.Client, id string) error {
			_, err := c.DisableJobSchedule(ctx, id, nil)
			return err
		}),
		simple("enable", "Let a disabled schedule create jobs again", "Enabled job schedule %s.", func(ctx context.Context, c *azbatch.Client, id string) error {
			_, err := c.EnableJobSchedule(ctx, id, nil)
			return err
		}),
		simple("terminate", "Terminate a schedule and its active job", "Terminating job schedule %s.", func(ctx context.Context, c *azbatch.Client, id string) error {
			_, err := c.TerminateJobSchedule(ctx, id, nil)
			return err
		}),
		newJobScheduleDeleteCommand(o),
	)
	return cmd
}

func newJobScheduleCreateCommand(o *globalOptions) *cobra.Command {
	var jsonFile string
	cmd := &cobra.Command{
		Use:   "create --json-file FILE",
		Short: "Create a job schedule from Azure's JSON",
		Long: "Create a job schedule. The file holds Azure's job schedule add JSON (as for\n" +
			"`az batch job-schedule create --json-file`): id, schedule (doNotRunUntil, doNotRunAfter,\n" +
			"startWindow, recurrenceInterval) and jobSpecification (poolInfo and the job's properties).",
		Example: "  kiln job-schedule create --json-file nightly.json",
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringVar(&jsonFile, "json-file", "", "file with the job schedule in Azure Batch JSON (- for standard input; required)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if jsonFile == "" {
			return errors.New("--json-file is required")
		}
		b, err := readJSONFile(cmd, jsonFile)
		if err != nil {
			return err
		}
		var sc azbatch.CreateJobScheduleContent
		if err := json.Unmarshal(b, &sc); err != nil {
			return fmt.Errorf("%s: %w", jsonFile, err)
		}
		if sc.ID == nil || *sc.ID == "" {
			return errors.New("the job schedule needs an \"id\"")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.CreateJobSchedule(ctx, sc, nil); err != nil {
			return err
		}
		got, err := client.GetJobSchedule(ctx, *sc.ID, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.JobSchedule, func(w io.Writer) error {
			return writeJobScheduleTable(w, []azbatch.JobSchedule{got.JobSchedule})
		})
	})
	return cmd
}

func newJobScheduleListCommand(o *globalOptions) *cobra.Command {
	var filter string
	cmd := &cobra.Command{Use: "list", Short: "List job schedules", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"state eq 'active'\"")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListJobSchedulesPager(&azbatch.ListJobSchedulesOptions{Filter: optString(filter)})
		var all []azbatch.JobSchedule
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			all = append(all, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), all, func(w io.Writer) error { return writeJobScheduleTable(w, all) })
	})
	return cmd
}

func newJobScheduleShowCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "show [JOB_SCHEDULE_ID]", Short: "Show a job schedule", Args: cobra.MaximumNArgs(1)}
	cmd.Flags().String("job-schedule-id", "", "job schedule ID")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-schedule-id")
		if err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		got, err := client.GetJobSchedule(ctx, id, nil)
		if err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), got.JobSchedule, func(w io.Writer) error {
			return writeJobScheduleTable(w, []azbatch.JobSchedule{got.JobSchedule})
		})
	})
	return cmd
}

func newJobScheduleDeleteCommand(o *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{Use: "delete [JOB_SCHEDULE_ID]", Short: "Delete a job schedule and its jobs", Args: cobra.MaximumNArgs(1)}
	cmd.Flags().String("job-schedule-id", "", "job schedule ID")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		id, err := idFrom(cmd, args, "job-schedule-id")
		if err != nil {
			return err
		}
		if err := confirm(cmd, yes, fmt.Sprintf("Delete job schedule %s and all its jobs?", id)); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		if _, err := client.DeleteJobSchedule(ctx, id, nil); err != nil {
			return err
		}
		o.say(cmd.OutOrStdout(), "Deleting job schedule %s.", id)
		return nil
	})
	return cmd
}

// writeJobScheduleTable lists schedules with their next run and last job.
func writeJobScheduleTable(w io.Writer, scs []azbatch.JobSchedule) error {
	t := output.NewTable(w, "ID", "STATE", "NEXT RUN", "RECENT JOB", "CREATED")
	for _, sc := range scs {
		var next, recent string
		if e := sc.ExecutionInfo; e != nil {
			next = output.Time(e.NextRunTime)
			if e.RecentJob != nil {
				recent = output.Str(e.RecentJob.ID)
			}
		}
		t.Row(output.Str(sc.ID), output.Str(sc.State), next, recent, output.Time(sc.CreationTime))
	}
	return t.Flush()
}
