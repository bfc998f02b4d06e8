// Package applications keeps Kiln's application packages: named
// applications with versions, each version a zip file that nodes extract
// before tasks run (Azure Batch's applicationPackageReferences).
//
// Everything lives in Kiln storage, as Azure keeps packages in the Batch
// account's linked storage account: container "kiln-applications" of each
// account's own storage holds <application>.json (the application and its
// versions) and <application>/<version>.zip. The registry keeps every
// application in memory, so resolving a reference while dispatching a task
// does no I/O.
package applications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Container is the storage container, in each account's storage, that
// holds the account's applications.
const Container = "kiln-applications"

// Blobs is the part of Kiln storage the registry uses; every call is in
// the storage of one account.
type Blobs interface {
	// EnsureContainer creates a container unless it exists.
	EnsureContainer(ctx context.Context, account, container string) error
	Put(ctx context.Context, account, container, name string, r io.Reader, contentType string) error
	Get(ctx context.Context, account, container, name string) (io.ReadCloser, error)
	Delete(ctx context.Context, account, container, name string) error
	// List returns the names of the blobs that start with prefix; none
	// when the container does not exist.
	List(ctx context.Context, account, container, prefix string) ([]string, error)
}

// Errors of the registry; the API maps them to Azure's codes.
var (
	ErrApplicationNotFound = errors.New("application not found")
	ErrVersionNotFound     = errors.New("application package version not found")
	ErrNoDefaultVersion    = errors.New("no version given and the application has no default version")
	ErrInvalidName         = errors.New("invalid name")
	ErrUpdatesNotAllowed   = errors.New("the application does not allow updates of existing versions")
)

// Application is one application and its package versions.
type Application struct {
	ID             string              `json:"id"`
	DisplayName    string              `json:"displayName,omitempty"`
	DefaultVersion string              `json:"defaultVersion,omitempty"`
	AllowUpdates   bool                `json:"allowUpdates"`
	Versions       map[string]*Package `json:"versions"`
}

// Package is one version of an application.
type Package struct {
	Version            string    `json:"id"`
	State              string    `json:"state"` // always "active": a package exists once uploaded
	Format             string    `json:"format"`
	Size               int64     `json:"size"`
	LastActivationTime time.Time `json:"lastActivationTime"`
}

// VersionList returns the application's versions, sorted.
func (a *Application) VersionList() []string {
	out := make([]string, 0, len(a.Versions))
	for v := range a.Versions {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Update is a change of an application's properties; nil fields keep their
// value.
type Update struct {
	DisplayName    *string `json:"displayName"`
	DefaultVersion *string `json:"defaultVersion"`
	AllowUpdates   *bool   `json:"allowUpdates"`
}

// Signer makes a signed read URL of a blob in an account's Kiln storage.
type Signer func(account, container, blob string, expiry time.Time) string

// Registry is the set of applications of every account.
type Registry struct {
	blobs Blobs
	sign  Signer
	now   func() time.Time

	mu   sync.RWMutex
	apps map[string]*Application // by key(account, id)
}

// nameRE is Azure's rule for application names and versions: letters,
// digits, hyphens, underscores and periods, at most 64.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func key(account, id string) string { return strings.ToLower(account) + "/" + strings.ToLower(id) }

// Open loads the applications of the accounts from storage. An account
// created later starts with none.
func Open(ctx context.Context, blobs Blobs, sign Signer, accounts []string) (*Registry, error) {
	r := &Registry{blobs: blobs, sign: sign, now: time.Now, apps: map[string]*Application{}}
	for _, account := range accounts {
		names, err := blobs.List(ctx, account, Container, "")
		if err != nil {
			return nil, fmt.Errorf("applications of %s: %w", account, err)
		}
		for _, name := range names {
			if strings.Contains(name, "/") || !strings.HasSuffix(name, ".json") {
				continue
			}
			a, err := r.read(ctx, account, name)
			if err != nil {
				return nil, fmt.Errorf("applications of %s: %s: %w", account, name, err)
			}
			r.apps[key(account, a.ID)] = a
		}
	}
	return r, nil
}

// DropAccount forgets the applications of an account (its storage is
// deleted with it).
func (r *Registry) DropAccount(account string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix := strings.ToLower(account) + "/"
	for k := range r.apps {
		if strings.HasPrefix(k, prefix) {
			delete(r.apps, k)
		}
	}
}

func (r *Registry) read(ctx context.Context, account, name string) (*Application, error) {
	rc, err := r.blobs.Get(ctx, account, Container, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var a Application
	if err := json.NewDecoder(rc).Decode(&a); err != nil {
		return nil, err
	}
	if a.Versions == nil {
		a.Versions = map[string]*Package{}
	}
	return &a, nil
}

func metaBlob(id string) string {
	return strings.ToLower(id) + ".json"
}

func zipBlob(id, version string) string {
	return strings.ToLower(id) + "/" + version + ".zip"
}

// write stores a copy of a; callers hold r.mu.
func (r *Registry) write(ctx context.Context, account string, a *Application) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	if err := r.blobs.EnsureContainer(ctx, account, Container); err != nil {
		return err
	}
	return r.blobs.Put(ctx, account, Container, metaBlob(a.ID), strings.NewReader(string(b)), "application/json")
}

func clone(a *Application) *Application {
	c := *a
	c.Versions = make(map[string]*Package, len(a.Versions))
	for v, p := range a.Versions {
		cp := *p
		c.Versions[v] = &cp
	}
	return &c
}

// List returns the account's applications sorted by id (copies).
func (r *Registry) List(account string) []*Application {
	r.mu.RLock()
	defer r.mu.RUnlock()
	prefix := strings.ToLower(account) + "/"
	var out []*Application
	for k, a := range r.apps {
		if strings.HasPrefix(k, prefix) {
			out = append(out, clone(a))
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].ID) < strings.ToLower(out[j].ID) })
	return out
}

// Get returns one application (a copy).
func (r *Registry) Get(account, id string) (*Application, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.apps[key(account, id)]
	if !ok {
		return nil, ErrApplicationNotFound
	}
	return clone(a), nil
}

// Put creates an application or changes its properties; created says which.
func (r *Registry) Put(ctx context.Context, account, id string, u Update) (a *Application, created bool, err error) {
	if !nameRE.MatchString(id) {
		return nil, false, fmt.Errorf("%w: application id %q (letters, digits, '-', '_' and '.', at most 64)", ErrInvalidName, id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.apps[key(account, id)]
	if ok {
		a = clone(old)
	} else {
		a, created = &Application{ID: id, AllowUpdates: true, Versions: map[string]*Package{}}, true
	}
	if u.DisplayName != nil {
		a.DisplayName = *u.DisplayName
	}
	if u.AllowUpdates != nil {
		a.AllowUpdates = *u.AllowUpdates
	}
	if u.DefaultVersion != nil {
		if v := *u.DefaultVersion; v != "" {
			if _, ok := a.Versions[v]; !ok {
				return nil, false, fmt.Errorf("%w: %s version %s", ErrVersionNotFound, id, v)
			}
		}
		a.DefaultVersion = *u.DefaultVersion
	}
	if err := r.write(ctx, account, a); err != nil {
		return nil, false, err
	}
	r.apps[key(account, id)] = a
	return clone(a), created, nil
}

// Delete removes an application and its packages.
func (r *Registry) Delete(ctx context.Context, account, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.apps[key(account, id)]
	if !ok {
		return ErrApplicationNotFound
	}
	for v := range a.Versions {
		if err := r.blobs.Delete(ctx, account, Container, zipBlob(a.ID, v)); err != nil {
			return err
		}
	}
	if err := r.blobs.Delete(ctx, account, Container, metaBlob(a.ID)); err != nil {
		return err
	}
	delete(r.apps, key(account, id))
	return nil
}

// PutVersion stores a package version's zip file, streamed from body. The
// application must exist. Replacing a version needs allowUpdates.
func (r *Registry) PutVersion(ctx context.Context, account, id, version string, body io.Reader) (*Package, error) {
	if !nameRE.MatchString(version) {
		return nil, fmt.Errorf("%w: version %q (letters, digits, '-', '_' and '.', at most 64)", ErrInvalidName, version)
	}
	r.mu.RLock()
	a, ok := r.apps[key(account, id)]
	var exists, allow bool
	if ok {
		_, exists = a.Versions[version]
		allow = a.AllowUpdates
	}
	r.mu.RUnlock()
	if !ok {
		return nil, ErrApplicationNotFound
	}
	if exists && !allow {
		return nil, ErrUpdatesNotAllowed
	}
	// Upload outside the lock: packages can be large.
	cr := &countingReader{r: body}
	if err := r.blobs.EnsureContainer(ctx, account, Container); err != nil {
		return nil, err
	}
	if err := r.blobs.Put(ctx, account, Container, zipBlob(a.ID, version), cr, "application/zip"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.apps[key(account, id)]
	if !ok {
		return nil, ErrApplicationNotFound
	}
	next := clone(cur)
	p := &Package{Version: version, State: "active", Format: "zip", Size: cr.n, LastActivationTime: r.now().UTC()}
	next.Versions[version] = p
	if err := r.write(ctx, account, next); err != nil {
		return nil, err
	}
	r.apps[key(account, id)] = next
	cp := *p
	return &cp, nil
}

// DeleteVersion removes a package version; the default version is cleared
// when it is the one removed.
func (r *Registry) DeleteVersion(ctx context.Context, account, id, version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.apps[key(account, id)]
	if !ok {
		return ErrApplicationNotFound
	}
	if _, ok := cur.Versions[version]; !ok {
		return ErrVersionNotFound
	}
	next := clone(cur)
	delete(next.Versions, version)
	if next.DefaultVersion == version {
		next.DefaultVersion = ""
	}
	if err := r.write(ctx, account, next); err != nil {
		return err
	}
	r.apps[key(account, id)] = next
	return r.blobs.Delete(ctx, account, Container, zipBlob(cur.ID, version))
}

// urlLifetime is how long a package URL given to an agent stays valid.
const urlLifetime = 7 * 24 * time.Hour

// Resolve finds the version a reference means (the default version when
// version is empty) and returns the order to install it, with a signed URL
// of its zip file. It does no I/O.
func (r *Registry) Resolve(account, id, version string) (protocol.Package, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.apps[key(account, id)]
	if !ok {
		return protocol.Package{}, fmt.Errorf("%w: %s", ErrApplicationNotFound, id)
	}
	if version == "" {
		if a.DefaultVersion == "" {
			return protocol.Package{}, fmt.Errorf("%w: %s", ErrNoDefaultVersion, id)
		}
		version = a.DefaultVersion
	}
	p, ok := a.Versions[version]
	if !ok {
		return protocol.Package{}, fmt.Errorf("%w: %s version %s", ErrVersionNotFound, id, version)
	}
	return protocol.Package{
		ApplicationID: id,
		Version:       version,
		IsDefault:     version == a.DefaultVersion,
		URL:           r.sign(strings.ToLower(account), Container, zipBlob(a.ID, version), r.now().Add(urlLifetime)),
		Revision:      p.LastActivationTime.UTC().Format(time.RFC3339Nano),
	}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
