package service

import (
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// User identities and pool user accounts (docs/task-isolation.md): the
// service validates them and passes them to the agents, which run tasks as
// those users.

// poolUserName is a pool user account's name: Azure allows up to 20
// characters; Kiln creates real Linux accounts, so the name must also be one
// useradd accepts.
var poolUserName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,19}$`)

// validateUserAccounts checks a pool's userAccounts.
func validateUserAccounts(accounts []azbatch.UserAccount) error {
	seen := map[string]bool{}
	for _, u := range accounts {
		name := deref(u.Name)
		if name == "" {
			return batch.MissingProperty("userAccounts.name")
		}
		if !poolUserName.MatchString(name) {
			return batch.InvalidProperty("userAccounts.name", name,
				"A user account name on a Linux pool is 1 to 20 lower-case letters, digits, '_' or '-', starting with a letter or '_'.")
		}
		if seen[name] {
			return batch.InvalidProperty("userAccounts.name", name, "The pool has two user accounts with this name.")
		}
		seen[name] = true
		if deref(u.Password) == "" {
			return batch.MissingProperty("userAccounts.password")
		}
		if strings.ContainsAny(deref(u.Password), ":\r\n") {
			return batch.InvalidProperty("userAccounts.password", "******", "The password must not contain ':' or line breaks.")
		}
		if err := validateElevation("userAccounts.elevationLevel", u.ElevationLevel); err != nil {
			return err
		}
		if l := u.LinuxUserConfiguration; l != nil {
			if (l.UID == nil) != (l.GID == nil) {
				return batch.InvalidProperty("userAccounts.linuxUserConfiguration", name, "The uid and gid properties must be specified together or not at all.")
			}
			if l.UID != nil && (*l.UID < 1 || *l.GID < 1) {
				return batch.InvalidProperty("userAccounts.linuxUserConfiguration.uid", itoa(*l.UID), "The uid and gid must be positive (uid 0 is root).")
			}
		}
	}
	return nil
}

func validateElevation(prop string, e *azbatch.ElevationLevel) error {
	if e == nil {
		return nil
	}
	switch strings.ToLower(string(*e)) {
	case "admin", "nonadmin":
		return nil
	}
	return batch.InvalidProperty(prop, string(*e), "Allowed values are nonadmin and admin.")
}

// validateUserIdentity checks a task's userIdentity.
func validateUserIdentity(prop string, ui *azbatch.UserIdentity) error {
	if ui == nil {
		return nil
	}
	if deref(ui.Username) != "" && ui.AutoUser != nil {
		return batch.InvalidProperty(prop, deref(ui.Username), "The userName and autoUser properties are mutually exclusive.")
	}
	a := ui.AutoUser
	if a == nil {
		return nil
	}
	if err := validateElevation(prop+".autoUser.elevationLevel", a.ElevationLevel); err != nil {
		return err
	}
	if a.Scope != nil {
		switch strings.ToLower(string(*a.Scope)) {
		case "pool", "task":
		default:
			return batch.InvalidProperty(prop+".autoUser.scope", string(*a.Scope), "Allowed values are pool and task.")
		}
	}
	return nil
}

// userOrder is the identity an assignment runs as. Omitted, it is Azure's
// default on Linux nodes: "a non-administrative user unique to the Pool".
func userOrder(ui *azbatch.UserIdentity) *protocol.UserIdentity {
	if ui == nil {
		return nil
	}
	if n := deref(ui.Username); n != "" {
		return &protocol.UserIdentity{UserName: n}
	}
	o := &protocol.UserIdentity{Scope: "pool"}
	if a := ui.AutoUser; a != nil {
		if a.Scope != nil && strings.EqualFold(string(*a.Scope), "task") {
			o.Scope = "task"
		}
		o.Admin = a.ElevationLevel != nil && strings.EqualFold(string(*a.ElevationLevel), "admin")
	}
	return o
}

// userAccountOrders are a pool's userAccounts for its nodes.
func userAccountOrders(accounts []azbatch.UserAccount) []protocol.UserAccount {
	var out []protocol.UserAccount
	for _, u := range accounts {
		o := protocol.UserAccount{
			Name:     deref(u.Name),
			Password: deref(u.Password),
			Admin:    u.ElevationLevel != nil && strings.EqualFold(string(*u.ElevationLevel), "admin"),
		}
		if l := u.LinuxUserConfiguration; l != nil {
			if l.UID != nil && l.GID != nil {
				uid, gid := int(*l.UID), int(*l.GID)
				o.UID, o.GID = &uid, &gid
			}
			o.SSHPrivateKey = deref(l.SSHPrivateKey)
		}
		out = append(out, o)
	}
	return out
}
