// Package cli holds the kiln command line: `kiln server`, `kiln agent`, and
// client commands shaped like `az batch` (one file per group).
package cli

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// NewRoot builds the kiln command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Kiln: a self-hosted Azure Batch",
		Long:          "Kiln runs Azure Batch workloads on machines you own. It speaks the Azure Batch REST API,\nso Azure's SDKs and tools work against it unchanged.",
		Version:       Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	o := &globalOptions{}
	addClientCommands(root, o)
	root.AddCommand(newStorageCommand(o), newApplicationCommand(o), newAccountCommand(o))
	root.AddCommand(newServerCommand(), newAgentCommand(), newBenchCommand())
	return root
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	return HandleError(stderr, err)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
