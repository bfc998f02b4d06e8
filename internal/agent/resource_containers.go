package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"golang.org/x/sync/errgroup"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// downloadContainer downloads every blob of rf.ContainerURL whose name
// starts with rf.BlobPrefix to FilePath/<blob name> under root (FilePath ""
// is the working directory itself), and returns the names of the files it
// wrote, relative to root.
//
// As on Azure, a prefix that matches no blob is not an error: the task
// runs with nothing downloaded. A blob name with a "." or ".." segment, or
// one that starts with "/", is refused (it could only be meant to land
// outside FilePath); a name ending in "/" is a directory marker (hierarchical
// namespace accounts and some tools create them) and becomes a directory.
//
// The listing is flat and paged; blobs download while later pages are
// listed, blobParallelFiles at a time, each streamed to its file in blocks
// (see storage.go).
func downloadContainer(ctx context.Context, hc *http.Client, root *os.Root, rf protocol.ResourceFile) ([]string, error) {
	dir := "."
	if rf.FilePath != "" {
		dir = filepath.Clean(filepath.FromSlash(rf.FilePath))
		if !filepath.IsLocal(dir) {
			return nil, errors.New("filePath must be a directory inside the task working directory")
		}
	}
	cc, err := newContainerClient(rf.ContainerURL, hc)
	if err != nil {
		return nil, errors.New("invalid containerUrl")
	}
	var opts container.ListBlobsFlatOptions
	if rf.BlobPrefix != "" {
		opts.Prefix = &rf.BlobPrefix
	}
	pager := cc.NewListBlobsFlatPager(&opts)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(blobParallelFiles)
	var mu sync.Mutex
	var files []string
	var listErr error
list:
	for pager.More() {
		page, err := pager.NextPage(gctx)
		if err != nil {
			listErr = newTaskError(downloadCode(err), "list blobs: %s", describeStorageErr(err))
			break
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			blobName := *item.Name
			local, isDir, err := blobLocalName(dir, blobName)
			if err != nil {
				listErr = newTaskError(CodeBlobDownloadMiscError, "blob %q: %v", blobName, err)
				break list
			}
			if gctx.Err() != nil {
				break list // a download failed: stop listing
			}
			g.Go(func() error {
				if isDir {
					return mkdirAll(root, local, blobName)
				}
				if err := downloadBlob(gctx, cc, root, blobName, local); err != nil {
					return err
				}
				mu.Lock()
				files = append(files, local)
				mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if listErr != nil {
		return nil, listErr
	}
	return files, nil
}

// blobLocalName maps a blob name to its file under dir (relative to the
// working directory), and says whether it is a directory marker.
func blobLocalName(dir, name string) (local string, isDir bool, err error) {
	if strings.HasPrefix(name, "/") {
		return "", false, errors.New("the name is absolute: it would leave the download directory")
	}
	isDir = strings.HasSuffix(name, "/")
	for _, seg := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if seg == "." || seg == ".." {
			return "", false, fmt.Errorf("the name has a %q segment: names with \".\" or \"..\" segments are refused, they could leave the download directory", seg)
		}
	}
	local = filepath.Join(dir, filepath.FromSlash(name))
	if !filepath.IsLocal(local) {
		return "", false, errors.New("the name leaves the working directory")
	}
	return local, isDir, nil
}

func mkdirAll(root *os.Root, local, blobName string) error {
	if err := root.MkdirAll(local, 0o755); err != nil {
		return newTaskError(CodeResourceDirectoryCreateFailed, "blob %q: create directory: %v", blobName, err)
	}
	return nil
}

// downloadBlob streams one blob into local (created or truncated).
func downloadBlob(ctx context.Context, cc *container.Client, root *os.Root, blobName, local string) error {
	if err := mkdirParent(root, local); err != nil {
		return fmt.Errorf("blob %q: %w", blobName, err)
	}
	f, err := createFile(root, local)
	if err != nil {
		return fmt.Errorf("blob %q: %w", blobName, err)
	}
	_, err = cc.NewBlobClient(blobName).DownloadFile(ctx, f, &blob.DownloadFileOptions{
		BlockSize:   blobBlockSize,
		Concurrency: blobConcurrency,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return newTaskError(downloadCode(err), "blob %q: %s", blobName, describeStorageErr(err))
	}
	return nil
}
