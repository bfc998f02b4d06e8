// Package storage is Kiln's storage, the "auto-storage account" of a Kiln
// account: user files (task inputs and outputs, application packages) kept in
// a gocloud.dev/blob bucket (a directory, S3 or Azure Blob Storage) and served
// over HTTP in a subset of the Azure Blob Storage REST protocol, authorised
// by Azure-format SAS tokens signed with the Kiln account key.
//
// Speaking Azure's protocol means one client, the official azblob Go SDK,
// works against Kiln storage, Azurite and real Azure Storage alike; the agent
// and the CLI use it for everything.
//
// Layout in the bucket:
//
//	<container>/<blob name>                         blob contents
//	.kiln/containers/<container>                    the container exists
//	.kiln/blocks/<container>/<sha256 of name>/<id>  a staged (uncommitted) block
//
// Keys under ".kiln/" are never visible as blobs: container names cannot
// start with a dot, so no container prefix can reach them.
//
// The server keeps every account's storage in one bucket, each under a
// prefix "<account>/" with the layout above (Account, AccountsHandler in
// accounts.go).
package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // registers azblob://
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // registers s3://
	"gocloud.dev/gcerrors"
)

// Sentinel errors of the Go API. Errors returned by Storage wrap them with
// detail; test with errors.Is.
var (
	ErrContainerNotFound = errors.New("storage: the specified container does not exist")
	ErrContainerExists   = errors.New("storage: the specified container already exists")
	ErrBlobNotFound      = errors.New("storage: the specified blob does not exist")
	ErrInvalidName       = errors.New("storage: invalid resource name")
	// ErrNameConflict is returned by a directory-backed bucket when a blob
	// name needs a path that is already used the other way round: blob "a"
	// and blob "a/b" cannot both exist in a file system.
	ErrNameConflict = errors.New("storage: the blob name conflicts with an existing blob")
	// ErrMD5Mismatch is returned when the content does not hash to the MD5
	// the client sent.
	ErrMD5Mismatch = errors.New("storage: the MD5 value specified in the request did not match the MD5 value calculated by the server")
	// ErrInvalidBlockID is returned for a block id that is not base64 of at
	// most 64 bytes.
	ErrInvalidBlockID = errors.New("storage: invalid block id")
	// ErrInvalidBlockList is returned by CommitBlocks when a named block was
	// not staged.
	ErrInvalidBlockList = errors.New("storage: the specified block list is invalid")
)

// Hidden key prefixes; see the package comment.
const (
	hiddenPrefix     = ".kiln/"
	containersPrefix = hiddenPrefix + "containers/"
	blocksPrefix     = hiddenPrefix + "blocks/"
)

// Storage is a bucket holding Azure-style containers and blobs. It is safe
// for concurrent use.
type Storage struct {
	bucket *blob.Bucket
	// dir is the bucket's directory for file:// URLs, "" otherwise. A
	// directory has constraints object stores do not (".attrs" sidecars,
	// a name cannot be both a file and a directory).
	dir string
	// tmpNextToFile is true when fileblob writes its temporary files next to
	// the final ones (os.TempDir is on another file system): listings then
	// hide names that look like those temporary files.
	tmpNextToFile bool
	// accounts holds the per-account views of a bucket opened with Open
	// (accounts.go); nil in a view.
	accounts *accountSet
}

// Open opens the bucket at rawURL:
//
//	file:///var/lib/kiln/storage                       a directory, created if missing
//	s3://bucket?region=us-east-1                       AWS S3; credentials from the usual AWS_* variables
//	s3://bucket?endpoint=http://127.0.0.1:7070&use_path_style=true&region=us-east-1&disable_https=true
//	                                                   any S3-compatible server
//	azblob://container                                 Azure Blob Storage (AZURE_STORAGE_ACCOUNT, ...)
//
// The query parameters of s3:// and azblob:// URLs are gocloud.dev's own.
func Open(ctx context.Context, rawURL string) (*Storage, error) {
	st, err := open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	st.accounts = &accountSet{url: rawURL, views: map[string]*Storage{}}
	return st, nil
}

// open opens the bucket at rawURL (see Open).
func open(ctx context.Context, rawURL string) (*Storage, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage: parse bucket URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		return openDir(u)
	case "s3", "azblob":
		b, err := blob.OpenBucket(ctx, rawURL)
		if err != nil {
			return nil, fmt.Errorf("storage: open %s bucket: %w", u.Scheme, err)
		}
		return &Storage{bucket: b}, nil
	default:
		return nil, fmt.Errorf("storage: unsupported bucket URL scheme %q (want file, s3 or azblob)", u.Scheme)
	}
}

// openDir opens a file:// bucket. fileblob is used directly rather than
// through its URL opener so that Kiln chooses where temporary files go.
func openDir(u *url.URL) (*Storage, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("storage: file URL %q must be file:///absolute/path", u.String())
	}
	if len(u.Query()) > 0 {
		return nil, fmt.Errorf("storage: file URL %q takes no query parameters", u.String())
	}
	dir := filepath.Clean(filepath.FromSlash(u.Path))
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("storage: file URL %q needs an absolute path", u.String())
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(hiddenPrefix)), 0o777); err != nil {
		return nil, fmt.Errorf("storage: create bucket directory: %w", err)
	}
	// fileblob writes to a temporary file and renames it into place. A rename
	// from os.TempDir fails across file systems, so try one; when it fails,
	// temporary files go next to the final file instead.
	tmpNext := !renameWorks(os.TempDir(), filepath.Join(dir, filepath.FromSlash(hiddenPrefix)))
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: tmpNext})
	if err != nil {
		return nil, fmt.Errorf("storage: open directory bucket: %w", err)
	}
	return &Storage{bucket: b, dir: dir, tmpNextToFile: tmpNext}, nil
}

// renameWorks reports whether a file created in from can be renamed into to.
func renameWorks(from, to string) bool {
	f, err := os.CreateTemp(from, "kiln-rename-probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	_ = f.Close()
	dst := filepath.Join(to, filepath.Base(name))
	err = os.Rename(name, dst)
	_ = os.Remove(name)
	_ = os.Remove(dst)
	return err == nil
}

// Close closes the bucket.
func (s *Storage) Close() error {
	s.closeAccounts()
	return s.bucket.Close()
}

// blobKey is the bucket key of a blob.
func blobKey(container, name string) string {
	return container + "/" + name
}

// containerKey is the bucket key of a container's marker object.
func containerKey(container string) string {
	return containersPrefix + container
}

// isNotFound reports whether err is gocloud's "no such key".
func isNotFound(err error) bool {
	return gcerrors.Code(err) == gcerrors.NotFound
}

// isDirConflict reports whether err is a directory bucket refusing a path
// that is a file where a directory is needed, or the reverse.
func isDirConflict(err error) bool {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return true
	}
	// Renaming the written file onto a directory of the same name.
	var le *os.LinkError
	return errors.As(err, &le) && (errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY))
}

// isNameTooLong reports whether err is a file system refusing a path as too
// long (a name of many multi-byte characters can pass the segment limit
// and still exceed PATH_MAX).
func isNameTooLong(err error) bool {
	return errors.Is(err, syscall.ENAMETOOLONG)
}
