package agent

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Task isolation (docs/task-isolation.md). An agent running as root runs
// every task as the user its userIdentity names:
//
//   - a non-admin auto-user of scope pool (also the default, as on Azure's
//     Linux nodes): one uid per pool, shared by all such tasks of the pool
//     on every node;
//   - a non-admin auto-user of scope task: a uid of its own per task
//     (attempts of one task, and a multi-instance task's primary and
//     subtask on one node, share it);
//   - an admin auto-user (either scope): root;
//   - a pool user account (userAccounts): a real account made with useradd
//     (with the uid and gid of its linuxUserConfiguration); an admin
//     account is added to the sudo (or wheel) group and keeps every
//     capability (ambient capabilities), root-equivalent without sudo.
//
// Auto-users have no /etc/passwd entry: the pool user's uid is a hash of
// the account and pool (poolUID), task users are uids from a range of 65536
// reserved for the node (uidBase + 65536*slot), so nothing is left behind in /etc/passwd by nodes that come and
// go. A task's directory belongs to its user, mode 0700, so a task cannot
// read another user's task; start, job preparation and job release task
// directories are 0755 (every task of the node reads them), the shared
// directory is 1777. An agent that is not root runs every task as itself.

const (
	poolUIDBase  = 1_000_000_000
	poolUIDRange = 900_000_000
	uidBase      = 2_000_000_000
	uidsPerNode  = 1 << 16
	uidSlots     = 4096
)

// Failure codes of attempts whose user cannot be set up.
const (
	// CodeUserAccountNotFound: userIdentity.userName is not one of the
	// pool's userAccounts.
	CodeUserAccountNotFound = "UserAccountNotFound"
	// CodeUserAccountCreationFailed: the pool user account could not be
	// made on the node.
	CodeUserAccountCreationFailed = "UserAccountCreationFailed"
	// CodeTaskDirectoryPermissionsFailed: the task directory could not be
	// given to the task's user.
	CodeTaskDirectoryPermissionsFailed = "TaskDirectoryPermissionsFailed"
)

// identity is who an attempt runs as.
type identity struct {
	cred  *syscall.Credential // nil: the agent's own user
	caps  []uintptr           // ambient capabilities (admin user accounts)
	user  string              // AZ_BATCH_TASK_USER
	label string              // AZ_BATCH_TASK_USER_IDENTITY
	home  string              // HOME, "" to keep the agent's
	dir   string              // task directory held by a task-scope user
}

// isolation is the node's task users and task cgroups.
type isolation struct {
	on      bool // the agent is root: tasks run as their users
	rootDir string
	log     *slog.Logger
	cg      *cgroups
	base    uint32 // the node's first uid

	mu        sync.Mutex
	taskUsers map[string]*taskUser // by task directory
	next      uint32               // last task-scope index handed out
	accounts  map[string]bool      // pool user accounts made or found
	opened    map[string]bool      // package directories made readable
}

type taskUser struct {
	index uint32
	refs  int
}

// poolUID is the pool auto-user of a pool: the same uid on every node of
// the pool, so that local nodes of one machine (which share its files, like
// the nodes of a cluster with central accounts) agree on who owns what.
func poolUID(account, pool string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(account + "/" + pool))
	return poolUIDBase + h.Sum32()%poolUIDRange
}

// nodeKey names the node's cgroup and uid slot: a hash of its root.
func nodeKey(rootDir string) string {
	h := fnv.New32a()
	h.Write([]byte(rootDir))
	return fmt.Sprintf("%08x", h.Sum32())
}

// newIsolation sets up task isolation for the node root and kills what
// attempts of a previous agent on this root left running.
func newIsolation(rootDir string, log *slog.Logger) *isolation {
	iso := &isolation{rootDir: rootDir, log: log, taskUsers: map[string]*taskUser{},
		accounts: map[string]bool{}, opened: map[string]bool{}}
	iso.cg = newCgroups(nodeKey(rootDir), log)
	if n := iso.cg.cleanLeftovers() + iso.killRecorded(); n > 0 {
		log.Info("killed the processes of attempts a previous agent left running", "attempts", n)
	}
	if os.Geteuid() != 0 {
		log.Info("the agent is not root: tasks run as the agent's user")
		return iso
	}
	slot, err := claimUIDSlot(rootDir)
	if err != nil {
		log.Warn("no uid range for task users: tasks run as root", "err", err)
		return iso
	}
	iso.base = uidBase + uint32(slot)*uidsPerNode
	if b, err := os.ReadFile(iso.nextFile()); err == nil {
		n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		iso.next = uint32(n)
	}
	iso.layoutModes()
	// Task users must reach the root: its ancestors need search permission
	// (only search: nothing in them becomes listable).
	for p := filepath.Dir(rootDir); p != filepath.Dir(p); p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|fi.Mode()&(fs.ModeSticky|fs.ModeSetgid)|0o001); err != nil {
				log.Warn("task users cannot reach the node root", "dir", p, "err", err)
				continue
			}
			log.Info("gave others search permission so task users reach the node root", "dir", p)
		}
	}
	iso.on = true
	return iso
}

// claimUIDSlot picks the node's uid range: a slot claimed by a file naming
// the root directory, shared by every agent of the machine. The slot of a
// root directory that no longer exists is taken over.
func claimUIDSlot(rootDir string) (int, error) {
	dir := "/run/kiln/uid-slots"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		dir = filepath.Join(os.TempDir(), "kiln-uid-slots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
	}
	h := fnv.New32a()
	h.Write([]byte(rootDir))
	start := int(h.Sum32() % uidSlots)
	for i := range uidSlots {
		slot := (start + i) % uidSlots
		name := filepath.Join(dir, strconv.Itoa(slot))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.WriteString(rootDir)
			f.Close()
			return slot, err
		}
		b, rerr := os.ReadFile(name)
		if rerr != nil {
			continue
		}
		owner := string(b)
		if owner == rootDir {
			return slot, nil
		}
		if _, err := os.Stat(owner); errors.Is(err, os.ErrNotExist) {
			if os.WriteFile(name, []byte(rootDir), 0o644) == nil {
				return slot, nil
			}
		}
	}
	return 0, errors.New("every uid slot is taken")
}

// layoutModes gives the node's directories their modes for task users:
// the root 0755, the shared directory 1777 (every task writes there),
// volatile 0700. A reimage makes the directories again, so attempts check.
func (iso *isolation) layoutModes() {
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{".", 0o755}, {dirShared, 0o755 | fs.ModeSticky | 0o022}, {dirVolatile, 0o700}} {
		p := filepath.Join(iso.rootDir, d.name)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSticky) == d.mode {
			continue
		}
		if err := os.Chmod(p, d.mode); err != nil {
			iso.log.Warn("node layout permissions", "dir", d.name, "err", err)
		}
	}
}

func (iso *isolation) nextFile() string {
	return filepath.Join(iso.rootDir, dirVolatile, "taskuser.next")
}

// identity resolves who an attempt runs as. It returns a failed event when
// the user cannot be had.
func (iso *isolation) identity(at *attempt) (*identity, *protocol.Event) {
	u := at.as.User
	if u == nil {
		u = &protocol.UserIdentity{Scope: "pool"}
	}
	label := "PoolNonAdmin"
	switch {
	case u.UserName != "":
		label = u.UserName
	case u.Scope == "task" && u.Admin:
		label = "TaskAdmin"
	case u.Scope == "task":
		label = "TaskNonAdmin"
	case u.Admin:
		label = "PoolAdmin"
	}
	if !iso.on {
		name := "_azbatch"
		if u.UserName != "" {
			name = u.UserName
		}
		return &identity{user: name, label: label}, nil
	}
	if u.UserName != "" {
		return iso.accountIdentity(at, u.UserName)
	}
	if u.Admin {
		return &identity{user: "root", label: label}, nil
	}
	if u.Scope != "task" {
		return &identity{cred: iso.cred(poolUID(at.node.AccountName, at.node.PoolID)), user: "_azbatch", label: label, home: at.dir}, nil
	}
	iso.mu.Lock()
	tu := iso.taskUsers[at.dir]
	if tu == nil {
		iso.next = iso.next%(uidsPerNode-1) + 1
		tu = &taskUser{index: iso.next}
		iso.taskUsers[at.dir] = tu
		_ = os.WriteFile(iso.nextFile(), []byte(strconv.Itoa(int(iso.next))), 0o600)
	}
	tu.refs++
	iso.mu.Unlock()
	return &identity{cred: iso.cred(iso.base + tu.index), user: "_azbatchtask_" + strconv.Itoa(int(tu.index)),
		label: label, home: at.dir, dir: at.dir}, nil
}

func (iso *isolation) cred(uid uint32) *syscall.Credential {
	return &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
}

// release gives back a task-scope user once the attempt is over.
func (iso *isolation) release(id *identity) {
	if id == nil || id.dir == "" {
		return
	}
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if tu := iso.taskUsers[id.dir]; tu != nil {
		if tu.refs--; tu.refs <= 0 {
			delete(iso.taskUsers, id.dir)
		}
	}
}

// accountIdentity is a pool user account, created on first use.
func (iso *isolation) accountIdentity(at *attempt, name string) (*identity, *protocol.Event) {
	var acct *protocol.UserAccount
	for i := range at.node.UserAccounts {
		if at.node.UserAccounts[i].Name == name {
			acct = &at.node.UserAccounts[i]
		}
	}
	if acct == nil {
		ev := failed(CategoryUserError, CodeUserAccountNotFound,
			fmt.Sprintf("The user %q of the task's userIdentity is not one of the pool's userAccounts.", name))
		return nil, &ev
	}
	if err := iso.ensureAccount(*acct); err != nil {
		ev := failed(CategoryServerError, CodeUserAccountCreationFailed, err.Error())
		return nil, &ev
	}
	u, err := user.Lookup(name)
	if err != nil {
		ev := failed(CategoryServerError, CodeUserAccountCreationFailed, err.Error())
		return nil, &ev
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != cred.Gid {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	id := &identity{cred: cred, user: name, label: name, home: u.HomeDir}
	if acct.Admin {
		id.caps = allCaps()
	}
	return id, nil
}

// ensureAccount makes a pool user account on the node once: useradd (with
// its uid and gid, the group made first if missing), its password, the
// admin group for an admin, and its SSH key pair. An account that exists
// already (another node of the pool on the same machine made it) is used
// as it is. Accounts the agent made are listed with the node user
// accounts (users.go) and removed with them.
func (iso *isolation) ensureAccount(acct protocol.UserAccount) error {
	iso.mu.Lock()
	done := iso.accounts[acct.Name]
	iso.mu.Unlock()
	if done {
		if _, err := user.Lookup(acct.Name); err == nil {
			return nil
		}
		// Removed since (a reimage removes the accounts the agent made).
	}
	usersMu.Lock()
	defer usersMu.Unlock()
	if u, err := user.Lookup(acct.Name); err == nil {
		if acct.UID != nil && u.Uid != strconv.Itoa(*acct.UID) {
			return fmt.Errorf("the account %s exists on the node with uid %s, not %d", acct.Name, u.Uid, *acct.UID)
		}
	} else {
		args := []string{"-m", "-s", "/bin/bash"}
		if acct.UID != nil && acct.GID != nil {
			if _, err := user.LookupGroupId(strconv.Itoa(*acct.GID)); err != nil {
				if err := run(nil, "groupadd", "-g", strconv.Itoa(*acct.GID), acct.Name); err != nil {
					return err
				}
			}
			args = append(args, "-u", strconv.Itoa(*acct.UID), "-g", strconv.Itoa(*acct.GID))
		}
		if err := run(nil, "useradd", append(args, acct.Name)...); err != nil {
			return err
		}
		a := &agent{rootDir: iso.rootDir}
		users := a.loadUsers()
		users[acct.Name] = true
		if err := a.saveUsers(users); err != nil {
			return err
		}
		if err := setPassword(acct.Name, acct.Password); err != nil {
			return err
		}
		if acct.Admin {
			if g := adminGroup(); g != "" {
				if err := run(nil, "usermod", "-aG", g, acct.Name); err != nil {
					return err
				}
			}
		}
		if acct.SSHPrivateKey != "" {
			if err := setSSHKeyPair(acct.Name, acct.SSHPrivateKey); err != nil {
				return err
			}
		}
	}
	iso.mu.Lock()
	iso.accounts[acct.Name] = true
	iso.mu.Unlock()
	return nil
}

// setSSHKeyPair installs a private key as ~/.ssh/id_rsa and, when
// ssh-keygen can derive its public key, id_rsa.pub and authorized_keys:
// what Azure does for inter-node SSH.
func setSSHKeyPair(name, key string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := filepath.Join(u.HomeDir, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	priv := filepath.Join(dir, "id_rsa")
	if err := os.WriteFile(priv, []byte(strings.TrimSpace(key)+"\n"), 0o600); err != nil {
		return err
	}
	files := []string{dir, priv}
	if out, err := execOutput("ssh-keygen", "-y", "-f", priv); err == nil {
		pub := strings.TrimSpace(string(out)) + "\n"
		for _, f := range []string{"id_rsa.pub", "authorized_keys"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(pub), 0o600); err != nil {
				return err
			}
			files = append(files, filepath.Join(dir, f))
		}
	}
	for _, f := range files {
		if err := os.Chown(f, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// prepareDirs gives an attempt's directory to its user: the whole tree
// (resource files the agent downloaded included) belongs to it; the
// directory is private (0700) but for start, job preparation and job
// release tasks (0755), which every task of the node may read.
func (iso *isolation) prepareDirs(at *attempt, id *identity) *protocol.Event {
	if id.cred == nil {
		return nil
	}
	uid, gid := int(id.cred.Uid), int(id.cred.Gid)
	err := filepath.WalkDir(at.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err == nil {
		mode := fs.FileMode(0o700)
		switch at.as.Kind {
		case protocol.KindStartTask, protocol.KindJobPreparation, protocol.KindJobRelease:
			mode = 0o755
		}
		err = os.Chmod(at.dir, mode)
	}
	if err != nil {
		ev := failed(CategoryServerError, CodeTaskDirectoryPermissionsFailed, err.Error())
		return &ev
	}
	return nil
}

// openPackages makes installed application packages readable (and, where
// the owner may execute, executable) by every task user, once per
// directory.
func (iso *isolation) openPackages(pkgs []protocol.Package) {
	if !iso.on {
		return
	}
	for _, p := range pkgs {
		dir := filepath.Join(iso.rootDir, filepath.FromSlash(packageDir(p)))
		iso.mu.Lock()
		done := iso.opened[dir]
		iso.opened[dir] = true
		iso.mu.Unlock()
		if done {
			continue
		}
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			m := fi.Mode().Perm() | 0o044
			if d.IsDir() || m&0o100 != 0 {
				m |= 0o011
			}
			if m != fi.Mode().Perm() {
				_ = os.Chmod(p, m|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
			}
			return nil
		})
	}
}

// Process records: each running attempt's process group, user and cgroup
// are recorded in volatile/procs, so that an agent started after a kill -9
// of this one kills what it left running (the cgroup even if the new agent
// runs in another cgroup than the old one, the group where there is none).

func (iso *isolation) procsDir() string { return filepath.Join(iso.rootDir, dirVolatile, "procs") }

func (iso *isolation) recordProcess(attemptID string, pgid int, id *identity, cgroup string) {
	uid := os.Geteuid()
	if id != nil && id.cred != nil {
		uid = int(id.cred.Uid)
	}
	if err := os.MkdirAll(iso.procsDir(), 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(iso.procsDir(), safeName(attemptID)),
			fmt.Appendf(nil, "%d %d %s\n", pgid, uid, cgroup), 0o600)
	}
}

func (iso *isolation) forgetProcess(attemptID string) {
	_ = os.Remove(filepath.Join(iso.procsDir(), safeName(attemptID)))
}

// killRecorded kills the recorded process groups of a previous agent: every
// process in such a group that runs as the recorded user. It returns how
// many groups still had processes.
func (iso *isolation) killRecorded() int {
	ents, err := os.ReadDir(iso.procsDir())
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(iso.procsDir(), e.Name())
		b, err := os.ReadFile(p)
		var pgid, uid int
		if err == nil {
			f := strings.Fields(string(b))
			if len(f) >= 2 {
				pgid, _ = strconv.Atoi(f[0])
				uid, _ = strconv.Atoi(f[1])
			}
			killed := false
			if len(f) >= 3 && strings.HasPrefix(filepath.Base(f[2]), "a-") && strings.HasPrefix(filepath.Base(filepath.Dir(f[2])), "kiln-") {
				killed = iso.cg.populated(f[2])
				iso.cg.remove(f[2])
			}
			if pgid > 1 && killGroupOf(pgid, uid) {
				killed = true
			}
			if killed {
				n++
			}
		}
		_ = os.Remove(p)
	}
	return n
}

// isolate readies an attempt's user, directory and cgroup, just before its
// process starts (after its resource files are in place). It returns the
// completed event of an attempt that cannot run.
func (a *agent) isolate(at *attempt) *protocol.Event {
	id, fail := a.iso.identity(at)
	if fail != nil {
		return fail
	}
	if id.cred != nil {
		a.iso.layoutModes()
	}
	at.ident = id
	if fail := a.iso.prepareDirs(at, id); fail != nil {
		return fail
	}
	at.cgroup = a.iso.cg.attemptCgroup(at.as.AttemptID)
	a.iso.cg.limit(at.cgroup, at.as.RequiredSlots)
	return nil
}

// isolated completes a process spec with the attempt's user and cgroup.
func (at *attempt) isolated(spec taskrunner.Spec) taskrunner.Spec {
	if at.ident != nil {
		spec.Credential, spec.AmbientCaps = at.ident.cred, at.ident.caps
	}
	spec.Cgroup = at.cgroup
	return spec
}

// started records a started process (process record above).
func (a *agent) started(at *attempt, p *taskrunner.Process) {
	a.iso.recordProcess(at.as.AttemptID, p.Pid(), at.ident, at.cgroup)
}

// killTree kills the attempt's process group and its cgroup: everything it
// started, daemons that left the group included.
func (a *agent) killTree(at *attempt, p *taskrunner.Process) {
	p.Kill()
	a.iso.cg.kill(at.cgroup)
}

// ended runs once the attempt's process has exited: what it left running
// in its cgroup is killed (but for a start task, whose daemons may serve
// the node's tasks; a later agent on this root kills them), its record
// removed and a task-scope user given back.
func (a *agent) ended(at *attempt) {
	if at.over {
		return
	}
	at.over = true
	if at.cgroup != "" {
		if at.as.Kind != protocol.KindStartTask || !a.iso.cg.populated(at.cgroup) {
			a.iso.cg.remove(at.cgroup)
		}
	}
	a.iso.forgetProcess(at.as.AttemptID)
	a.iso.release(at.ident)
}

// close removes the node's cgroup parent if no attempt cgroup is left in it
// (a start task's daemons keep theirs).
func (iso *isolation) close() {
	if iso.cg != nil && iso.cg.base != "" {
		_ = os.Remove(iso.cg.base)
	}
}
