// Package fileserver is the node agent's file server: it exposes the node
// root directory to the Kiln server as described in the "File server of the
// agent" section of package protocol.
//
//	GET    /files/{path}?recursive=true   directory: JSON []protocol.FileInfo; file: content (Range, conditional requests)
//	HEAD   /files/{path}                  Content-Length, Last-Modified, X-Kiln-Is-Directory, X-Kiln-Creation-Time, X-Kiln-File-Mode
//	DELETE /files/{path}?recursive=true   204; non-empty directory without recursive: 409
//
// Every request must carry a valid signature (Sign) or gets 403. A path with
// a ".." element, or one that leaves the root through a symbolic link, gets
// 400; a missing file 404. All access goes through an os.Root, so symbolic
// links created by tasks cannot reach outside the node root.
package fileserver

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// PathPrefix is the URL path under which files are served.
const PathPrefix = "/files/"

// Server serves one directory tree. It is an http.Handler.
type Server struct {
	root   *os.Root
	secret func() string
}

// New serves the directory dir. secret returns the current NodeSecret; while
// it returns "" every request is refused (the agent has not registered yet).
func New(dir string, secret func() string) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Server{root: root, secret: secret}, nil
}

// Close releases the root directory.
func (s *Server) Close() error { return s.root.Close() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !verify(s.secret(), r.Method, escapedPath(r), r.Header.Get(HeaderDate), r.Header.Get(HeaderSignature), time.Now()) {
		http.Error(w, "missing, invalid or expired signature", http.StatusForbidden)
		return
	}
	if r.URL.Path != strings.TrimSuffix(PathPrefix, "/") && !strings.HasPrefix(r.URL.Path, PathPrefix) {
		http.NotFound(w, r)
		return
	}
	name, ok := parsePath(r.URL.Path)
	if !ok {
		http.Error(w, "invalid path", http.StatusBadRequest)
		return
	}
	recursive := false
	if v := r.URL.Query().Get("recursive"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, "invalid recursive parameter", http.StatusBadRequest)
			return
		}
		recursive = b
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, name, recursive)
	case http.MethodDelete:
		s.delete(w, name, recursive)
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// escapedPath is the request path exactly as sent, which is what was signed.
func escapedPath(r *http.Request) string {
	if p, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasPrefix(p, "/") {
		return p
	}
	return r.URL.EscapedPath()
}

// parsePath turns the decoded URL path into a slash-separated path relative
// to the root ("." for the root). Any ".." element is refused.
func parsePath(urlPath string) (string, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(urlPath, strings.TrimSuffix(PathPrefix, "/")), "/")
	if strings.IndexByte(rel, 0) >= 0 {
		return "", false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == ".." {
			return "", false
		}
	}
	if rel == "" {
		return ".", true
	}
	name := path.Clean(rel)
	return name, fs.ValidPath(name)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, name string, recursive bool) {
	// O_NONBLOCK keeps a FIFO left by a task from blocking the open.
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		fail(w, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fail(w, err)
		return
	}
	h := w.Header()
	h.Set(HeaderIsDirectory, strconv.FormatBool(fi.IsDir()))
	h.Set(HeaderCreationTime, creationTime(fi).UTC().Format(http.TimeFormat))
	h.Set(HeaderFileMode, fileMode(fi))
	switch {
	case fi.IsDir():
		h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
		if r.Method == http.MethodHead {
			h.Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return
		}
		list, err := s.list(name, f, recursive)
		if err != nil {
			fail(w, err)
			return
		}
		h.Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	case fi.Mode().IsRegular():
		h.Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", fi.ModTime(), f)
	default:
		http.Error(w, "not a regular file or directory", http.StatusBadRequest)
	}
}

// list returns the entries of directory name (open as dir), sorted by path;
// recursive walks the whole tree. Paths are relative to name. Entries are
// described with lstat: a symbolic link is listed as itself.
func (s *Server) list(name string, dir *os.File, recursive bool) ([]protocol.FileInfo, error) {
	out := []protocol.FileInfo{}
	if !recursive {
		entries, err := dir.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if fi, err := e.Info(); err == nil { // vanished since ReadDir: skip
				out = append(out, fileInfo(e.Name(), fi))
			}
		}
		slices.SortFunc(out, func(a, b protocol.FileInfo) int { return strings.Compare(a.Path, b.Path) })
		return out, nil
	}
	err := fs.WalkDir(s.root.FS(), name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == name {
				return err
			}
			return nil // unreadable or vanished entry: leave it out
		}
		if p == name {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel := p
		if name != "." {
			rel = strings.TrimPrefix(p, name+"/")
		}
		out = append(out, fileInfo(rel, fi))
		return nil
	})
	return out, err
}

func (s *Server) delete(w http.ResponseWriter, name string, recursive bool) {
	if name == "." {
		http.Error(w, "refusing to delete the node root", http.StatusBadRequest)
		return
	}
	fi, err := s.root.Lstat(name)
	if err != nil {
		fail(w, err)
		return
	}
	if fi.IsDir() && recursive {
		err = s.root.RemoveAll(name)
	} else {
		err = s.root.Remove(name)
	}
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		http.Error(w, "directory not empty", http.StatusConflict)
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fail maps a file system error to a status.
func fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		http.Error(w, "not found", http.StatusNotFound)
	case isEscape(err):
		http.Error(w, "path escapes the node root", http.StatusBadRequest)
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "permission denied", http.StatusForbidden)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// isEscape reports whether err is os.Root refusing a path that leaves the
// root (through a symbolic link). The os package does not export that error,
// so it is recognised by its text.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}
