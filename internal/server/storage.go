package server

import (
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/storage"
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

// storageLinks signs URLs of Kiln storage for agents. The account is known
// only once the service has loaded it, so the signer is set after New.
type storageLinks struct {
	base string // <public URL>/storage

	mu     sync.RWMutex
	signer storage.Signer
}

func (l *storageLinks) setSigner(s storage.Signer) {
	l.mu.Lock()
	l.signer = s
	l.mu.Unlock()
}

func (l *storageLinks) get() storage.Signer {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.signer
}

// ContainerURL implements service.StorageLinks.
func (l *storageLinks) ContainerURL(container, perms string, expiry time.Time) string {
	return l.get().ContainerURL(l.base, container, perms, expiry)
}

// BlobURL signs a blob URL (applications.Signer).
func (l *storageLinks) BlobURL(container, blob string, expiry time.Time) string {
	return l.get().BlobURL(l.base, container, blob, "r", expiry)
}

// redactURL hides credentials that a bucket URL may carry.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
