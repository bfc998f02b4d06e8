package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/fileclient"
	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/service"
)

// Node and task files: the service says where they are (FileTarget) and the
// API proxies to the agent's file server.

// fileScope is the directory a file request is relative to.
type fileScope struct {
	target service.FileTarget
	// segments of the resource owning the files, e.g. "jobs", j, "tasks", t.
	owner []string
}

func (s *server) taskFiles(c *call) (fileScope, error) {
	jobID, taskID := c.r.PathValue("jobId"), c.r.PathValue("taskId")
	t, err := s.ops.TaskFiles(c.r.Context(), c.account, jobID, taskID)
	return fileScope{t, []string{"jobs", jobID, "tasks", taskID}}, err
}

func (s *server) nodeFiles(c *call) (fileScope, error) {
	poolID, nodeID := c.r.PathValue("poolId"), c.r.PathValue("nodeId")
	t, err := s.ops.NodeFiles(c.r.Context(), c.account, poolID, nodeID)
	return fileScope{t, []string{"pools", poolID, "nodes", nodeID}}, err
}

func (s *server) taskFileList(c *call) error       { return s.fileList(c, s.taskFiles) }
func (s *server) nodeFileList(c *call) error       { return s.fileList(c, s.nodeFiles) }
func (s *server) taskFileGet(c *call) error        { return s.fileGet(c, s.taskFiles) }
func (s *server) nodeFileGet(c *call) error        { return s.fileGet(c, s.nodeFiles) }
func (s *server) taskFileProperties(c *call) error { return s.fileProperties(c, s.taskFiles) }
func (s *server) nodeFileProperties(c *call) error { return s.fileProperties(c, s.nodeFiles) }
func (s *server) taskFileDelete(c *call) error     { return s.fileDelete(c, s.taskFiles) }
func (s *server) nodeFileDelete(c *call) error     { return s.fileDelete(c, s.nodeFiles) }

func (s *server) fileClient(t service.FileTarget) *fileclient.Client {
	return &fileclient.Client{BaseURL: t.ServerURL, Secret: t.Secret, HTTP: s.files}
}

// fileURL is the API URL of file name (relative to the scope).
func (c *call) fileURL(sc fileScope, name string) string {
	return c.resourceURL(append(append([]string(nil), sc.owner...), "files", name)...)
}

// filePath returns the {filePath} of the request relative to the scope,
// slash-separated and cleaned ("" for the scope's directory itself).
func (c *call) filePath() (string, error) {
	p := c.r.PathValue("filePath")
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || strings.IndexByte(seg, 0) >= 0 {
			e := batch.Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid.")
			return "", e.With("FilePath", p).With("Reason", "The file path must be relative and must not contain '..'.")
		}
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	return p, nil
}

// contentType is the Content-Type reported for a file.
func contentType(name string) string {
	if strings.EqualFold(path.Ext(name), ".txt") {
		return "text/plain"
	}
	return "application/octet-stream"
}

// nodeFile is Azure's NodeFile.
type nodeFile struct {
	Name        string         `json:"name"`
	URL         string         `json:"url"`
	IsDirectory bool           `json:"isDirectory"`
	Properties  fileProperties `json:"properties"`
}

type fileProperties struct {
	CreationTime string `json:"creationTime,omitempty"`
	LastModified string `json:"lastModified"`
	// ContentLength is a JSON string for api-version 2024-07-01 and later
	// (OData Int64, what the azbatch SDK parses), a number before.
	ContentLength any    `json:"contentLength"`
	ContentType   string `json:"contentType,omitempty"`
	FileMode      string `json:"fileMode,omitempty"`
}

func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *server) fileList(c *call, scope func(*call) (fileScope, error)) error {
	recursive, err := c.boolParam("recursive")
	if err != nil {
		return err
	}
	f, err := c.filter()
	if err != nil {
		return err
	}
	n, err := c.maxResults(MaxResultsDefault)
	if err != nil {
		return err
	}
	offset, err := c.offset()
	if err != nil {
		return err
	}
	sc, err := scope(c)
	if err != nil {
		return err
	}
	infos, err := s.fileClient(sc.target).List(c.r.Context(), sc.target.Dir, recursive)
	if errors.Is(err, fileclient.ErrNotFound) {
		// The directory is not there (yet): nothing to list.
		infos, err = nil, nil
	}
	if err != nil {
		return s.fileError(c, err, "")
	}
	var docs [][]byte
	for _, fi := range infos {
		nf := c.nodeFile(sc, fi)
		if f != nil && !f.Match(nodeFileMap(nf, fi)) {
			continue
		}
		doc, err := json.Marshal(nf)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	page, next := pageSlice(docs, offset, n)
	link := ""
	if next >= 0 {
		link = c.nextLink(strconv.Itoa(next))
	}
	body, err := listBody(c.metadata("files"), page, nil, link)
	if err != nil {
		return err
	}
	return c.writeBody(body)
}

func (c *call) nodeFile(sc fileScope, fi protocol.FileInfo) nodeFile {
	name := strings.TrimPrefix(path.Clean("/"+fi.Path), "/")
	nf := nodeFile{
		Name:        name,
		URL:         c.fileURL(sc, name),
		IsDirectory: fi.IsDirectory,
		Properties: fileProperties{
			CreationTime: jsonTime(fi.CreationTime),
			LastModified: jsonTime(fi.LastModified),
			FileMode:     fi.FileMode,
		},
	}
	if !fi.IsDirectory {
		nf.Properties.ContentType = contentType(name)
	}
	if c.apiBefore("2024-07-01") {
		nf.Properties.ContentLength = fi.Size
	} else {
		nf.Properties.ContentLength = strconv.FormatInt(fi.Size, 10)
	}
	return nf
}

// nodeFileMap is the NodeFile as $filter sees it (numbers as numbers,
// times as times).
func nodeFileMap(nf nodeFile, fi protocol.FileInfo) map[string]any {
	props := map[string]any{
		"lastModified":  fi.LastModified,
		"contentLength": fi.Size,
	}
	if !fi.CreationTime.IsZero() {
		props["creationTime"] = fi.CreationTime
	}
	if nf.Properties.ContentType != "" {
		props["contentType"] = nf.Properties.ContentType
	}
	if fi.FileMode != "" {
		props["fileMode"] = fi.FileMode
	}
	return map[string]any{
		"name":        nf.Name,
		"url":         nf.URL,
		"isDirectory": nf.IsDirectory,
		"properties":  props,
	}
}

// fileConditions evaluates If-Modified-Since (304) and If-Unmodified-Since
// (412) against a file's modification time.
func fileConditions(c *call, lastModified time.Time) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	lm := lastModified.Truncate(time.Second)
	if !cond.IfModifiedSince.IsZero() && !lm.After(cond.IfModifiedSince) {
		return &batch.Error{Code: "ConditionNotMet", Status: http.StatusNotModified,
			Message: "The condition specified using HTTP conditional header(s) is not met."}
	}
	if !cond.IfUnmodifiedSince.IsZero() && lm.After(cond.IfUnmodifiedSince) {
		return &batch.Error{Code: "ConditionNotMet", Status: http.StatusPreconditionFailed,
			Message: "The condition specified using HTTP conditional header(s) is not met."}
	}
	return nil
}

// fileGet streams a file from the agent. A range asked with ocp-range (the
// Azure header) answers 200 as the spec says; one asked with the standard
// Range header answers 206.
func (s *server) fileGet(c *call, scope func(*call) (fileScope, error)) error {
	rel, err := c.filePath()
	if err != nil {
		return err
	}
	if _, err := c.conditions(); err != nil {
		return err
	}
	rng, azureRange := header(c.r, "ocp-range"), true
	if rng == "" {
		rng, azureRange = header(c.r, "Range"), false
	}
	sc, err := scope(c)
	if err != nil {
		return err
	}
	resp, err := s.fileClient(sc.target).Open(c.r.Context(), path.Join(sc.target.Dir, rel), rng)
	if err != nil {
		return s.fileError(c, err, rel)
	}
	defer resp.Body.Close()
	lastModified, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
	if err := fileConditions(c, lastModified); err != nil {
		return err
	}
	h := c.w.Header()
	c.setFileHeaders(sc, rel, false, lastModified, resp.Header.Get(fileserver.HeaderCreationTime),
		resp.Header.Get(fileserver.HeaderFileMode))
	if v := resp.Header.Get("Content-Length"); v != "" {
		h.Set("Content-Length", v)
	}
	if v := resp.Header.Get("Content-Range"); v != "" {
		h.Set("Content-Range", v)
	}
	h.Set("Accept-Ranges", "bytes")
	status := resp.StatusCode
	if status == http.StatusPartialContent && azureRange {
		status = http.StatusOK
	}
	c.w.WriteHeader(status)
	if _, err := io.Copy(c.w, resp.Body); err != nil {
		s.log.Debug("file download interrupted", "request_id", c.id, "err", err)
	}
	return nil
}

// setFileHeaders sets the file property headers of a file get or HEAD.
func (c *call) setFileHeaders(sc fileScope, rel string, isDir bool, lastModified time.Time, creation, mode string) {
	h := c.w.Header()
	if isDir {
		h.Set("Content-Type", "application/octet-stream")
	} else {
		h.Set("Content-Type", contentType(rel))
	}
	if !lastModified.IsZero() {
		h.Set("Last-Modified", lastModified.UTC().Format(http.TimeFormat))
	}
	if creation == "" && !lastModified.IsZero() {
		creation = lastModified.UTC().Format(http.TimeFormat)
	}
	if creation != "" {
		h.Set("ocp-creation-time", creation)
	}
	h.Set("ocp-batch-file-isdirectory", strconv.FormatBool(isDir))
	h.Set("ocp-batch-file-url", c.fileURL(sc, rel))
	if mode != "" {
		h.Set("ocp-batch-file-mode", mode)
	}
}

// fileProperties answers HEAD on a file or directory.
func (s *server) fileProperties(c *call, scope func(*call) (fileScope, error)) error {
	rel, err := c.filePath()
	if err != nil {
		return err
	}
	if _, err := c.conditions(); err != nil {
		return err
	}
	sc, err := scope(c)
	if err != nil {
		return err
	}
	fi, err := s.fileClient(sc.target).Stat(c.r.Context(), path.Join(sc.target.Dir, rel))
	if err != nil {
		return s.fileError(c, err, rel)
	}
	if err := fileConditions(c, fi.LastModified); err != nil {
		return err
	}
	creation := ""
	if !fi.CreationTime.IsZero() {
		creation = fi.CreationTime.UTC().Format(http.TimeFormat)
	}
	c.setFileHeaders(sc, rel, fi.IsDirectory, fi.LastModified, creation, fi.FileMode)
	c.w.Header().Set("Content-Length", strconv.FormatInt(fi.Size, 10))
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *server) fileDelete(c *call, scope func(*call) (fileScope, error)) error {
	rel, err := c.filePath()
	if err != nil {
		return err
	}
	recursive, err := c.boolParam("recursive")
	if err != nil {
		return err
	}
	if rel == "" {
		e := batch.Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid.")
		return e.With("Reason", "The file path must name a file or directory inside the task or node directory.")
	}
	sc, err := scope(c)
	if err != nil {
		return err
	}
	if err := s.fileClient(sc.target).Delete(c.r.Context(), path.Join(sc.target.Dir, rel), recursive); err != nil {
		return s.fileError(c, err, rel)
	}
	return c.noContent(http.StatusOK, "")
}

// fileError maps a fileclient error to an Azure error.
func (s *server) fileError(c *call, err error, rel string) error {
	var be *batch.Error
	var se *fileclient.StatusError
	switch {
	case errors.As(err, &be):
		return err
	case errors.Is(err, fileclient.ErrNotFound), errors.Is(err, fileclient.ErrNotDirectory):
		return batch.ErrFileNotFound.With("FilePath", rel)
	case errors.Is(err, fileclient.ErrDirectoryNotEmpty):
		e := batch.Errorf(http.StatusConflict, "OperationInvalidForCurrentState", "The specified directory is not empty.")
		return e.With("FilePath", rel).With("Reason", "Set recursive=true to delete a directory and everything in it.")
	case errors.Is(err, fileclient.ErrIsDirectory):
		e := batch.Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid.")
		return e.With("FilePath", rel).With("Reason", "The path is a directory; list it with the List Files operation.")
	case errors.As(err, &se):
		switch se.StatusCode {
		case http.StatusRequestedRangeNotSatisfiable:
			e := batch.Errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidRange",
				"The range specified is invalid for the current size of the resource.")
			return e.With("FilePath", rel)
		case http.StatusBadRequest:
			e := batch.Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid.")
			return e.With("FilePath", rel).With("Reason", se.Message)
		}
		return err // 403 (secret mismatch), 5xx: logged as 500
	case errors.Is(err, context.Canceled) && c.r.Context().Err() != nil:
		return err // the client went away
	}
	// The agent could not be reached.
	s.log.Warn("node file server unreachable", "request_id", c.id, "err", err)
	e := batch.Errorf(http.StatusConflict, "OperationNotValidOnNode",
		"The node's files cannot be reached at the moment.")
	return e.With("Reason", err.Error())
}
