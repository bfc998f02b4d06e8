package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Node user accounts (ComputeNode_AddUser, UpdateUser, DeleteUser): real
// accounts of the node's machine, made with useradd, chpasswd and usermod.
// The agent must run as root; otherwise each call answers 409
// NodeUserManagementNotSupported. The names the agent created are kept in
// volatile/users.json under the node root, and only those can be updated
// or deleted: an agent never touches an account it did not make.

// usersMu serializes account changes (useradd and friends lock
// /etc/passwd themselves, but the agent's list must follow them).
var usersMu sync.Mutex

// nodeUserName is what useradd accepts without --badname.
var nodeUserName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// usersFile lists the accounts the agent created.
func (a *agent) usersFile() string { return filepath.Join(a.rootDir, dirVolatile, "users.json") }

func (a *agent) loadUsers() map[string]bool {
	m := map[string]bool{}
	if b, err := os.ReadFile(a.usersFile()); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

func (a *agent) saveUsers(m map[string]bool) error {
	if err := os.MkdirAll(filepath.Dir(a.usersFile()), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	return os.WriteFile(a.usersFile(), b, 0o600)
}

var errNotRoot = opsErrorf(http.StatusConflict, "NodeUserManagementNotSupported",
	"The node's agent does not run as root, so it cannot manage user accounts on this node.")

func canManageUsers() error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}

func (a *agent) opUserAdd(w http.ResponseWriter, r *http.Request) {
	var o protocol.NodeUserOrder
	if err := decodeOp(r, &o); err != nil {
		opsAnswer(w, 0, nil, err)
		return
	}
	opsAnswer(w, http.StatusCreated, nil, a.addUser(o))
}

func (a *agent) opUserUpdate(w http.ResponseWriter, r *http.Request) {
	var o protocol.NodeUserOrder
	if err := decodeOp(r, &o); err != nil {
		opsAnswer(w, 0, nil, err)
		return
	}
	o.Name = r.PathValue("name")
	opsAnswer(w, http.StatusOK, nil, a.updateUser(o))
}

func (a *agent) opUserDelete(w http.ResponseWriter, r *http.Request) {
	opsAnswer(w, http.StatusOK, nil, a.deleteUser(r.PathValue("name")))
}

func (a *agent) opUsersReset(w http.ResponseWriter, r *http.Request) {
	opsAnswer(w, http.StatusOK, nil, a.removeUsers())
}

func (a *agent) addUser(o protocol.NodeUserOrder) error {
	if err := canManageUsers(); err != nil {
		return err
	}
	if !nodeUserName.MatchString(o.Name) {
		return invalidUserProperty("name", o.Name, "A user name on a Linux node is 1 to 32 lower-case letters, digits, '_' or '-', starting with a letter or '_'.")
	}
	if err := checkSSHKey(o.SSHPublicKey); err != nil {
		return err
	}
	usersMu.Lock()
	defer usersMu.Unlock()
	if _, err := user.Lookup(o.Name); err == nil {
		return opsErrorf(http.StatusConflict, "NodeUserExists", "The specified node user already exists.")
	}
	args := []string{"-m", "-s", "/bin/bash"}
	if !o.ExpiryTime.IsZero() {
		args = append(args, "-e", expiryDate(o.ExpiryTime))
	}
	if err := run(nil, "useradd", append(args, o.Name)...); err != nil {
		return err
	}
	users := a.loadUsers()
	users[o.Name] = true
	if err := a.saveUsers(users); err != nil {
		return err
	}
	if o.IsAdmin {
		if g := adminGroup(); g != "" {
			if err := run(nil, "usermod", "-aG", g, o.Name); err != nil {
				return err
			}
		}
	}
	if err := setPassword(o.Name, o.Password); err != nil {
		return err
	}
	if o.SSHPublicKey != "" {
		return setSSHKey(o.Name, o.SSHPublicKey)
	}
	return nil
}

// updateUser replaces the password, key and expiry of an account the agent
// made: an empty password locks password login, an empty key removes the
// authorized key.
func (a *agent) updateUser(o protocol.NodeUserOrder) error {
	if err := canManageUsers(); err != nil {
		return err
	}
	if err := checkSSHKey(o.SSHPublicKey); err != nil {
		return err
	}
	usersMu.Lock()
	defer usersMu.Unlock()
	if !a.loadUsers()[o.Name] {
		return errUserNotFound(o.Name)
	}
	if !o.ExpiryTime.IsZero() {
		if err := run(nil, "usermod", "-e", expiryDate(o.ExpiryTime), o.Name); err != nil {
			return err
		}
	}
	if err := setPassword(o.Name, o.Password); err != nil {
		return err
	}
	return setSSHKey(o.Name, o.SSHPublicKey)
}

func (a *agent) deleteUser(name string) error {
	if err := canManageUsers(); err != nil {
		return err
	}
	usersMu.Lock()
	defer usersMu.Unlock()
	users := a.loadUsers()
	if !users[name] {
		return errUserNotFound(name)
	}
	if err := userdel(name); err != nil {
		return err
	}
	delete(users, name)
	return a.saveUsers(users)
}

// removeUsers deletes every account the agent made: the node is reimaged
// or leaves its pool.
func (a *agent) removeUsers() error {
	usersMu.Lock()
	defer usersMu.Unlock()
	users := a.loadUsers()
	if len(users) == 0 {
		return nil
	}
	if err := canManageUsers(); err != nil {
		return err
	}
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := userdel(n); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(users, n)
	}
	errs = append(errs, a.saveUsers(users))
	return errors.Join(errs...)
}

// userdel removes an account and its home; an account already gone is not
// an error.
func userdel(name string) error {
	if _, err := user.Lookup(name); err != nil {
		return nil
	}
	// The user's processes would make userdel fail.
	_ = exec.Command("pkill", "-KILL", "-u", name).Run()
	return run(nil, "userdel", "-r", "-f", name)
}

func errUserNotFound(name string) error {
	return opsErrorf(http.StatusNotFound, "NodeUserNotFound", "The specified node user %s does not exist.", name)
}

func invalidUserProperty(name, value, reason string) error {
	return opsErrorf(http.StatusBadRequest, "InvalidPropertyValue", "The value provided for one of the properties in the request body is invalid: %s %q: %s", name, value, reason)
}

// checkSSHKey accepts an OpenSSH public key line (type, base64 key,
// optional comment) on one line.
func checkSSHKey(key string) error {
	if key == "" {
		return nil
	}
	f := strings.Fields(key)
	if strings.ContainsAny(key, "\r\n") || len(f) < 2 || !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") && !strings.HasPrefix(f[0], "sk-") {
		return invalidUserProperty("sshPublicKey", key, "The SSH public key must be in OpenSSH format (ssh-rsa AAAA... or ssh-ed25519 AAAA...).")
	}
	return nil
}

// expiryDate is useradd's -e: a day ("For Linux Compute Nodes, the
// expiryTime has a precision up to a day"). The account expires at the
// start of the day after expiryTime, so it stays usable until then.
func expiryDate(t time.Time) string {
	return t.UTC().AddDate(0, 0, 1).Format("2006-01-02")
}

// adminGroup is the group that grants sudo: sudo (Debian, Ubuntu) or wheel.
func adminGroup() string {
	for _, g := range []string{"sudo", "wheel"} {
		if _, err := user.LookupGroup(g); err == nil {
			return g
		}
	}
	return ""
}

// setPassword sets a password through chpasswd (which hashes it), or locks
// password login when it is empty.
func setPassword(name, password string) error {
	if password == "" {
		return run(nil, "usermod", "-p", "!", name)
	}
	if strings.ContainsAny(password, ":\n\r") {
		return invalidUserProperty("password", "******", "The password must not contain ':' or line breaks.")
	}
	return run([]byte(name+":"+password+"\n"), "chpasswd")
}

// setSSHKey writes the user's ~/.ssh/authorized_keys, or removes it when
// key is empty.
func setSSHKey(name, key string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(u.HomeDir, ".ssh")
	file := filepath.Join(dir, "authorized_keys")
	if key == "" {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(strings.TrimSpace(key)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chown(file, uid, gid)
}

// run runs an account command with stdin; its stderr becomes the error.
func run(stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return opsErrorf(http.StatusInternalServerError, "InternalError", "%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
