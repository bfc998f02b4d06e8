package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Accounts: one server holds several Batch accounts, each with its own keys,
// pools, jobs, schedules, certificates and storage. Every object of the
// service is keyed by its account (key(account, id)), and every call of
// Operations names the account the request authenticated as, so an
// account reaches only its own objects. Creating and deleting accounts is
// Kiln's own (Azure does it through ARM); the API allows it to the server's
// admin account only (internal/api/accounts.go).

// accountNameRE is Azure's rule for Batch account names.
var accountNameRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// ValidateAccountName checks Azure's rule for account names: 3 to 24
// lower-case letters and digits.
func ValidateAccountName(name string) error {
	if !accountNameRE.MatchString(name) {
		return batch.InvalidProperty("accountName", name, "An account name is 3 to 24 lower-case letters and digits.")
	}
	return nil
}

// ErrAccountNotFound is the error for an account that does not exist.
var ErrAccountNotFound = batch.Errorf(http.StatusNotFound, "AccountNotFound", "The specified account does not exist.")

// CreateAccount creates an account. key is its primary key in base64
// (empty: generated); the secondary key is always generated. A name that
// is taken, in any case, is 409 AccountAlreadyExists.
func (s *Service) CreateAccount(ctx context.Context, name, key string) (store.Account, error) {
	if err := ValidateAccountName(name); err != nil {
		return store.Account{}, err
	}
	if key != "" {
		if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) == 0 {
			return store.Account{}, batch.InvalidProperty("key", "(hidden)", "The key must be base64, as Azure shows account keys.")
		}
	} else {
		key = NewKey()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[strings.ToLower(name)]; ok {
		return store.Account{}, accountExists(name)
	}
	a := store.Account{Name: name, PrimaryKey: key, SecondaryKey: NewKey(), CreationTime: s.now()}
	if err := s.cfg.Store.AccountInsert(context.WithoutCancel(ctx), a); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.Account{}, accountExists(name)
		}
		return store.Account{}, err
	}
	if err := s.addAccountLocked(a); err != nil {
		return store.Account{}, err
	}
	return a, nil
}

func accountExists(name string) error {
	return batch.Conflict("AccountAlreadyExists", "The specified account already exists.").With("accountName", name)
}

// Accounts returns every account with its keys, sorted by name.
func (s *Service) Accounts() []store.Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a.Account)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}

// accountDeleter is a store that can delete accounts (both of Kiln's do).
type accountDeleter interface {
	AccountDelete(ctx context.Context, name string) error
}

// DeleteAccount deletes an account: its keys stop verifying at once. An
// account that still has pools, jobs, job schedules or certificates is
// refused (409 AccountNotEmpty): delete those first, so that nothing a
// running task depends on disappears underneath it. Its storage is the
// caller's to delete (the server does, internal/server).
func (s *Service) DeleteAccount(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[strings.ToLower(name)]
	if !ok {
		return ErrAccountNotFound.With("accountName", name)
	}
	var pools, jobs, scheds, certs int
	for _, p := range s.pools {
		if strings.EqualFold(p.account, name) {
			pools++
		}
	}
	for _, j := range s.jobs {
		if strings.EqualFold(j.account, name) {
			jobs++
		}
	}
	for _, sc := range s.sched.byKey {
		if strings.EqualFold(sc.account, name) {
			scheds++
		}
	}
	s.certs.mu.Lock()
	for _, c := range s.certs.byKey {
		if strings.EqualFold(c.account, name) {
			certs++
		}
	}
	s.certs.mu.Unlock()
	if pools+jobs+scheds+certs > 0 {
		return batch.Conflict("AccountNotEmpty",
			"The account still has %d pools, %d jobs, %d job schedules and %d certificates; delete them first.", pools, jobs, scheds, certs).
			With("accountName", name)
	}
	d, ok := s.cfg.Store.(accountDeleter)
	if !ok {
		return batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This store cannot delete accounts.")
	}
	if err := d.AccountDelete(context.WithoutCancel(ctx), a.Name); err != nil {
		return fmt.Errorf("delete account %s: %w", name, err)
	}
	delete(s.accounts, strings.ToLower(name))
	if t := s.st.accounts[strings.ToLower(name)]; t != nil {
		delete(s.st.dirtyAccounts, t)
		delete(s.st.accounts, strings.ToLower(name))
	}
	return nil
}
