package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// storageContainer is a container as `kiln storage container list -o json`
// prints it.
type storageContainer struct {
	Name         string     `json:"name"`
	LastModified *time.Time `json:"lastModified,omitempty"`
	ETag         string     `json:"etag,omitempty"`
}

// containerCommand is `kiln storage container`.
func (s *storageOptions) containerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "container",
		Short: "Create, list and delete storage containers",
	}

	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a container",
		Long: "Create a container. Like `az storage container create`, a container that exists already\n" +
			"is not an error (the command says so) unless --fail-on-exist is given.",
		Example: "  kiln storage container create inputs",
		Args:    cobra.ExactArgs(1),
	}
	var failOnExist bool
	create.Flags().BoolVar(&failOnExist, "fail-on-exist", false, "fail if the container exists already")
	create.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		client, t, err := s.client()
		if err != nil {
			return err
		}
		resp, err := client.CreateContainer(ctx, args[0], nil)
		if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) && !failOnExist {
			fmt.Fprintf(cmd.ErrOrStderr(), "container %q already exists\n", args[0])
			return nil
		}
		if err != nil {
			return storageError(err, t, args[0])
		}
		c := storageContainer{Name: args[0], LastModified: resp.LastModified}
		if resp.ETag != nil {
			c.ETag = string(*resp.ETag)
		}
		return s.g.printResult(cmd.OutOrStdout(), c, func(w io.Writer) error {
			return writeContainerTable(w, []storageContainer{c})
		})
	})

	list := &cobra.Command{
		Use:   "list",
		Short: "List containers",
		Args:  cobra.NoArgs,
	}
	var prefix string
	list.Flags().StringVar(&prefix, "prefix", "", "only containers whose name starts with this")
	list.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		client, t, err := s.client()
		if err != nil {
			return err
		}
		pager := client.NewListContainersPager(&azblob.ListContainersOptions{Prefix: optString(prefix)})
		var out []storageContainer
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return storageError(err, t, "")
			}
			for _, c := range page.ContainerItems {
				sc := storageContainer{Name: output.Str(c.Name)}
				if p := c.Properties; p != nil {
					sc.LastModified = p.LastModified
					if p.ETag != nil {
						sc.ETag = string(*p.ETag)
					}
				}
				out = append(out, sc)
			}
		}
		return s.g.printResult(cmd.OutOrStdout(), out, func(w io.Writer) error { return writeContainerTable(w, out) })
	})

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a container and every blob in it",
		Args:  cobra.ExactArgs(1),
	}
	del.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		client, t, err := s.client()
		if err != nil {
			return err
		}
		if _, err := client.DeleteContainer(ctx, args[0], nil); err != nil {
			return storageError(err, t, args[0])
		}
		s.g.say(cmd.OutOrStdout(), "Deleted container %s.", args[0])
		return nil
	})

	cmd.AddCommand(create, list, del)
	return cmd
}

// writeContainerTable prints containers as: NAME, LAST MODIFIED.
func writeContainerTable(w io.Writer, cs []storageContainer) error {
	t := output.NewTable(w, "NAME", "LAST MODIFIED")
	for _, c := range cs {
		t.Row(c.Name, output.Time(c.LastModified))
	}
	return t.Flush()
}
