package protocol

// Task users (docs/task-isolation.md): Assignment.User and
// NodeConfig.UserAccounts.

// UserIdentity is a task's userIdentity: a pool user account (UserName),
// or an auto-user of scope "pool" or "task", admin or not.
type UserIdentity struct {
	UserName string `json:"userName,omitempty"`
	Scope    string `json:"scope,omitempty"` // auto-user: "pool" (default) or "task"
	Admin    bool   `json:"admin,omitempty"` // elevationLevel admin
}

// UserAccount is one of the pool's userAccounts.
type UserAccount struct {
	Name     string `json:"name"`
	Password string `json:"password,omitempty"`
	Admin    bool   `json:"admin,omitempty"`
	// UID and GID (linuxUserConfiguration) are set together or not at all.
	UID           *int   `json:"uid,omitempty"`
	GID           *int   `json:"gid,omitempty"`
	SSHPrivateKey string `json:"sshPrivateKey,omitempty"`
}
