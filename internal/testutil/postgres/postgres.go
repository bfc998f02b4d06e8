// Package postgres runs a real PostgreSQL server for tests: initdb in a
// temporary directory, the postgres server on a free port with its unix
// socket in that directory, one new database per caller. Tests of the
// PostgreSQL store then talk to a real server, not to a mock.
//
// PostgreSQL refuses to run as root, so when the test runs as root the
// server runs as the postgres user (which the Debian package creates).
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kilnbatch/kiln/internal/testutil/testproc"
)

// InstallCommand installs the PostgreSQL server the tests need.
const InstallCommand = "apt-get install -y postgresql"

// Superuser is the server's bootstrap superuser, trusted without a password.
const Superuser = "postgres"

// Server is a running PostgreSQL server.
type Server struct {
	dir  string // temporary directory: data/ and the unix socket
	port int
	cmd  *exec.Cmd
	done chan struct{}
	out  *testproc.Output
}

// Start runs a PostgreSQL server for t and returns the DSN of a new, empty
// database on it. The server stops, and its files go, when t ends. A
// missing PostgreSQL installation fails the test with the command that
// installs it.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	srv := StartServer(t)
	return srv.NewDatabase(t)
}

// StartServer runs a PostgreSQL server for t, stopped when t ends. Use
// NewDatabase to get a database on it.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("PostgreSQL not found (install it: %s): %v", InstallCommand, err)
	}
	var lastErr error
	for range 3 { // another process may take the port between probe and start
		srv, err := start(bin)
		if err == nil {
			t.Cleanup(func() {
				if err := srv.stop(); err != nil {
					t.Errorf("stop postgres: %v", err)
				}
				if t.Failed() {
					t.Logf("postgres output:\n%s", srv.out.String())
				}
			})
			return srv
		}
		lastErr = err
	}
	t.Fatalf("start postgres: %v", lastErr)
	return nil
}

// DSN returns the DSN of database dbname on the server.
func (s *Server) DSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.dir, s.port, Superuser, dbname)
}

// NewDatabase creates a new, empty database on the server and returns its
// DSN. The database is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "kiln_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("postgres: connect: %v", err)
	}
	defer conn.Close(ctx)
	// The default strategy (WAL_LOG since PostgreSQL 15) is twice as fast
	// here as FILE_COPY, whose checkpoints dominate with fsync off.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			t.Errorf("postgres: connect: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("postgres: drop database: %v", err)
		}
	})
	return s.DSN(name)
}

// binDir returns the directory of initdb and postgres: $KILN_POSTGRES_BIN,
// else the newest /usr/lib/postgresql/*/bin, else the directory of initdb
// on $PATH.
func binDir() (string, error) {
	if d := os.Getenv("KILN_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin nor on $PATH")
	}
	return filepath.Dir(p), nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// runAs returns the credential to run PostgreSQL with: nil when not root,
// else the postgres user's.
func runAs() (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("running as root, and PostgreSQL cannot: no postgres user to run it as (%s creates one): %w", InstallCommand, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u.HomeDir, nil
}

// start runs initdb and the server, and waits until it accepts connections.
func start(bin string) (*Server, error) {
	cred, home, err := runAs()
	if err != nil {
		return nil, err
	}
	// A short path: the socket's must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "kilnpg")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		if cred != nil {
			cmd.Env = append(cmd.Env, "HOME="+home, "USER=postgres")
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	out, err := command("initdb", "--pgdata", data, "--username", Superuser, "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	srv := &Server{dir: dir, port: port, done: make(chan struct{}), out: &testproc.Output{}}
	// Durability is of no use to a test database: no fsync, no
	// full-page writes, commits that do not wait for the WAL.
	srv.cmd = command("postgres", "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { srv.cmd.Wait(); close(srv.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-srv.done:
			return nil, fmt.Errorf("postgres exited: %s", srv.out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			srv.kill()
			return nil, fmt.Errorf("postgres did not accept connections within 30s: %v: %s", err, srv.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok = true
	return srv, nil
}

// stop shuts the server down (fast shutdown: clients are disconnected) and
// removes its files.
func (s *Server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.kill()
	}
	return os.RemoveAll(s.dir)
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
