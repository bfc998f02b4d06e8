package server

import (
	"context"
	"fmt"

	"github.com/kilnbatch/kiln/internal/applications"
	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/internal/store"
)

// Several accounts on one server (docs/accounts.md): the service keys every
// object by account; here the server adds what is outside the service: each
// account's storage (a prefix of the bucket, <server>/storage/<account>),
// its applications in that storage, and the admin account that may create
// and delete accounts (the server's own, whose credentials are in
// credentials.json).

// openApplications opens the application registry over the storage of
// every stored account.
func openApplications(ctx context.Context, st store.Store, blobs *storage.Storage, links *storageLinks) (*applications.Registry, error) {
	accts, err := st.AccountList(ctx)
	if err != nil {
		return nil, fmt.Errorf("applications: %w", err)
	}
	names := make([]string, 0, len(accts))
	for _, a := range accts {
		names = append(names, a.Name)
	}
	return applications.Open(ctx, applications.StorageBlobs(blobs), links.BlobURL, names)
}

// AdminAccount is the account allowed to manage accounts: the server's own.
func (o serverOps) AdminAccount() string {
	o.srv.credMu.Lock()
	defer o.srv.credMu.Unlock()
	return o.srv.Creds.AccountName
}

// CreateAccount creates an account; its storage URLs are signed from then
// on.
func (o serverOps) CreateAccount(ctx context.Context, name, key string) (store.Account, error) {
	a, err := o.Service.CreateAccount(ctx, name, key)
	if err == nil {
		o.srv.links.put(a)
	}
	return a, err
}

// DeleteAccount deletes an account (the service refuses one that still has
// pools, jobs, schedules or certificates), then its applications and
// storage. Its keys stop verifying before the storage goes, so nothing
// signed by it can write meanwhile.
func (o serverOps) DeleteAccount(ctx context.Context, name string) error {
	if err := o.Service.DeleteAccount(ctx, name); err != nil {
		return err
	}
	o.srv.links.drop(name)
	o.srv.apps.DropAccount(name)
	if err := o.srv.blobs.DeleteAccount(context.WithoutCancel(ctx), name); err != nil {
		return fmt.Errorf("account %s deleted, but not all of its storage: %w", name, err)
	}
	return nil
}
