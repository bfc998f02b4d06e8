package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrInvalidMarker is returned for a list marker Kiln did not hand out.
var ErrInvalidMarker = errors.New("storage: invalid list marker")

// ErrInvalidProperty is returned for a content type or metadata name the
// bucket cannot store.
var ErrInvalidProperty = errors.New("storage: invalid blob property")

// DefaultContentType is the content type of a blob written without one, as
// in Azure.
const DefaultContentType = "application/octet-stream"

// MaxListResults is the largest page ListBlobs returns, Azure's limit.
const MaxListResults = 5000

// BlobInfo describes a blob.
type BlobInfo struct {
	Name               string
	Size               int64
	LastModified       time.Time
	CreationTime       time.Time // LastModified when the bucket does not know
	ETag               string    // quoted
	ContentType        string
	ContentEncoding    string
	ContentLanguage    string
	ContentDisposition string
	CacheControl       string
	ContentMD5         []byte // nil when the bucket does not know it
	Metadata           map[string]string
}

// PutOptions are the properties of a blob being written.
type PutOptions struct {
	ContentType        string // DefaultContentType when empty
	ContentEncoding    string
	ContentLanguage    string
	ContentDisposition string
	CacheControl       string
	Metadata           map[string]string // names are stored lowercased
	// ContentMD5, when set, is checked against the content: the write fails
	// with ErrMD5Mismatch and leaves nothing behind when they differ.
	ContentMD5 []byte
}

// infoFrom builds a BlobInfo from gocloud attributes.
func infoFrom(name string, a *blob.Attributes) BlobInfo {
	etag := a.ETag
	switch {
	case etag == "":
		etag = timeETag(a.ModTime)
	case !strings.HasPrefix(etag, "\"") && !strings.HasPrefix(etag, "W/"):
		etag = "\"" + etag + "\""
	}
	created := a.CreateTime
	if created.IsZero() {
		created = a.ModTime
	}
	ct := a.ContentType
	if ct == "" { // an object written into the bucket by something else
		ct = DefaultContentType
	}
	return BlobInfo{
		Name:               name,
		Size:               a.Size,
		LastModified:       a.ModTime,
		CreationTime:       created,
		ETag:               etag,
		ContentType:        ct,
		ContentEncoding:    a.ContentEncoding,
		ContentLanguage:    a.ContentLanguage,
		ContentDisposition: a.ContentDisposition,
		CacheControl:       a.CacheControl,
		ContentMD5:         a.MD5,
		Metadata:           a.Metadata,
	}
}

// notFound turns a bucket "not found" for a blob into ErrBlobNotFound or,
// when the container is missing too, ErrContainerNotFound.
func (s *Storage) notFound(ctx context.Context, container, name string) error {
	if err := s.requireContainer(ctx, container); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s/%s", ErrBlobNotFound, container, name)
}

// Attributes returns the properties of a blob.
func (s *Storage) Attributes(ctx context.Context, container, name string) (BlobInfo, error) {
	if err := s.validate(container, name); err != nil {
		return BlobInfo{}, err
	}
	a, err := s.bucket.Attributes(ctx, blobKey(container, name))
	if isNotFound(err) {
		return BlobInfo{}, s.notFound(ctx, container, name)
	}
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: blob %s/%s: %w", container, name, err)
	}
	return infoFrom(name, a), nil
}

// Reader reads a range of a blob. Info describes the whole blob.
type Reader struct {
	Info   BlobInfo
	Offset int64 // first byte read
	Length int64 // bytes Read returns in all
	r      io.ReadCloser
}

// Read reads blob content.
func (r *Reader) Read(p []byte) (int, error) { return r.r.Read(p) }

// Close releases the reader.
func (r *Reader) Close() error { return r.r.Close() }

// NewReader opens length bytes of a blob from offset; a negative length
// reads to the end. The range is clamped to the blob's size; an offset
// beyond the end reads nothing. The caller must Close the reader.
func (s *Storage) NewReader(ctx context.Context, container, name string, offset, length int64) (*Reader, error) {
	if offset < 0 {
		return nil, fmt.Errorf("storage: negative offset %d", offset)
	}
	// The attributes and the content come from two calls; a blob replaced in
	// between would pair the old ETag with new bytes, so try again then.
	for attempt := 0; ; attempt++ {
		info, err := s.Attributes(ctx, container, name)
		if err != nil {
			return nil, err
		}
		r, err := s.openRange(ctx, container, name, info, offset, length)
		if errors.Is(err, errBlobChanged) && attempt < 2 {
			continue
		}
		return r, err
	}
}

// errBlobChanged is returned by openRange when the blob is no longer the
// one info describes.
var errBlobChanged = errors.New("storage: the blob changed while being opened")

// openRange opens a range of the blob that info describes, and fails with
// errBlobChanged when the blob read is of another size or time.
func (s *Storage) openRange(ctx context.Context, container, name string, info BlobInfo, offset, length int64) (*Reader, error) {
	off, n := clampRange(offset, length, info.Size)
	if n == 0 {
		// Object stores answer 416 to a range at the end of a blob, an
		// empty one included; there is nothing to read anyway.
		return &Reader{Info: info, Offset: off, r: io.NopCloser(strings.NewReader(""))}, nil
	}
	r, err := s.bucket.NewRangeReader(ctx, blobKey(container, name), off, n, nil)
	if isNotFound(err) {
		return nil, s.notFound(ctx, container, name)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read blob %s/%s: %w", container, name, err)
	}
	if r.Size() != info.Size || !r.ModTime().Equal(info.LastModified) {
		_ = r.Close()
		return nil, errBlobChanged
	}
	return &Reader{Info: info, Offset: off, Length: n, r: r}, nil
}

// clampRange fits offset and length (negative: to the end) into a blob of
// size bytes.
func clampRange(offset, length, size int64) (int64, int64) {
	if offset > size {
		offset = size
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	return offset, length
}

// Put writes a blob from r, replacing any blob of that name. Content
// streams to the bucket; nothing is held in memory. When r fails, ctx ends
// or the MD5 differs from opts.ContentMD5, nothing is written. The returned
// info has the MD5 of the content when the bucket or the caller knows it
// (object stores do not for multipart uploads).
func (s *Storage) Put(ctx context.Context, container, name string, r io.Reader, opts PutOptions) (BlobInfo, error) {
	if err := s.validate(container, name); err != nil {
		return BlobInfo{}, err
	}
	if err := s.requireContainer(ctx, container); err != nil {
		return BlobInfo{}, err
	}
	key := blobKey(container, name)
	if err := s.write(ctx, key, r, opts); err != nil {
		return BlobInfo{}, fmt.Errorf("storage: put blob %s/%s: %w", container, name, err)
	}
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: put blob %s/%s: %w", container, name, err)
	}
	info := infoFrom(name, a)
	if info.ContentMD5 == nil {
		info.ContentMD5 = opts.ContentMD5 // checked while writing
	}
	return info, nil
}

// writerOptions checks opts and converts them for gocloud.
func writerOptions(opts PutOptions) (*blob.WriterOptions, error) {
	ct := opts.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return nil, fmt.Errorf("%w: content type %q: %v", ErrInvalidProperty, ct, err)
	}
	seen := make(map[string]bool, len(opts.Metadata))
	for k := range opts.Metadata {
		lk := strings.ToLower(k)
		if !metadataName.MatchString(k) || seen[lk] {
			return nil, fmt.Errorf("%w: metadata name %q must be a unique identifier (letters, digits, underscores)", ErrInvalidProperty, k)
		}
		seen[lk] = true
	}
	return &blob.WriterOptions{
		ContentType:        ct,
		ContentEncoding:    opts.ContentEncoding,
		ContentLanguage:    opts.ContentLanguage,
		ContentDisposition: opts.ContentDisposition,
		CacheControl:       opts.CacheControl,
		Metadata:           opts.Metadata,
		ContentMD5:         opts.ContentMD5,
		// Object stores buffer one part per concurrent upload: 8 MiB x 3
		// bounds the memory of one upload while keeping it fast.
		BufferSize:     8 << 20,
		MaxConcurrency: 3,
	}, nil
}

// metadataName is Azure's rule for metadata names (C# identifiers, ASCII).
var metadataName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// write streams r into key. On any failure the write is abandoned, so the
// key keeps its old content. gocloud's Writer hashes what it writes and
// checks opts.ContentMD5, so Kiln does not hash again.
func (s *Storage) write(ctx context.Context, key string, r io.Reader, opts PutOptions) error {
	wopts, err := writerOptions(opts)
	if err != nil {
		return err
	}
	// Cancelling the writer's context before Close is gocloud's way to
	// abandon a write.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, wopts)
	if err != nil {
		return s.writeError(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close()
		return s.writeError(err)
	}
	if err := w.Close(); err != nil {
		if len(opts.ContentMD5) > 0 && gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return fmt.Errorf("%w (sent %s)", ErrMD5Mismatch, base64.StdEncoding.EncodeToString(opts.ContentMD5))
		}
		return s.writeError(err)
	}
	return nil
}

// writeError names the file-system limits of a directory bucket.
func (s *Storage) writeError(err error) error {
	switch {
	case s.dir != "" && isDirConflict(err):
		return fmt.Errorf("%w: a blob name cannot be both a blob and a prefix of other blob names in a directory-backed storage (%v)", ErrNameConflict, err)
	case s.dir != "" && isNameTooLong(err):
		return fmt.Errorf("%w: the name is too long for the file system of a directory-backed storage", ErrInvalidName)
	}
	return err
}

// DeleteBlob deletes a blob and any blocks staged for it.
func (s *Storage) DeleteBlob(ctx context.Context, container, name string) error {
	if err := s.validate(container, name); err != nil {
		return err
	}
	err := s.bucket.Delete(ctx, blobKey(container, name))
	if isNotFound(err) {
		return s.notFound(ctx, container, name)
	}
	if err != nil {
		return fmt.Errorf("storage: delete blob %s/%s: %w", container, name, err)
	}
	_ = s.deleteBlocks(ctx, container, name)
	return nil
}

// ListBlobs returns up to max blobs (MaxListResults when max <= 0) of a
// container whose names start with prefix, in name order, and the marker
// of the next page ("" after the last page). Pass "" as marker for the
// first page.
func (s *Storage) ListBlobs(ctx context.Context, container, prefix, marker string, max int) ([]BlobInfo, string, error) {
	blobs, _, next, err := s.ListBlobsHierarchy(ctx, container, prefix, "", marker, max)
	return blobs, next, err
}

// ListBlobsHierarchy is ListBlobs with a delimiter: names that contain the
// delimiter after prefix are rolled up into prefixes ending with it, each
// returned once (in the page where it comes first). An empty delimiter
// lists flat.
func (s *Storage) ListBlobsHierarchy(ctx context.Context, container, prefix, delimiter, marker string, max int) (blobs []BlobInfo, prefixes []string, next string, err error) {
	if err := ValidateContainerName(container); err != nil {
		return nil, nil, "", err
	}
	if max <= 0 || max > MaxListResults {
		max = MaxListResults
	}
	token := blob.FirstPageToken
	if marker != "" {
		token, err = base64.RawURLEncoding.DecodeString(marker)
		if err != nil || len(token) == 0 {
			return nil, nil, "", fmt.Errorf("%w: %q", ErrInvalidMarker, marker)
		}
	}
	if err := s.requireContainer(ctx, container); err != nil {
		return nil, nil, "", err
	}
	keyPrefix := blobKey(container, "")
	objs, nextToken, err := s.bucket.ListPage(ctx, token, max, &blob.ListOptions{Prefix: keyPrefix + prefix, Delimiter: delimiter})
	if err == io.EOF {
		return nil, nil, "", nil
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("storage: list blobs of %s: %w", container, err)
	}
	var names []string
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, keyPrefix)
		switch {
		case o.IsDir:
			prefixes = append(prefixes, name)
		case s.hidden(name):
		default:
			names = append(names, name)
		}
	}
	blobs, err = s.describe(ctx, container, names)
	if err != nil {
		return nil, nil, "", err
	}
	if len(nextToken) > 0 {
		next = base64.RawURLEncoding.EncodeToString(nextToken)
	}
	return blobs, prefixes, next, nil
}

// tmpFileName matches the temporary files fileblob writes next to the final
// file when it cannot use os.TempDir: "<name>.<hex nanoseconds>.tmp".
var tmpFileName = regexp.MustCompile(`\.[0-9a-f]{8,16}\.tmp$`)

// hidden reports whether a listed name is an artefact of the bucket, not a
// blob.
func (s *Storage) hidden(name string) bool {
	return s.validateBlobName(name) != nil || (s.tmpNextToFile && tmpFileName.MatchString(name))
}

// describe reads the attributes of the named blobs, a few at a time since
// each is a request to an object store. Blobs deleted meanwhile are left
// out.
func (s *Storage) describe(ctx context.Context, container string, names []string) ([]BlobInfo, error) {
	infos := make([]BlobInfo, len(names))
	found := make([]bool, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, err := s.bucket.Attributes(ctx, blobKey(container, name))
			switch {
			case isNotFound(err):
			case err != nil:
				errs[i] = err
			default:
				infos[i], found[i] = infoFrom(name, a), true
			}
		}()
	}
	wg.Wait()
	out := infos[:0]
	for i := range infos {
		if errs[i] != nil {
			return nil, fmt.Errorf("storage: list blobs of %s: %w", container, errs[i])
		}
		if found[i] {
			out = append(out, infos[i])
		}
	}
	return out, nil
}
