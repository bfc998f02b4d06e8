package api

import (
	"context"
	"net/http"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Account keys: Azure manages them through ARM (listKeys, regenerateKey),
// which Kiln does not have, so Kiln adds routes under /kiln/account, behind
// Shared Key authentication with either key:
//
//	GET  /kiln/account/keys                  {"accountName", "primary", "secondary"}
//	POST /kiln/account/keys/regenerate       {"keyName": "primary"|"secondary"} → the same, with the new key

// accountKeyOperations is implemented by *service.Service.
type accountKeyOperations interface {
	Account(name string) (store.Account, bool)
	RegenerateAccountKey(ctx context.Context, name, keyName string) (store.Account, bool, error)
}

// accountKeysDoc is ARM's BatchAccountKeys, plus whether a regenerated key
// was persisted.
type accountKeysDoc struct {
	AccountName string `json:"accountName"`
	Primary     string `json:"primary"`
	Secondary   string `json:"secondary"`
	Persisted   *bool  `json:"persisted,omitempty"`
}

type regenerateKeyRequest struct {
	KeyName string `json:"keyName"`
}

func (s *server) accountKeyOps() (accountKeyOperations, error) {
	ops, ok := s.ops.(accountKeyOperations)
	if !ok {
		return nil, batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This Kiln server cannot manage account keys.")
	}
	return ops, nil
}

func (s *server) accountKeysList(c *call) error {
	ops, err := s.accountKeyOps()
	if err != nil {
		return err
	}
	a, ok := ops.Account(c.account)
	if !ok {
		return batch.Errorf(http.StatusNotFound, "AccountNotFound", "The specified account does not exist.")
	}
	return c.writeJSON(http.StatusOK, accountKeysDoc{AccountName: a.Name, Primary: a.PrimaryKey, Secondary: a.SecondaryKey})
}

func (s *server) accountKeyRegenerate(c *call) error {
	ops, err := s.accountKeyOps()
	if err != nil {
		return err
	}
	var req regenerateKeyRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	a, persisted, err := ops.RegenerateAccountKey(c.r.Context(), c.account, req.KeyName)
	if err != nil {
		return err
	}
	return c.writeJSON(http.StatusOK, accountKeysDoc{AccountName: a.Name, Primary: a.PrimaryKey, Secondary: a.SecondaryKey, Persisted: &persisted})
}
