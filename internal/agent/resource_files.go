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
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

const (
	// resourceFileModeDefault is Azure's default mode for resource files on Linux.
	resourceFileModeDefault = 0o770
	resourceFileTries       = 3
)

// downloadResourceFiles fetches each file with a plain GET into wd/FilePath,
// creating parent directories, and applies FileMode (octal, default 0770).
// A FilePath that leaves wd is refused, also through symbolic links (all
// writes go through an os.Root on wd). Network errors and 5xx answers are
// retried a few times; the first file that fails ends the download.
func downloadResourceFiles(ctx context.Context, client *http.Client, wd string, files []protocol.ResourceFile) error {
	if len(files) == 0 {
		return nil
	}
	root, err := os.OpenRoot(wd)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, rf := range files {
		if err := downloadResourceFile(ctx, client, root, rf); err != nil {
			return fmt.Errorf("resource file %q from %s: %w", rf.FilePath, redact(rf.URL), err)
		}
	}
	return nil
}

func downloadResourceFile(ctx context.Context, client *http.Client, root *os.Root, rf protocol.ResourceFile) error {
	name := filepath.Clean(filepath.FromSlash(rf.FilePath))
	if rf.FilePath == "" || !filepath.IsLocal(name) || name == "." {
		return errors.New("filePath must name a file inside the task working directory")
	}
	mode := fs.FileMode(resourceFileModeDefault)
	if rf.FileMode != "" {
		m, err := strconv.ParseUint(rf.FileMode, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid fileMode %q (want octal, for example 0755)", rf.FileMode)
		}
		mode = fs.FileMode(m&0o777) | unixSpecialBits(m)
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
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
		retry, err = fetch(ctx, client, root, name, rf.URL)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	// The file may be executed by the task: make sure no child forked by a
	// concurrent task start still holds our write descriptor.
	taskrunner.WaitStarts()
	return root.Chmod(name, mode)
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
			fmt.Errorf("server answered %s", resp.Status)
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err != nil, err
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
