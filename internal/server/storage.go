package server

import (
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/sharedkey"
)

// StorageDirName is the directory of the embedded file:// storage in the
// data directory.
const StorageDirName = "storage"

// storageURL is the bucket URL of cfg: --storage, or a file:// bucket in the
// data directory.
func storageURL(cfg Config) string {
	if cfg.Storage != "" {
		return cfg.Storage
	}
	abs, err := filepath.Abs(filepath.Join(cfg.DataDir, StorageDirName))
	if err != nil {
		abs = filepath.Join(cfg.DataDir, StorageDirName)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// storageLinks signs URLs of Kiln storage for agents, each with the primary
// key of the account whose storage it reaches (<base>/<account>/...). The
// service signs while it holds its lock, so the links keep their own copy
// of the primary keys: set after the service has loaded the accounts, and
// updated by the server when an account is created, deleted or gets a new
// primary key (serverOps).
type storageLinks struct {
	base string // <public URL>/storage

	mu   sync.RWMutex
	keys map[string][]byte // decoded primary key by lower-case account name
}

// setAccounts replaces the keys by those of accts.
func (l *storageLinks) setAccounts(accts []store.Account) {
	keys := map[string][]byte{}
	for _, a := range accts {
		if k, err := sharedkey.DecodeKey(a.PrimaryKey); err == nil {
			keys[strings.ToLower(a.Name)] = k
		}
	}
	l.mu.Lock()
	l.keys = keys
	l.mu.Unlock()
}

// put records an account's current primary key; drop forgets an account.
func (l *storageLinks) put(a store.Account) {
	k, err := sharedkey.DecodeKey(a.PrimaryKey)
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.keys == nil {
		l.keys = map[string][]byte{}
	}
	l.keys[strings.ToLower(a.Name)] = k
	l.mu.Unlock()
}

func (l *storageLinks) drop(name string) {
	l.mu.Lock()
	delete(l.keys, strings.ToLower(name))
	l.mu.Unlock()
}

// signer signs for one account with its current primary key. An unknown
// account gets a signer without a key: its URLs do not verify.
func (l *storageLinks) signer(account string) storage.Signer {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return storage.Signer{Account: strings.ToLower(account), Key: l.keys[strings.ToLower(account)]}
}

// accountBase is the storage URL of one account.
func (l *storageLinks) accountBase(account string) string {
	return l.base + "/" + strings.ToLower(account)
}

// ContainerURL implements service.StorageLinks.
func (l *storageLinks) ContainerURL(account, container, perms string, expiry time.Time) string {
	return l.signer(account).ContainerURL(l.accountBase(account), container, perms, expiry)
}

// BlobURL signs a blob URL (applications.Signer).
func (l *storageLinks) BlobURL(account, container, blob string, expiry time.Time) string {
	return l.signer(account).BlobURL(l.accountBase(account), container, blob, "r", expiry)
}

// redactURL hides credentials that a bucket URL may carry.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
