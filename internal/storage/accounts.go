package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"

	"gocloud.dev/blob"
)

// Accounts: one bucket holds the storage of every Kiln account, each under
// a prefix of its own, and the server serves them path-style as Azurite
// does:
//
//	bucket key  <account>/<container>/<blob>, <account>/.kiln/...
//	URL         <server>/storage/<account>/<container>/<blob>?<SAS>
//
// A request is authorised by a SAS signed with a key of the account its
// path names, and reaches only that account's prefix: nothing one account
// signs can read, list or change another's containers. The layout under
// each prefix is the one the package comment describes.

// ErrInvalidAccount is returned for an account name that is not Azure's
// (3 to 24 lower-case letters and digits).
var ErrInvalidAccount = errors.New("storage: invalid account name")

var accountNameRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// accountSet is the per-account views of a bucket opened with Open.
type accountSet struct {
	url   string
	mu    sync.Mutex
	views map[string]*Storage
}

// Account returns the storage of one account: the same bucket under the
// prefix "<account>/". Views are cached and closed with s. name is
// case-insensitive.
func (s *Storage) Account(ctx context.Context, name string) (*Storage, error) {
	if s.accounts == nil {
		return nil, errors.New("storage: Account on an account view")
	}
	name = strings.ToLower(name)
	if !accountNameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: %q (3 to 24 lower-case letters and digits)", ErrInvalidAccount, name)
	}
	a := s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.views[name]; ok {
		return v, nil
	}
	v, err := openAccount(ctx, a.url, name)
	if err != nil {
		return nil, err
	}
	a.views[name] = v
	return v, nil
}

// openAccount opens the view of one account on the bucket at rawURL.
func openAccount(ctx context.Context, rawURL, name string) (*Storage, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage: parse bucket URL: %w", err)
	}
	if u.Scheme == "file" {
		// A directory of its own: the file-system limits (names.go) then
		// count the account's directory too.
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + name
		return openDir(u)
	}
	v, err := open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	v.bucket = blob.PrefixedBucket(v.bucket, name+"/")
	return v, nil
}

// closeAccounts closes the account views of s.
func (s *Storage) closeAccounts() {
	if s.accounts == nil {
		return
	}
	s.accounts.mu.Lock()
	defer s.accounts.mu.Unlock()
	for name, v := range s.accounts.views {
		_ = v.bucket.Close()
		delete(s.accounts.views, name)
	}
}

// DeleteAccount deletes every container and blob of an account.
func (s *Storage) DeleteAccount(ctx context.Context, name string) error {
	v, err := s.Account(ctx, name)
	if err != nil {
		return err
	}
	it := v.bucket.List(nil)
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("storage: delete account %s: %w", name, err)
		}
		if o.IsDir {
			continue
		}
		if err := v.bucket.Delete(ctx, o.Key); err != nil && !isNotFound(err) {
			return fmt.Errorf("storage: delete account %s: %w", name, err)
		}
	}
	if v.dir != "" {
		// Empty directories (and fileblob's sidecars) left behind.
		_ = os.RemoveAll(v.dir)
	}
	s.accounts.mu.Lock()
	if cached, ok := s.accounts.views[strings.ToLower(name)]; ok && cached == v {
		delete(s.accounts.views, strings.ToLower(name))
		_ = v.bucket.Close()
	}
	s.accounts.mu.Unlock()
	return nil
}

// AccountKeys returns the decoded keys (primary and secondary) of an
// account; ok is false for an account that does not exist.
type AccountKeys func(account string) (keys [][]byte, ok bool)

// AccountsHandler serves the storage of every account path-style: the
// first path segment names the account, the rest is what Handler serves,
// and the SAS must be signed with a key of that account. Mounted with
// http.StripPrefix("/storage", ...), URLs are
// http://host:8080/storage/<account>/<container>/<blob>?<sas>.
func (s *Storage) AccountsHandler(keys AccountKeys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
		seg, _, _ := strings.Cut(p, "/")
		name := strings.ToLower(seg)
		fail := func(status int, code, msg string) {
			c := &call{w: w, r: r, id: newRequestID()}
			w.Header().Set("x-ms-request-id", c.id)
			c.fail(status, code, msg)
		}
		if seg == "" {
			fail(http.StatusBadRequest, "InvalidUri", "Kiln storage URLs name the account first: <server>/storage/<account>/<container>/<blob>")
			return
		}
		// An unknown account and a malformed name are refused alike: the
		// request cannot be authenticated, and nothing tells whether an
		// account exists.
		if _, ok := keys(name); !ok || !accountNameRE.MatchString(name) {
			fail(http.StatusForbidden, "AuthenticationFailed",
				"Server failed to authenticate the request: no account "+seg+" on this server.")
			return
		}
		v, err := s.Account(r.Context(), name)
		if err != nil {
			fail(http.StatusInternalServerError, "InternalError", trimPrefix(err))
			return
		}
		signer := Signer{Account: seg, Keys: func() [][]byte {
			k, _ := keys(name)
			return k
		}}
		http.StripPrefix("/"+seg, v.Handler(signer)).ServeHTTP(w, r)
	})
}
