package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"golang.org/x/sync/errgroup"

	"github.com/kilnbatch/kiln/internal/agent/outglob"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Logs of the output file uploads, in the task directory, as on Azure
// ("On every file upload, Batch writes two log files to the compute node,
// fileuploadout.txt and fileuploaderr.txt"). They exist only when an upload
// was attempted.
const (
	fileUploadOut = "fileuploadout.txt"
	fileUploadErr = "fileuploaderr.txt"
)

// uploadOutputFiles uploads the task's output files after its process
// exited with exitCode: those whose UploadCondition holds (tasksuccess:
// exit code 0; taskfailure: any other; taskcompletion or none: always).
//
// FilePattern follows Azure's rules (package outglob), resolved by
// taskPattern: relative to the working directory, or, with one leading
// "../", to the task directory (Azure's own example uploads stdout.txt and
// stderr.txt with "../std*.txt"); an absolute pattern must lie inside the
// task directory; $VAR and ${VAR} are expanded from the task's environment
// first. Every file is read through an os.Root on the task directory, so no
// symbolic link makes the agent upload a file from outside it.
//
// The blob name is Path for a pattern without wildcards (the file's name
// when Path is empty); for a pattern with wildcards it is Path, "/", and the
// file's path relative to the pattern's directory before its first wildcard
// (outglob.Pattern.Base), so "../std*.txt" with Path "task1" gives
// task1/stdout.txt and task1/stderr.txt, as in Azure's documentation.
//
// A wildcard pattern that matches nothing uploads nothing; a pattern without
// wildcards that names no file is an error. After a failure the other
// output files are still uploaded; the first failure is returned, a
// *taskError with FileUploadAccessDenied (401, 403),
// FileUploadContainerNotFound, or FileUploadMiscError. Each upload and
// failure is logged in fileuploadout.txt and fileuploaderr.txt.
func uploadOutputFiles(ctx context.Context, hc *http.Client, taskDir string, env []string, files []protocol.OutputFile, exitCode int) error {
	var selected []protocol.OutputFile
	for _, of := range files {
		switch of.UploadCondition {
		case protocol.UploadOnSuccess:
			if exitCode != 0 {
				continue
			}
		case protocol.UploadOnFailure:
			if exitCode == 0 {
				continue
			}
		}
		selected = append(selected, of)
	}
	if len(selected) == 0 {
		return nil
	}
	root, err := os.OpenRoot(taskDir)
	if err != nil {
		return newTaskError(CodeFileUploadMiscError, "task directory: %v", err)
	}
	defer root.Close()
	log, err := openUploadLog(root)
	if err != nil {
		return newTaskError(CodeFileUploadMiscError, "upload logs: %v", err)
	}
	defer log.close()

	vars := envMap(env)
	var first error
	for _, of := range selected {
		if err := uploadOutputFile(ctx, hc, root, taskDir, vars, of, log); err != nil {
			log.errorf("%v", err)
			if first == nil {
				first = err
			}
		}
	}
	log.outf("Finished uploading output files")
	return first
}

// uploadOutputFile uploads the files of one OutputFile.
func uploadOutputFile(ctx context.Context, hc *http.Client, root *os.Root, taskDir string, vars map[string]string,
	of protocol.OutputFile, log *uploadLog) error {
	fail := func(code, format string, args ...any) error {
		return newTaskError(code, "output file pattern %q: %s", of.FilePattern, fmt.Sprintf(format, args...))
	}
	if of.UploadCondition != "" && of.UploadCondition != protocol.UploadOnSuccess &&
		of.UploadCondition != protocol.UploadOnFailure && of.UploadCondition != protocol.UploadOnCompletion {
		return fail(CodeFileUploadMiscError, "unknown uploadCondition %q", of.UploadCondition)
	}
	rel, err := taskPattern(of.FilePattern, taskDir, vars)
	if err != nil {
		return fail(CodeFileUploadMiscError, "%v", err)
	}
	pat, err := outglob.Compile(rel)
	if err != nil {
		return fail(CodeFileUploadMiscError, "%s", strings.TrimPrefix(err.Error(), "outglob: "))
	}
	matches, err := pat.Glob(root.FS())
	if err != nil {
		return fail(CodeFileUploadMiscError, "%s", redactErr(err))
	}
	if len(matches) == 0 {
		if pat.Literal() {
			return fail(CodeFileUploadMiscError, "no file %s in the task directory", rel)
		}
		log.outf("Pattern %q matched no file", of.FilePattern)
		return nil
	}
	cc, err := newContainerClient(of.ContainerURL, hc)
	if err != nil {
		return fail(CodeFileUploadMiscError, "invalid containerUrl")
	}
	headers, metadata, tier, ignored := blobHeaders(of.UploadHeaders)
	for _, h := range ignored {
		log.errorf("Output file pattern %q: upload header %q is not supported; ignored", of.FilePattern, h)
	}
	dest := redact(of.ContainerURL)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(blobParallelFiles)
	for _, m := range matches {
		name := blobName(pat, m, of.Path)
		fileHeaders := *headers
		if fileHeaders.BlobContentType == nil {
			// Without an uploadHeaders Content-Type, guess from the name
			// (video/mp4, text/plain...) as `kiln storage upload` does.
			if ct := mime.TypeByExtension(path.Ext(m)); ct != "" {
				fileHeaders.BlobContentType = &ct
			}
		}
		g.Go(func() error {
			start := time.Now()
			size, err := uploadBlob(gctx, cc, root, m, name, &blockblob.UploadFileOptions{
				BlockSize:   blobBlockSize,
				Concurrency: blobConcurrency,
				HTTPHeaders: &fileHeaders,
				Metadata:    metadata,
				AccessTier:  tier,
			})
			if err != nil {
				return newTaskError(uploadCode(err), "upload %s to %s/%s: %s", m, dest, name, describeStorageErr(err))
			}
			log.outf("Uploaded %s (%d bytes) to %s/%s in %v", m, size, dest, name, time.Since(start).Round(time.Millisecond))
			return nil
		})
	}
	return g.Wait()
}

// uploadBlob uploads the file name of root (slash separated) to blobName.
func uploadBlob(ctx context.Context, cc *container.Client, root *os.Root, name, blobName string, opts *blockblob.UploadFileOptions) (int64, error) {
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	_, err = cc.NewBlockBlobClient(blobName).UploadFile(ctx, f, opts)
	return fi.Size(), err
}

// uploadCode classifies an upload failure.
func uploadCode(err error) string {
	if te := (*taskError)(nil); errors.As(err, &te) {
		return te.code
	}
	switch status, code := storageStatus(err); {
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return CodeFileUploadAccessDenied
	case status == http.StatusNotFound && code == "ContainerNotFound":
		return CodeFileUploadContainerNotFound
	}
	return CodeFileUploadMiscError
}

// taskPattern resolves a filePattern to a slash-separated pattern relative
// to the task directory (see uploadOutputFiles). Only a single leading ".."
// is accepted here, the step from the working directory up to the task
// directory; outglob.Compile refuses any other.
func taskPattern(pattern, taskDir string, vars map[string]string) (string, error) {
	if strings.Contains(pattern, "$") {
		pattern = os.Expand(pattern, func(k string) string { return vars[k] })
	}
	if pattern == "" {
		return "", errors.New("the pattern is empty")
	}
	if path.IsAbs(pattern) {
		dir := filepath.ToSlash(taskDir)
		clean := path.Clean(pattern)
		if !strings.HasPrefix(clean, dir+"/") {
			return "", fmt.Errorf("an absolute pattern must be inside the task directory %s", dir)
		}
		return strings.TrimPrefix(clean, dir+"/"), nil
	}
	segs := strings.Split(pattern, "/")
	for len(segs) > 0 && (segs[0] == "." || segs[0] == "") {
		segs = segs[1:]
	}
	prefix := "wd/"
	if len(segs) > 0 && segs[0] == ".." {
		prefix, segs = "", segs[1:]
	}
	if slices.Contains(segs, "..") {
		return "", errors.New(`".." may only start a pattern, once: the task directory is as far up as a pattern reaches`)
	}
	return prefix + strings.Join(segs, "/"), nil
}

// blobName is the destination of the matched file m (relative to the task
// directory) of pattern pat; see uploadOutputFiles.
func blobName(pat *outglob.Pattern, m, destPath string) string {
	destPath = strings.TrimLeft(destPath, "/")
	if pat.Literal() {
		if destPath != "" {
			return destPath
		}
		return path.Base(m)
	}
	rel := m
	if base := pat.Base(); base != "" {
		rel = strings.TrimPrefix(m, base+"/")
	}
	if destPath == "" {
		return rel
	}
	return strings.TrimSuffix(destPath, "/") + "/" + rel
}

// blobHeaders turns uploadHeaders (names case-insensitive, as in Put Blob)
// into the blob's properties and metadata: Content-Type, Content-Encoding,
// Content-Language, Content-Disposition and Cache-Control (also in their
// x-ms-blob-* forms), x-ms-meta-<name> metadata and x-ms-access-tier. It
// returns the names of headers it does not support.
func blobHeaders(h map[string]string) (*blob.HTTPHeaders, map[string]*string, *blob.AccessTier, []string) {
	var headers blob.HTTPHeaders
	var metadata map[string]*string
	var tier *blob.AccessTier
	var ignored []string
	for k, v := range h {
		v := v
		switch name := strings.ToLower(strings.TrimSpace(k)); {
		case name == "content-type" || name == "x-ms-blob-content-type":
			headers.BlobContentType = &v
		case name == "content-encoding" || name == "x-ms-blob-content-encoding":
			headers.BlobContentEncoding = &v
		case name == "content-language" || name == "x-ms-blob-content-language":
			headers.BlobContentLanguage = &v
		case name == "content-disposition" || name == "x-ms-blob-content-disposition":
			headers.BlobContentDisposition = &v
		case name == "cache-control" || name == "x-ms-blob-cache-control":
			headers.BlobCacheControl = &v
		case strings.HasPrefix(name, "x-ms-meta-") && len(name) > len("x-ms-meta-"):
			if metadata == nil {
				metadata = map[string]*string{}
			}
			metadata[strings.TrimSpace(k)[len("x-ms-meta-"):]] = &v
		case name == "x-ms-access-tier":
			t := blob.AccessTier(v)
			tier = &t
		default:
			ignored = append(ignored, k)
		}
	}
	return &headers, metadata, tier, ignored
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// uploadLog writes fileuploadout.txt and fileuploaderr.txt; uploads run in
// parallel, so lines are written under a lock.
type uploadLog struct {
	mu       sync.Mutex
	out, err io.WriteCloser
}

// openUploadLog creates (truncates) both logs through root, so that a link
// the task left in their place cannot redirect them.
func openUploadLog(root *os.Root) (*uploadLog, error) {
	out, err := root.OpenFile(fileUploadOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	errf, err := root.OpenFile(fileUploadErr, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		out.Close()
		return nil, err
	}
	return &uploadLog{out: out, err: errf}, nil
}

func (l *uploadLog) outf(format string, args ...any) { l.write(l.out, format, args...) }

func (l *uploadLog) errorf(format string, args ...any) { l.write(l.err, format, args...) }

func (l *uploadLog) write(w io.Writer, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(w, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

func (l *uploadLog) close() {
	l.out.Close()
	l.err.Close()
}
