package agent

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Application packages are installed as Azure installs them: the zip of
// each application version is extracted once per node into its own
// directory under <root>/applications, and tasks find it through
// AZ_BATCH_APP_PACKAGE_* (env.go). An install is atomic: the zip is
// extracted into a temporary directory that is renamed into place only when
// complete, so a directory that exists is a complete install, also for an
// agent restarted on the same root.
const (
	// Prefixes of the temporary files and directories of installs in
	// progress, under dirApplications; leftovers of a crashed agent are
	// removed when the next one starts.
	pkgTempDownload = ".download-"
	pkgTempExtract  = ".extract-"
	// maxSymlinkTarget bounds a symbolic link entry's target.
	maxSymlinkTarget = 4096
)

// packageInstaller installs application packages, each application id and
// version once per node however many tasks ask for it at the same time.
type packageInstaller struct {
	root   *os.Root // the node root
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	locks map[string]chan struct{} // per package; holding it = its one slot taken
	done  map[string]bool          // installed in this agent's life
}

func newPackageInstaller(root *os.Root, client *http.Client, log *slog.Logger) *packageInstaller {
	pi := &packageInstaller{root: root, client: client, log: log, locks: map[string]chan struct{}{}, done: map[string]bool{}}
	pi.removeLeftovers()
	return pi
}

// packageDir is the directory of a package relative to the node root:
// applications/<appid><version>.<hash>, where hash (of the id, version and
// revision) tells apart ids and versions that run together ("ab"+"1" and
// "a"+"b1") or that lose characters a file name cannot hold, and a version
// uploaded again (new revision) from the copy already installed.
func packageDir(p protocol.Package) string {
	sum := sha256.Sum256([]byte(p.ApplicationID + "\x00" + p.Version + "\x00" + p.Revision))
	name := fileNamePart(p.ApplicationID) + fileNamePart(p.Version) + "." + hex.EncodeToString(sum[:4])
	if strings.HasPrefix(name, ".") {
		name = "_" + name // hidden names are the agent's temporary files
	}
	return path.Join(dirApplications, name)
}

// fileNamePart keeps letters, digits, '.', '-' and '_' (at most 64 of them)
// and turns anything else into '_'.
func fileNamePart(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// installAll installs every package (in order, each once). The error names
// the package and carries CodeApplicationPackageError.
func (pi *packageInstaller) installAll(ctx context.Context, pkgs []protocol.Package) error {
	for _, p := range pkgs {
		if err := pi.install(ctx, p); err != nil {
			return newTaskError(CodeApplicationPackageError, "application package %s version %s: %v", p.ApplicationID, p.Version, err)
		}
	}
	return nil
}

// install installs p unless it already is. Concurrent calls for the same
// package wait for the first; if it fails (or its caller is killed) the next
// one tries again: failures are not remembered, the network may be back.
func (pi *packageInstaller) install(ctx context.Context, p protocol.Package) error {
	key := packageDir(p) // id, version and revision
	pi.mu.Lock()
	lock := pi.locks[key]
	if lock == nil {
		lock = make(chan struct{}, 1)
		pi.locks[key] = lock
	}
	pi.mu.Unlock()
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-lock }()

	pi.mu.Lock()
	done := pi.done[key]
	pi.mu.Unlock()
	if done {
		return nil
	}
	dir := packageDir(p)
	if fi, err := pi.root.Stat(dir); err == nil && fi.IsDir() {
		// Installed by an earlier agent on this root.
	} else if err := pi.download(ctx, p, dir); err != nil {
		return err
	}
	pi.mu.Lock()
	pi.done[key] = true
	pi.mu.Unlock()
	return nil
}

// download fetches p's zip, extracts it into a temporary directory and
// renames that to dir.
func (pi *packageInstaller) download(ctx context.Context, p protocol.Package, dir string) error {
	if p.URL == "" {
		return errors.New("the package has no URL")
	}
	suffix := randomSuffix()
	zipName := path.Join(dirApplications, pkgTempDownload+suffix+".zip")
	defer pi.root.Remove(zipName)
	if err := fetchRetrying(ctx, pi.client, pi.root, zipName, p.URL); err != nil {
		return fmt.Errorf("download %s: %w", redact(p.URL), err)
	}
	tmp := path.Join(dirApplications, pkgTempExtract+suffix)
	if err := pi.root.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer pi.root.RemoveAll(tmp) // a no-op once renamed
	if err := pi.extract(zipName, tmp); err != nil {
		return err
	}
	// Tasks execute what we just wrote: no child forked meanwhile may still
	// hold one of our write descriptors (see taskrunner.WaitStarts).
	taskrunner.WaitStarts()
	if err := pi.root.Rename(tmp, dir); err != nil {
		if fi, serr := pi.root.Stat(dir); serr == nil && fi.IsDir() {
			return nil // installed meanwhile by someone else on this root
		}
		return fmt.Errorf("install: %w", err)
	}
	pi.log.Info("application package installed", "application", p.ApplicationID, "version", p.Version, "dir", dir)
	return nil
}

// extract unpacks the zip zipName into the directory dest (both relative to
// the node root). Every write goes through an os.Root on dest, so no entry
// lands outside it; entries whose names leave it ("../x", "/x", "a/../../x",
// zip-slip) and symbolic links pointing out of it fail the whole install
// rather than being skipped: a package that tries either is not one to run.
func (pi *packageInstaller) extract(zipName, dest string) error {
	zf, err := pi.root.Open(zipName)
	if err != nil {
		return err
	}
	defer zf.Close()
	fi, err := zf.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(zf, fi.Size())
	if err != nil {
		return fmt.Errorf("not a valid zip file: %w", err)
	}
	root, err := pi.root.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	type chmod struct {
		name string
		mode fs.FileMode
	}
	var modes []chmod
	for _, f := range zr.File {
		name, err := zipEntryName(f.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", f.Name, err)
			}
		case mode&fs.ModeSymlink != 0:
			if err := extractSymlink(root, f, name); err != nil {
				return fmt.Errorf("entry %q: %w", f.Name, err)
			}
		case mode.IsRegular():
			if err := extractFile(root, f, name); err != nil {
				return fmt.Errorf("entry %q: %w", f.Name, err)
			}
			modes = append(modes, chmod{name, entryPerm(f)})
		default:
			return fmt.Errorf("entry %q: unsupported file type %v", f.Name, mode.Type())
		}
	}
	for _, c := range modes {
		if err := root.Chmod(c.name, c.mode); err != nil {
			return err
		}
	}
	return nil
}

// zipEntryName validates an entry name and returns it in OS form ("." for
// the archive's root). Backslashes count as separators: zips written on
// Windows use them, and "..\\x" must not pass as a file name.
func zipEntryName(raw string) (string, error) {
	name := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("entry %q: absolute name", raw)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", fmt.Errorf("entry %q: the name leaves the package directory", raw)
		}
	}
	local := filepath.FromSlash(path.Clean(name))
	if local != "." && !filepath.IsLocal(local) {
		return "", fmt.Errorf("entry %q: the name leaves the package directory", raw)
	}
	return local, nil
}

func extractFile(root *os.Root, f *zip.File, name string) error {
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err // O_EXCL: a duplicate entry fails instead of overwriting
	}
	_, err = io.Copy(out, rc) // the zip reader checks the CRC at the end
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// extractSymlink creates a symbolic link entry whose target, resolved from
// the link's directory, stays inside the package.
func extractSymlink(root *os.Root, f *zip.File, name string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSymlinkTarget+1))
	if err != nil {
		return err
	}
	target := string(b)
	if len(b) > maxSymlinkTarget || target == "" || path.IsAbs(target) ||
		!filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(filepath.ToSlash(name)), target))) {
		return fmt.Errorf("symbolic link to %q points outside the package", target)
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return root.Symlink(target, name)
}

// Creator systems of zip entries whose external attributes hold Unix modes.
const (
	zipCreatorUnix  = 3
	zipCreatorMacOS = 19
)

// entryPerm is the permission to give an extracted file: the entry's own
// Unix permissions when the zip has them (so executables stay executable),
// else 0755 (zips made on Windows carry no execute bit at all, and Azure's
// own default for files it downloads to Linux nodes, 0770, is executable
// too). The owner can always read and write what the agent extracted.
func entryPerm(f *zip.File) fs.FileMode {
	creator := f.CreatorVersion >> 8
	perm := f.Mode().Perm()
	if (creator != zipCreatorUnix && creator != zipCreatorMacOS) || perm == 0 {
		return 0o755
	}
	return perm | 0o600
}

// removeLeftovers deletes the temporary downloads and extractions of
// installs that a previous agent on this root did not finish.
func (pi *packageInstaller) removeLeftovers() {
	f, err := pi.root.Open(dirApplications)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		if strings.HasPrefix(n, pkgTempDownload) || strings.HasPrefix(n, pkgTempExtract) {
			if err := pi.root.RemoveAll(path.Join(dirApplications, n)); err != nil {
				pi.log.Warn("cannot remove an unfinished package install", "name", n, "err", err)
			}
		}
	}
}

func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
