package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/spf13/cobra"
)

// downloadCommand is `kiln storage download`.
func (s *storageOptions) downloadCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "download DEST_DIR",
		Short: "Download the blobs of a container into a directory",
		Long: "Download every blob of a container (or those whose name starts with --prefix) to\n" +
			"DEST_DIR/<blob name>, creating directories as needed. Blob names that would be written\n" +
			"outside DEST_DIR (absolute, or with .. segments) are refused before anything is downloaded.",
		Example: "  kiln storage download --container results out/\n" +
			"  kiln storage download --container results --prefix job1/ out/",
		Args: cobra.ExactArgs(1),
	}
	var container, prefix string
	var concurrency int
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (required)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only blobs whose name starts with this")
	cmd.Flags().IntVar(&concurrency, "concurrency", storageConcurrencyDefault, "files downloaded at a time")
	cmd.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if _, err := requireFlag(cmd, "container"); err != nil {
			return err
		}
		if concurrency < 1 {
			return fmt.Errorf("invalid --concurrency %d: at least 1", concurrency)
		}
		dest := args[0]
		client, t, err := s.client()
		if err != nil {
			return err
		}
		blobs, err := listBlobs(ctx, client, container, prefix)
		if err != nil {
			return storageError(err, t, container)
		}
		items, dirs, err := downloadPlan(blobs)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		root, err := os.OpenRoot(dest)
		if err != nil {
			return err
		}
		defer root.Close()
		for _, d := range dirs {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		sum, err := s.transfer(ctx, cmd, items, concurrency, func(ctx context.Context, it transferItem, report func(int64)) (int64, error) {
			n, err := downloadBlob(ctx, client, container, it.blob, root, it.path, report)
			if err != nil {
				return n, fmt.Errorf("download %s to %s: %w", it.blob, filepath.Join(dest, it.path), storageError(err, t, container))
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		sum.Container, sum.Destination = container, dest
		return s.printSummary(cmd.OutOrStdout(), "Downloaded", "to "+dest, sum)
	})
	return cmd
}

// downloadPlan maps blobs to paths below the destination. Names ending in /
// (directory markers) become directories. Any name that would leave the
// destination, or two names landing on one path, refuse the whole download.
func downloadPlan(blobs []storageBlob) (items []transferItem, dirs []string, err error) {
	seen := map[string]string{} // local path -> blob name
	for _, b := range blobs {
		isDir := strings.HasSuffix(b.Name, "/")
		rel, err := localBlobPath(strings.TrimSuffix(b.Name, "/"))
		if err != nil {
			return nil, nil, fmt.Errorf("refusing to download blob %q: %w", b.Name, err)
		}
		if isDir {
			dirs = append(dirs, rel)
			continue
		}
		if other, dup := seen[rel]; dup {
			return nil, nil, fmt.Errorf("refusing to download: blobs %q and %q would both be written to %s", other, b.Name, rel)
		}
		seen[rel] = b.Name
		items = append(items, transferItem{blob: b.Name, path: rel, size: b.ContentLength})
	}
	return items, dirs, nil
}

// localBlobPath is the path, relative to the download directory, where the
// blob name is written. Absolute names, .. segments (with / or \
// separators) and names that are not local paths are errors.
func localBlobPath(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("the name is empty")
	case strings.ContainsRune(name, 0):
		return "", fmt.Errorf("the name contains a NUL byte")
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`):
		return "", fmt.Errorf("the name is absolute and would be written outside the destination")
	}
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return "", fmt.Errorf("the name has a .. segment and would be written outside the destination")
		}
	}
	rel := filepath.Clean(filepath.FromSlash(name))
	if !filepath.IsLocal(rel) || rel == "." {
		return "", fmt.Errorf("the name is not a path inside the destination")
	}
	return rel, nil
}

// downloadBlob streams the blob into root/rel. It writes a temporary file
// next to it and renames it when complete, so an interrupted download
// leaves no partial file under the blob's name. root confines every path to
// the destination, symbolic links included.
func downloadBlob(ctx context.Context, client *azblob.Client, container, name string, root *os.Root, rel string, report func(int64)) (int64, error) {
	dir := filepath.Dir(rel)
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
	}
	tmp := filepath.Join(dir, "."+filepath.Base(rel)+".part-"+randomHex(4))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer root.Remove(tmp) // fails harmlessly after the rename
	n, err := copyBlob(ctx, client, container, name, f, report)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, root.Rename(tmp, rel)
}

// copyBlob writes the blob's content to w. A connection lost mid-way is
// resumed from where it stopped (a ranged GET), up to three times.
func copyBlob(ctx context.Context, client *azblob.Client, container, name string, w io.Writer, report func(int64)) (int64, error) {
	resp, err := client.DownloadStream(ctx, container, name, nil)
	if err != nil {
		return 0, err
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	defer body.Close()
	n, err := io.Copy(w, &countingReader{r: body, report: report})
	if err != nil {
		return n, err
	}
	if resp.ContentLength != nil && n != *resp.ContentLength {
		return n, fmt.Errorf("got %d of %d bytes", n, *resp.ContentLength)
	}
	return n, nil
}
