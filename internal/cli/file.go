package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// newTaskFileCommand is `kiln task file`: the files of a task on its node.
func newTaskFileCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "file",
		Short: "List and download the files of a task (stdout.txt, stderr.txt, outputs)",
	}
	var jobID, taskID string
	ids := func(c *cobra.Command) {
		c.Flags().StringVar(&jobID, "job-id", "", "job ID (required)")
		c.Flags().StringVar(&taskID, "task-id", "", "task ID (required)")
	}
	check := func() error {
		if jobID == "" {
			return errors.New("--job-id is required")
		}
		if taskID == "" {
			return errors.New("--task-id is required")
		}
		return nil
	}

	var recursive bool
	var filter string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the files of a task",
		Args:  cobra.NoArgs,
	}
	ids(list)
	list.Flags().BoolVar(&recursive, "recursive", false, "list files in subdirectories too")
	list.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"startswith(name, 'wd')\"")
	list.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if err := check(); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListTaskFilesPager(jobID, taskID, &azbatch.ListTaskFilesOptions{Recursive: ptr(recursive), Filter: optString(filter)})
		var files []azbatch.NodeFile
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			files = append(files, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), files, func(w io.Writer) error { return writeFileTable(w, files) })
	})

	var filePath, dest string
	download := &cobra.Command{
		Use:   "download",
		Short: "Download a file of a task",
		Example: "  kiln task file download --job-id j1 --task-id t1 --file-path stdout.txt --destination -\n" +
			"  kiln task file download --job-id j1 --task-id t1 --file-path wd/result.csv --destination out/",
		Args: cobra.NoArgs,
	}
	ids(download)
	download.Flags().StringVar(&filePath, "file-path", "", "path of the file, relative to the task directory (required)")
	download.Flags().StringVar(&dest, "destination", "", "local file or directory to write to, - for standard output (default: the file's name in the current directory)")
	download.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if err := check(); err != nil {
			return err
		}
		if filePath == "" {
			return errors.New("--file-path is required")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		resp, err := client.GetTaskFile(ctx, jobID, taskID, filePath, nil)
		if err != nil {
			return err
		}
		return o.saveDownload(cmd, resp.Body, filePath, dest)
	})

	cmd.AddCommand(list, download)
	return cmd
}

// newNodeFileCommand is `kiln node file`: the files of a compute node.
func newNodeFileCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "file",
		Short: "List and download the files of a node",
	}
	var poolID, nodeID string
	ids := func(c *cobra.Command) {
		c.Flags().StringVar(&poolID, "pool-id", "", "pool ID (required)")
		c.Flags().StringVar(&nodeID, "node-id", "", "node ID (required)")
	}
	check := func() error {
		if poolID == "" {
			return errors.New("--pool-id is required")
		}
		if nodeID == "" {
			return errors.New("--node-id is required")
		}
		return nil
	}

	var recursive bool
	var filter string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the files of a node",
		Args:  cobra.NoArgs,
	}
	ids(list)
	list.Flags().BoolVar(&recursive, "recursive", false, "list files in subdirectories too")
	list.Flags().StringVar(&filter, "filter", "", "OData $filter, e.g. \"startswith(name, 'startup')\"")
	list.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if err := check(); err != nil {
			return err
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		pager := client.NewListNodeFilesPager(poolID, nodeID, &azbatch.ListNodeFilesOptions{Recursive: ptr(recursive), Filter: optString(filter)})
		var files []azbatch.NodeFile
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			files = append(files, page.Value...)
		}
		return o.printResult(cmd.OutOrStdout(), files, func(w io.Writer) error { return writeFileTable(w, files) })
	})

	var filePath, dest string
	download := &cobra.Command{
		Use:     "download",
		Short:   "Download a file of a node",
		Example: "  kiln node file download --pool-id p1 --node-id n1 --file-path startup/stdout.txt --destination -",
		Args:    cobra.NoArgs,
	}
	ids(download)
	download.Flags().StringVar(&filePath, "file-path", "", "path of the file on the node (required)")
	download.Flags().StringVar(&dest, "destination", "", "local file or directory to write to, - for standard output (default: the file's name in the current directory)")
	download.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if err := check(); err != nil {
			return err
		}
		if filePath == "" {
			return errors.New("--file-path is required")
		}
		client, err := o.client()
		if err != nil {
			return err
		}
		resp, err := client.GetNodeFile(ctx, poolID, nodeID, filePath, nil)
		if err != nil {
			return err
		}
		return o.saveDownload(cmd, resp.Body, filePath, dest)
	})

	cmd.AddCommand(list, download)
	return cmd
}

// saveDownload streams body to dest: standard output for "-", else a file
// (inside dest when it is a directory; the remote file's name when dest is
// empty). A file is written under a temporary name and renamed when
// complete, so an interrupted download leaves no partial file behind.
func (o *globalOptions) saveDownload(cmd *cobra.Command, body io.ReadCloser, remotePath, dest string) error {
	defer body.Close()
	if dest == "-" {
		_, err := io.Copy(cmd.OutOrStdout(), body)
		return err
	}
	target, err := downloadTarget(remotePath, dest)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	n, err := io.Copy(tmp, body)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("download %s: %w", remotePath, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	o.say(cmd.OutOrStdout(), "Downloaded %s (%s) to %s.", remotePath, output.Size(&n), target)
	return nil
}

// downloadTarget is the local path for a download of remotePath to dest.
func downloadTarget(remotePath, dest string) (string, error) {
	base := path.Base(filepath.ToSlash(remotePath))
	if base == "." || base == "/" || base == ".." {
		return "", fmt.Errorf("cannot name a local file after %q: pass --destination", remotePath)
	}
	switch {
	case dest == "":
		return base, nil
	case os.IsPathSeparator(dest[len(dest)-1]):
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return "", err
		}
		return filepath.Join(dest, base), nil
	}
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		return filepath.Join(dest, base), nil
	}
	return dest, nil
}

// writeFileTable prints files as: NAME (directories end in /), SIZE, MODIFIED.
func writeFileTable(w io.Writer, files []azbatch.NodeFile) error {
	t := output.NewTable(w, "NAME", "SIZE", "MODIFIED")
	for _, f := range files {
		name := output.Str(f.Name)
		var size, modified string
		if f.IsDirectory != nil && *f.IsDirectory {
			name += "/"
		} else if f.Properties != nil {
			size = output.Size(f.Properties.ContentLength)
		}
		if f.Properties != nil {
			modified = output.Time(f.Properties.LastModified)
		}
		t.Row(name, size, modified)
	}
	return t.Flush()
}
