// Package fileclient is the Kiln server's client for a node agent's file
// server (package fileserver): it lists, stats, reads and deletes files under
// the node root, signing every request with the node's NodeSecret.
package fileclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/protocol"
)

var (
	// ErrNotFound: the file or directory does not exist (404).
	ErrNotFound = errors.New("fileclient: not found")
	// ErrDirectoryNotEmpty: Delete of a non-empty directory without recursive (409).
	ErrDirectoryNotEmpty = errors.New("fileclient: directory not empty")
	// ErrNotDirectory: List of a file.
	ErrNotDirectory = errors.New("fileclient: not a directory")
	// ErrIsDirectory: Open of a directory.
	ErrIsDirectory = errors.New("fileclient: is a directory")
)

// StatusError is any other unexpected answer: 400 (invalid or escaping
// path), 403 (bad signature), 416 (unsatisfiable range), 5xx.
type StatusError struct {
	StatusCode int
	Message    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("fileclient: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Client talks to one agent's file server.
type Client struct {
	// BaseURL is the agent's FileServerURL, for example "http://10.0.0.4:41234".
	BaseURL string
	// Secret is the node's NodeSecret.
	Secret string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// List lists the directory path (relative to the node root, slash
// separated; "" or "." for the root). Entry paths are relative to path;
// recursive includes every descendant, directories included.
func (c *Client) List(ctx context.Context, path string, recursive bool) ([]protocol.FileInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, path, recursive, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := check(resp, path); err != nil {
		return nil, err
	}
	if resp.Header.Get(fileserver.HeaderIsDirectory) != "true" {
		return nil, fmt.Errorf("%w: %s", ErrNotDirectory, path)
	}
	var list []protocol.FileInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("fileclient: decode listing: %w", err)
	}
	return list, nil
}

// Stat returns the properties of a file or directory. Path is path as given;
// times have the one-second precision of HTTP dates.
func (c *Client) Stat(ctx context.Context, path string) (protocol.FileInfo, error) {
	resp, err := c.do(ctx, http.MethodHead, path, false, "")
	if err != nil {
		return protocol.FileInfo{}, err
	}
	defer resp.Body.Close()
	if err := check(resp, path); err != nil {
		return protocol.FileInfo{}, err
	}
	h := resp.Header
	fi := protocol.FileInfo{
		Path:        path,
		IsDirectory: h.Get(fileserver.HeaderIsDirectory) == "true",
		FileMode:    h.Get(fileserver.HeaderFileMode),
	}
	if !fi.IsDirectory {
		fi.Size, _ = strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	}
	if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		fi.LastModified = t.UTC()
	}
	if t, err := http.ParseTime(h.Get(fileserver.HeaderCreationTime)); err == nil {
		fi.CreationTime = t.UTC()
	}
	return fi, nil
}

// Open starts reading a file. rangeHeader, if not empty, is sent as the
// Range header ("bytes=0-99"). On success the status is 200 or 206 and the
// caller must close the Body; the response headers carry Content-Length,
// Content-Range, Last-Modified and the X-Kiln-* properties.
func (c *Client) Open(ctx context.Context, path string, rangeHeader string) (*http.Response, error) {
	resp, err := c.do(ctx, http.MethodGet, path, false, rangeHeader)
	if err != nil {
		return nil, err
	}
	if err := check(resp, path); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if resp.Header.Get(fileserver.HeaderIsDirectory) == "true" {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s", ErrIsDirectory, path)
	}
	return resp, nil
}

// Delete removes a file, or a directory (with everything in it when
// recursive; without recursive a non-empty directory gives
// ErrDirectoryNotEmpty).
func (c *Client) Delete(ctx context.Context, path string, recursive bool) error {
	resp, err := c.do(ctx, http.MethodDelete, path, recursive, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return check(resp, path)
}

func (c *Client) do(ctx context.Context, method, path string, recursive bool, rangeHeader string) (*http.Response, error) {
	u, err := url.Parse(strings.TrimSuffix(c.BaseURL, "/") + fileserver.PathPrefix + escape(path))
	if err != nil {
		return nil, fmt.Errorf("fileclient: %w", err)
	}
	if recursive {
		u.RawQuery = "recursive=true"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fileclient: %w", err)
	}
	date := time.Now().UTC().Format(time.RFC3339)
	req.Header.Set(fileserver.HeaderDate, date)
	req.Header.Set(fileserver.HeaderSignature, fileserver.Sign(c.Secret, method, req.URL.EscapedPath(), date))
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fileclient: %w", err)
	}
	return resp, nil
}

// escape percent-encodes each segment of a slash-separated path.
func escape(path string) string {
	path = strings.TrimPrefix(path, "/")
	if path == "" || path == "." {
		return ""
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func check(resp *http.Response, path string) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	case http.StatusConflict:
		return fmt.Errorf("%w: %s", ErrDirectoryNotEmpty, path)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return &StatusError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
}
