package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Accounts: Azure creates and deletes Batch accounts through ARM, which
// Kiln does not have, so Kiln adds routes under /kiln/accounts, behind
// Shared Key authentication by the server's admin account (the account the
// server was started with: KILN_ACCOUNT_NAME, else the first one; its
// credentials are in credentials.json). Any other account gets 403
// AuthorizationFailure.
//
//	POST   /kiln/accounts                 {"name", "key"?} → 201 {"accountName", "primary", "secondary", "creationTime"}
//	GET    /kiln/accounts                 {"value": [{"accountName", "creationTime", "admin"}]}
//	GET    /kiln/accounts/{accountName}   the account with its keys
//	DELETE /kiln/accounts/{accountName}   200; 409 AccountNotEmpty while it has pools, jobs, schedules or certificates

// accountOperations is implemented by the server's operations (the service
// plus what the server adds: the admin, deleting storage).
type accountOperations interface {
	AdminAccount() string
	CreateAccount(ctx context.Context, name, key string) (store.Account, error)
	Accounts() []store.Account
	Account(name string) (store.Account, bool)
	DeleteAccount(ctx context.Context, name string) error
}

// accountDoc is an account as the account routes answer it; keys only for
// one account, not in lists.
type accountDoc struct {
	AccountName  string     `json:"accountName"`
	Primary      string     `json:"primary,omitempty"`
	Secondary    string     `json:"secondary,omitempty"`
	CreationTime *time.Time `json:"creationTime,omitempty"`
	Admin        bool       `json:"admin"`
}

type createAccountRequest struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

func (s *server) accountRoutes(h func(string, func(*call) error)) {
	h("POST /kiln/accounts", s.accountCreate)
	h("GET /kiln/accounts", s.accountList)
	h("GET /kiln/accounts/{accountName}", s.accountGet)
	h("DELETE /kiln/accounts/{accountName}", s.accountDelete)
}

// adminOps returns the account operations when the caller is the admin.
func (s *server) adminOps(c *call) (accountOperations, error) {
	ops, ok := s.ops.(accountOperations)
	if !ok {
		return nil, batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This Kiln server cannot manage accounts.")
	}
	if admin := ops.AdminAccount(); admin == "" || !strings.EqualFold(admin, c.account) {
		return nil, batch.Errorf(http.StatusForbidden, "AuthorizationFailure",
			"This request is not authorized to perform this operation: only the server's admin account manages accounts.")
	}
	return ops, nil
}

func docOf(a store.Account, admin string, keys bool) accountDoc {
	d := accountDoc{AccountName: a.Name, Admin: strings.EqualFold(a.Name, admin)}
	if !a.CreationTime.IsZero() {
		t := a.CreationTime.UTC()
		d.CreationTime = &t
	}
	if keys {
		d.Primary, d.Secondary = a.PrimaryKey, a.SecondaryKey
	}
	return d
}

func (s *server) accountCreate(c *call) error {
	ops, err := s.adminOps(c)
	if err != nil {
		return err
	}
	var req createAccountRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	if req.Name == "" {
		return batch.MissingProperty("name")
	}
	a, err := ops.CreateAccount(c.r.Context(), req.Name, req.Key)
	if err != nil {
		return err
	}
	return c.writeJSON(http.StatusCreated, docOf(a, ops.AdminAccount(), true))
}

func (s *server) accountList(c *call) error {
	ops, err := s.adminOps(c)
	if err != nil {
		return err
	}
	admin := ops.AdminAccount()
	out := struct {
		Value []accountDoc `json:"value"`
	}{Value: []accountDoc{}}
	for _, a := range ops.Accounts() {
		out.Value = append(out.Value, docOf(a, admin, false))
	}
	return c.writeJSON(http.StatusOK, out)
}

func (s *server) accountGet(c *call) error {
	ops, err := s.adminOps(c)
	if err != nil {
		return err
	}
	name := c.r.PathValue("accountName")
	a, ok := ops.Account(name)
	if !ok {
		return batch.Errorf(http.StatusNotFound, "AccountNotFound", "The specified account does not exist.").With("accountName", name)
	}
	return c.writeJSON(http.StatusOK, docOf(a, ops.AdminAccount(), true))
}

func (s *server) accountDelete(c *call) error {
	ops, err := s.adminOps(c)
	if err != nil {
		return err
	}
	name := c.r.PathValue("accountName")
	if strings.EqualFold(name, ops.AdminAccount()) {
		return batch.Conflict("AccountIsAdmin", "The server's admin account cannot be deleted.").With("accountName", name)
	}
	if err := ops.DeleteAccount(c.r.Context(), name); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}
