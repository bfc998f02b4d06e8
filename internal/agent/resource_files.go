package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

const (
	// resourceFileModeDefault is Azure's default mode for resource files on Linux.
	resourceFileModeDefault = 0o770
	resourceFileTries       = 3
)

// downloadResourceFiles fetches the resource files into wd, in order, and
// then applies each one's FileMode (octal, default 0770) to what it wrote:
//   - URL (Azure's httpUrl): a plain GET into wd/FilePath, creating parent
//     directories; network errors, 5xx and 429 are retried a few times;
//   - ContainerURL: every blob whose name starts with BlobPrefix, into
//     wd/FilePath/<blob name> (see downloadContainer).
//
// Nothing is written outside wd, also through symbolic links: all writes go
// through an os.Root on wd. The first file that fails ends the download with
// a *taskError carrying Azure's code: BlobNotFound (404), BlobAccessDenied
// (401, 403), DiskFull, ResourceDirectoryCreateFailed,
// ResourceFileCreateFailed, ResourceFileWriteFailed, or
// BlobDownloadMiscError for anything else.
func downloadResourceFiles(ctx context.Context, client *http.Client, wd string, files []protocol.ResourceFile) error {
	if len(files) == 0 {
		return nil
	}
	root, err := os.OpenRoot(wd)
	if err != nil {
		return newTaskError(CodeResourceDirectoryCreateFailed, "working directory: %v", err)
	}
	defer root.Close()
	type written struct {
		names []string
		mode  fs.FileMode
	}
	var all []written
	for _, rf := range files {
		mode, err := parseFileMode(rf.FileMode)
		var names []string
		switch {
		case err != nil:
		case rf.ContainerURL != "" && rf.URL != "":
			err = errors.New("url and containerUrl are mutually exclusive")
		case rf.ContainerURL != "":
			names, err = downloadContainer(ctx, client, root, rf)
		case rf.URL != "":
			var name string
			name, err = downloadURL(ctx, client, root, rf)
			names = []string{name}
		default:
			err = errors.New("neither url nor containerUrl is set")
		}
		if err != nil {
			return resourceFileError(rf, err)
		}
		all = append(all, written{names, mode})
	}
	// The files may be executed by the task: make sure no child forked by a
	// concurrent task start still holds one of our write descriptors.
	taskrunner.WaitStarts()
	for _, w := range all {
		for _, name := range w.names {
			if err := root.Chmod(name, w.mode); err != nil {
				return newTaskError(CodeResourceFileWriteFailed, "resource file %q: set file mode: %v", filepath.ToSlash(name), err)
			}
		}
	}
	return nil
}

// resourceFileError says which resource file failed and gives err the code
// Azure would report.
func resourceFileError(rf protocol.ResourceFile, err error) error {
	var what string
	if rf.ContainerURL != "" {
		what = fmt.Sprintf("resource files from container %s", redact(rf.ContainerURL))
		if rf.BlobPrefix != "" {
			what += fmt.Sprintf(" (blobPrefix %q)", rf.BlobPrefix)
		}
	} else {
		what = fmt.Sprintf("resource file %q from %s", rf.FilePath, redact(rf.URL))
	}
	return newTaskError(downloadCode(err), "%s: %v", what, err)
}

// downloadCode classifies a download failure (see downloadResourceFiles).
func downloadCode(err error) string {
	if te := (*taskError)(nil); errors.As(err, &te) {
		return te.code
	}
	switch status, _ := storageStatus(err); {
	case status == http.StatusNotFound:
		return CodeBlobNotFound
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return CodeBlobAccessDenied
	case status != 0:
		return CodeBlobDownloadMiscError
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return CodeDiskFull
	}
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return CodeResourceFileWriteFailed // the network does not give PathErrors
	}
	return CodeBlobDownloadMiscError
}

func parseFileMode(s string) (fs.FileMode, error) {
	if s == "" {
		return resourceFileModeDefault, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid fileMode %q (want octal, for example 0755)", s)
	}
	return fs.FileMode(m&0o777) | unixSpecialBits(m), nil
}

// downloadURL fetches rf.URL into wd/FilePath and returns that name.
func downloadURL(ctx context.Context, client *http.Client, root *os.Root, rf protocol.ResourceFile) (string, error) {
	name := filepath.Clean(filepath.FromSlash(rf.FilePath))
	if rf.FilePath == "" || !filepath.IsLocal(name) || name == "." {
		return "", errors.New("filePath must name a file inside the task working directory")
	}
	if err := mkdirParent(root, name); err != nil {
		return "", err
	}
	return name, fetchRetrying(ctx, client, root, name, rf.URL)
}

// fetchRetrying downloads rawURL into name, trying again after network
// errors, 5xx and 429.
func fetchRetrying(ctx context.Context, client *http.Client, root *os.Root, name, rawURL string) error {
	var err error
	for try := range resourceFileTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(try) * 500 * time.Millisecond):
			}
		}
		var retry bool
		retry, err = fetch(ctx, client, root, name, rawURL)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
	}
	return err
}

// mkdirParent creates the parent directories of name inside root.
func mkdirParent(root *os.Root, name string) error {
	dir := filepath.Dir(name)
	if dir == "." {
		return nil
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		code := CodeResourceDirectoryCreateFailed
		if errors.Is(err, syscall.ENOSPC) {
			code = CodeDiskFull
		}
		return newTaskError(code, "create directory %q: %v", filepath.ToSlash(dir), err)
	}
	return nil
}

// createFile creates (or truncates) name inside root for writing.
func createFile(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		code := CodeResourceFileCreateFailed
		if errors.Is(err, syscall.ENOSPC) {
			code = CodeDiskFull
		}
		return nil, newTaskError(code, "create %q: %v", filepath.ToSlash(name), err)
	}
	return f, nil
}

// fetch downloads url into name; retry tells whether another try may help.
func fetch(ctx context.Context, client *http.Client, root *os.Root, name, rawURL string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, errors.New("invalid URL")
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, errors.New(redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
			&httpStatusError{code: resp.StatusCode, status: resp.Status}
	}
	f, err := createFile(root, name)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return false, err // writing failed: the disk, not the network
	}
	if err != nil {
		return true, errors.New(redactErr(err))
	}
	return false, nil
}

func unixSpecialBits(m uint64) fs.FileMode {
	var mode fs.FileMode
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// redact drops the query (it often holds a SAS token) and user info from a
// URL before it goes into a message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// redactErr describes a transport error without the URL it embeds.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
