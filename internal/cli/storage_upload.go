package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/spf13/cobra"
)

const (
	// storageBlockSize is the size of the blocks of an upload: a file up to
	// this size goes in one Put Blob, a larger one as Put Block requests of
	// this size and a Put Block List.
	storageBlockSize = 8 << 20
	// storageBlockConcurrency is how many blocks of one file are sent at a
	// time. Blocks are read from the file as they are sent (no buffers).
	storageBlockConcurrency = 2
)

// uploadCommand is `kiln storage upload`.
func (s *storageOptions) uploadCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upload SOURCE...",
		Short: "Upload files and directories to a container",
		Long: "Upload files and whole directories (recursively) to a container. A file becomes the blob\n" +
			"<prefix><file name>; a file inside a directory given as SOURCE becomes <prefix><path relative\n" +
			"to that directory>, with / separators. The prefix is used as is: end it with / to upload into\n" +
			"a virtual directory.",
		Example: "  kiln storage upload --container inputs data/\n" +
			"  kiln storage upload --container inputs --prefix run1/ a.csv b.csv",
		Args: cobra.MinimumNArgs(1),
	}
	var container, prefix string
	var concurrency int
	var overwrite bool
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (required)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "prepended to every blob name")
	cmd.Flags().IntVar(&concurrency, "concurrency", storageConcurrencyDefault, "files uploaded at a time")
	cmd.Flags().BoolVar(&overwrite, "overwrite", true, "replace existing blobs (--overwrite=false fails on the first existing one)")
	cmd.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if _, err := requireFlag(cmd, "container"); err != nil {
			return err
		}
		if concurrency < 1 {
			return fmt.Errorf("invalid --concurrency %d: at least 1", concurrency)
		}
		items, err := collectUploads(args, prefix)
		if err != nil {
			return err
		}
		client, t, err := s.client()
		if err != nil {
			return err
		}
		cc := client.ServiceClient().NewContainerClient(container)
		sum, err := s.transfer(ctx, cmd, items, concurrency, func(ctx context.Context, it transferItem, report func(int64)) (int64, error) {
			n, err := uploadFile(ctx, cc.NewBlockBlobClient(it.blob), it.path, overwrite, report)
			if err != nil {
				return n, fmt.Errorf("upload %s to %s: %w", it.path, it.blob, storageError(err, t, container))
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		sum.Container = container
		return s.printSummary(cmd.OutOrStdout(), "Uploaded", "to "+container, sum)
	})
	return cmd
}

// collectUploads lists the files to upload: each SOURCE file as
// prefix+base name, each file below a SOURCE directory as prefix+relative
// path. Symbolic links to files are followed; links to directories are not
// (they could loop). Two sources giving the same blob name are an error.
func collectUploads(sources []string, prefix string) ([]transferItem, error) {
	var items []transferItem
	from := map[string]string{} // blob name -> local path
	add := func(name, path string, size int64) error {
		name = prefix + name
		if other, dup := from[name]; dup {
			return fmt.Errorf("%s and %s would both be uploaded as %s", other, path, name)
		}
		from[name] = path
		items = append(items, transferItem{blob: name, path: path, size: size})
		return nil
	}
	for _, src := range sources {
		fi, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("upload source %s does not exist", src)
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("upload source %s is not a regular file or a directory", src)
			}
			if err := add(filepath.Base(src), src, fi.Size()); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			fi, err := os.Stat(path) // follows a link
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil // devices, sockets, links to directories
			}
			rel, err := filepath.Rel(src, path)
			if err != nil {
				return err
			}
			return add(filepath.ToSlash(rel), path, fi.Size())
		})
		if err != nil {
			return nil, err
		}
	}
	return items, nil
}

// uploadFile uploads the file at path to bb, streaming it from disk: in one
// Put Blob up to storageBlockSize, else in blocks of that size, a few at a
// time, committed with Put Block List. (azblob's UploadFile sends anything up
// to 256 MiB as one request, whatever its BlockSize.) Without overwrite an
// existing blob is an error wrapping errBlobExists.
func uploadFile(ctx context.Context, bb *blockblob.Client, path string, overwrite bool, report func(int64)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	headers := &blob.HTTPHeaders{BlobContentType: ptr(contentTypeOf(path))}
	var cond *blob.AccessConditions
	if !overwrite {
		// Check first, so that a large file is not sent only to be refused;
		// the condition on the final request closes the race.
		if _, err := bb.GetProperties(ctx, nil); err == nil {
			return 0, errBlobExists
		} else if !isNotFound(err) {
			return 0, err
		}
		cond = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}}
	}
	if size <= storageBlockSize {
		body := streaming.NewRequestProgress(streaming.NopCloser(io.NewSectionReader(f, 0, size)), report)
		_, err := bb.Upload(ctx, body, &blockblob.UploadOptions{HTTPHeaders: headers, AccessConditions: cond})
		return size, existsError(err)
	}
	ids, err := stageBlocks(ctx, bb, f, size, report)
	if err != nil {
		return 0, err
	}
	_, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers, AccessConditions: cond})
	return size, existsError(err)
}

// stageBlocks sends r's size bytes as blocks of storageBlockSize,
// storageBlockConcurrency at a time, and returns their IDs in order.
func stageBlocks(ctx context.Context, bb *blockblob.Client, r io.ReaderAt, size int64, report func(int64)) ([]string, error) {
	n := (size + storageBlockSize - 1) / storageBlockSize
	if n > blockblob.MaxBlocks {
		return nil, fmt.Errorf("file of %d bytes needs more than %d blocks of %d bytes", size, blockblob.MaxBlocks, storageBlockSize)
	}
	// IDs must all have the same length; a random part keeps concurrent
	// uploads of one blob from mixing their blocks.
	idPrefix := randomHex(8)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", idPrefix, i))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		perBlock = make([]int64, n)
		sent     int64
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, storageBlockConcurrency)
	)
blocks:
	for i := range ids {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break blocks
		}
		wg.Go(func() {
			defer func() { <-slots }()
			off := int64(i) * storageBlockSize
			section := io.NewSectionReader(r, off, min(storageBlockSize, size-off))
			body := streaming.NewRequestProgress(streaming.NopCloser(section), func(done int64) {
				mu.Lock()
				defer mu.Unlock()
				sent += done - perBlock[i]
				perBlock[i] = done
				report(sent)
			})
			if _, err := bb.StageBlock(ctx, ids[i], body, nil); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return ids, nil
}

// contentTypeOf guesses a file's content type from its extension, as az
// does; application/octet-stream when unknown.
func contentTypeOf(path string) string {
	if t := mime.TypeByExtension(filepath.Ext(path)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// existsError turns the refusal of a conditional upload into errBlobExists.
func existsError(err error) error {
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return errBlobExists
	}
	return err
}

// isNotFound reports a 404 from storage (a HEAD answer has no body, so the
// status is all there may be).
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == 404
}
