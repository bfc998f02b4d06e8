package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// storageBlob is a blob as `kiln storage list -o json` prints it.
type storageBlob struct {
	Name          string     `json:"name"`
	ContentLength int64      `json:"contentLength"`
	ContentType   string     `json:"contentType,omitempty"`
	LastModified  *time.Time `json:"lastModified,omitempty"`
	ETag          string     `json:"etag,omitempty"`
}

// listBlobs returns every blob of container whose name starts with prefix,
// following the pager to the end.
func listBlobs(ctx context.Context, client *azblob.Client, container, prefix string) ([]storageBlob, error) {
	pager := client.NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{Prefix: optString(prefix)})
	var out []storageBlob
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			sb := storageBlob{Name: output.Str(b.Name)}
			if p := b.Properties; p != nil {
				if p.ContentLength != nil {
					sb.ContentLength = *p.ContentLength
				}
				sb.ContentType = output.Str(p.ContentType)
				sb.LastModified = p.LastModified
				if p.ETag != nil {
					sb.ETag = string(*p.ETag)
				}
			}
			out = append(out, sb)
		}
	}
	return out, nil
}

// listCommand is `kiln storage list`.
func (s *storageOptions) listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the blobs of a container",
		Example: "  kiln storage list --container inputs --prefix data/",
		Args:    cobra.NoArgs,
	}
	var container, prefix string
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (required)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only blobs whose name starts with this")
	cmd.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if _, err := requireFlag(cmd, "container"); err != nil {
			return err
		}
		client, t, err := s.client()
		if err != nil {
			return err
		}
		blobs, err := listBlobs(ctx, client, container, prefix)
		if err != nil {
			return storageError(err, t, container)
		}
		return s.g.printResult(cmd.OutOrStdout(), blobs, func(w io.Writer) error { return writeBlobTable(w, blobs) })
	})
	return cmd
}

// deleteCommand is `kiln storage delete`.
func (s *storageOptions) deleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete BLOB...",
		Short:   "Delete blobs",
		Example: "  kiln storage delete --container inputs data/a.txt data/b.txt",
		Args:    cobra.MinimumNArgs(1),
	}
	var container string
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (required)")
	cmd.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if _, err := requireFlag(cmd, "container"); err != nil {
			return err
		}
		client, t, err := s.client()
		if err != nil {
			return err
		}
		for _, name := range args {
			if _, err := client.DeleteBlob(ctx, container, name, nil); err != nil {
				return fmt.Errorf("delete %s: %w", name, storageError(err, t, container))
			}
			s.g.say(cmd.OutOrStdout(), "Deleted %s.", name)
		}
		return nil
	})
	return cmd
}

// writeBlobTable prints blobs as: NAME, SIZE, LAST MODIFIED, CONTENT TYPE.
func writeBlobTable(w io.Writer, blobs []storageBlob) error {
	t := output.NewTable(w, "NAME", "SIZE", "LAST MODIFIED", "CONTENT TYPE")
	for _, b := range blobs {
		t.Row(b.Name, output.Size(&b.ContentLength), output.Time(b.LastModified), b.ContentType)
	}
	return t.Flush()
}
