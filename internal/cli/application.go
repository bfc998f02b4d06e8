package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/cli/progress"
)

// applicationOptions holds what the application commands share beyond the
// global flags.
type applicationOptions struct {
	g *globalOptions
	// isTerminal decides whether package uploads draw a progress bar on
	// stderr (tests force it).
	isTerminal func(io.Writer) bool
}

// newApplicationCommand is `kiln application`.
func newApplicationCommand(o *globalOptions) *cobra.Command {
	return (&applicationOptions{g: o, isTerminal: progress.IsTerminal}).command()
}

func (a *applicationOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "application",
		Short: "Manage applications and their packages (zip files tasks and pools reference)",
		Long: "Manage applications and their packages. A package is a zip file uploaded as a version of an\n" +
			"application; pools and tasks reference it with applicationPackageReferences, and Kiln\n" +
			"unpacks it on the node (AZ_BATCH_APP_PACKAGE_<id>_<version>).",
	}
	cmd.AddCommand(a.createCommand(), a.setCommand(), a.deleteCommand(), a.listCommand(), a.showCommand(), a.packageCommand())
	return cmd
}

// applicationFlags are the settable fields of an application.
type applicationFlags struct {
	displayName, defaultVersion string
	allowUpdates                bool
}

func (f *applicationFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.displayName, "display-name", "", "display name")
	cmd.Flags().StringVar(&f.defaultVersion, "default-version", "", "version used when a reference names no version")
	cmd.Flags().BoolVar(&f.allowUpdates, "allow-updates", true, "whether packages may be replaced or deleted")
}

// update is the request body: the flags given on the command line, and
// allowUpdates always when all is set (creation).
func (f *applicationFlags) update(cmd *cobra.Command, all bool) applicationUpdate {
	var u applicationUpdate
	if cmd.Flags().Changed("display-name") {
		u.DisplayName = &f.displayName
	}
	if cmd.Flags().Changed("default-version") {
		u.DefaultVersion = &f.defaultVersion
	}
	if all || cmd.Flags().Changed("allow-updates") {
		u.AllowUpdates = &f.allowUpdates
	}
	return u
}

func (a *applicationOptions) createCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create an application (or update it if it exists)",
		Example: "  kiln application create blender --display-name \"Blender 4\"",
		Args:    cobra.ExactArgs(1),
	}
	var f applicationFlags
	f.add(cmd)
	cmd.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		return a.put(ctx, cmd, args[0], f.update(cmd, true))
	})
	return cmd
}

func (a *applicationOptions) setCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "set NAME",
		Short:   "Change an application's default version, display name or allow-updates",
		Example: "  kiln application set blender --default-version 4.2",
		Args:    cobra.ExactArgs(1),
	}
	var f applicationFlags
	f.add(cmd)
	cmd.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		u := f.update(cmd, false)
		if u == (applicationUpdate{}) {
			return errors.New("nothing to set: pass --default-version, --display-name or --allow-updates")
		}
		return a.put(ctx, cmd, args[0], u)
	})
	return cmd
}

// put sends PUT /kiln/applications/{id} and prints the application.
func (a *applicationOptions) put(ctx context.Context, cmd *cobra.Command, appID string, u applicationUpdate) error {
	m, err := a.g.mgmtClient()
	if err != nil {
		return err
	}
	_, app, raw, err := m.putApplication(ctx, appID, u)
	if err != nil {
		return err
	}
	return a.printApplication(cmd.OutOrStdout(), appID, app, raw)
}

// printApplication prints the server's answer as is (JSON) or as details.
func (a *applicationOptions) printApplication(w io.Writer, appID string, app kilnApplication, raw json.RawMessage) error {
	if raw == nil {
		raw = json.RawMessage("{}")
	}
	return a.g.printResult(w, raw, func(w io.Writer) error {
		if app.ID == "" {
			app.ID = appID
		}
		return output.Details(w,
			[2]string{"ID", app.ID},
			[2]string{"Display name", app.DisplayName},
			[2]string{"Default version", app.DefaultVersion},
			[2]string{"Allow updates", output.Bool(app.AllowUpdates)},
			[2]string{"Versions", strings.Join(versionNames(app.Versions), ", ")},
		)
	})
}

// versionNames reads versions given as strings or as objects with an id.
func versionNames(vs []json.RawMessage) []string {
	var out []string
	for _, v := range vs {
		var s string
		var obj struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(v, &s) == nil {
			out = append(out, s)
		} else if json.Unmarshal(v, &obj) == nil && obj.ID != "" {
			out = append(out, obj.ID)
		}
	}
	return out
}

func (a *applicationOptions) deleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an application and all its packages",
		Args:  cobra.ExactArgs(1),
	}
	var yes bool
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if err := confirm(cmd, yes, fmt.Sprintf("Delete application %s and all its packages?", args[0])); err != nil {
			return err
		}
		m, err := a.g.mgmtClient()
		if err != nil {
			return err
		}
		if err := m.deleteApplication(ctx, args[0]); err != nil {
			return err
		}
		a.g.say(cmd.OutOrStdout(), "Deleted application %s.", args[0])
		return nil
	})
	return cmd
}

func (a *applicationOptions) listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List applications and their versions",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		client, err := a.g.client()
		if err != nil {
			return err
		}
		pager := client.NewListApplicationsPager(nil)
		var apps []azbatch.Application
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			apps = append(apps, page.Value...)
		}
		return a.g.printResult(cmd.OutOrStdout(), apps, func(w io.Writer) error {
			t := output.NewTable(w, "ID", "DISPLAY NAME", "VERSIONS")
			for _, app := range apps {
				t.Row(output.Str(app.ID), output.Str(app.DisplayName), strings.Join(app.Versions, ", "))
			}
			return t.Flush()
		})
	})
	return cmd
}

func (a *applicationOptions) showCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an application and its versions",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		client, err := a.g.client()
		if err != nil {
			return err
		}
		resp, err := client.GetApplication(ctx, args[0], nil)
		if err != nil {
			return err
		}
		app := resp.Application
		return a.g.printResult(cmd.OutOrStdout(), app, func(w io.Writer) error {
			return output.Details(w,
				[2]string{"ID", output.Str(app.ID)},
				[2]string{"Display name", output.Str(app.DisplayName)},
				[2]string{"Versions", strings.Join(app.Versions, ", ")},
			)
		})
	})
	return cmd
}

// printPackage prints a package version: the server's answer as is (JSON)
// or as details.
func (a *applicationOptions) printPackage(w io.Writer, appID, version string, pkg applicationPackage, raw json.RawMessage, size int64, isDefault bool) error {
	if raw == nil {
		raw = json.RawMessage("{}")
	}
	return a.g.printResult(w, raw, func(w io.Writer) error {
		if pkg.ID == "" {
			pkg.ID = version
		}
		def := ""
		if isDefault {
			def = "yes"
		}
		return output.Details(w,
			[2]string{"Application", appID},
			[2]string{"Version", pkg.ID},
			[2]string{"State", pkg.State},
			[2]string{"Format", pkg.Format},
			[2]string{"Size", output.Size(&size)},
			[2]string{"Last activation", pkg.LastActivationTime},
			[2]string{"Default version", def},
		)
	})
}
