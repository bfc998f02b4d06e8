package service

import (
	"context"
	"net/http"
	"strings"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Account keys: Azure gives every Batch account a primary and a secondary
// key; both verify requests (AccountKeys returns both), and either can be
// regenerated while clients move to the other one.

// Account returns an account with its keys.
func (s *Service) Account(name string) (store.Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[strings.ToLower(name)]
	if !ok {
		return store.Account{}, false
	}
	return a.Account, true
}

// RegenerateAccountKey replaces the account's primary or secondary key
// (keyName "primary" or "secondary", case-insensitive) by a new random one
// and returns the account. The old key stops verifying at once; the new
// keys are in the store before this returns (persisted is always true; it
// stays in the signature for the API's answer).
func (s *Service) RegenerateAccountKey(ctx context.Context, name, keyName string) (acct store.Account, persisted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.accounts[strings.ToLower(name)]
	if !ok {
		return store.Account{}, false, batch.Errorf(http.StatusNotFound, "AccountNotFound", "The specified account does not exist.")
	}
	a := st.Account
	switch strings.ToLower(keyName) {
	case "primary":
		a.PrimaryKey = NewKey()
	case "secondary":
		a.SecondaryKey = NewKey()
	default:
		return store.Account{}, false, batch.InvalidProperty("keyName", keyName, "keyName must be primary or secondary.")
	}
	if err := s.cfg.Store.AccountUpdate(context.WithoutCancel(ctx), a); err != nil {
		return store.Account{}, false, err
	}
	persisted = true
	// addAccountLocked builds a new keys slice: a request being verified
	// with the old one is not disturbed.
	if err := s.addAccountLocked(a); err != nil {
		return store.Account{}, false, err
	}
	return a, persisted, nil
}
