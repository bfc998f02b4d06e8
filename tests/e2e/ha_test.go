package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/batchclient"
	pgstore "github.com/kilnbatch/kiln/internal/store/postgres"
	"github.com/kilnbatch/kiln/internal/testutil/postgres"
	"github.com/kilnbatch/kiln/internal/tlspin"
)

// TestHighAvailability runs two servers on one PostgreSQL database with
// shared storage: one leads, the other follows and forwards requests to it.
// Local agents get both addresses. The leader is killed with SIGKILL in the
// middle of a job: the follower takes over, the agents fail over to it, and
// every task completes exactly once (one start and one end marker each,
// written outside the nodes).
func TestHighAvailability(t *testing.T) {
	dsn := postgresURL(t)
	shared := "file://" + t.TempDir()
	addrB := freeAddr(t)
	urlB := "http://" + addrB
	common := []string{"--store", dsn, "--storage", shared, "--node-timeout", "60s"}
	a := StartServer(t, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", urlB)})
	b := startServerAt(t, addrB, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", a.URL)})

	if info := leaderInfo(t, a.URL); info.Role != "leader" {
		t.Fatalf("first server: %+v, want leader", info)
	}
	if info := leaderInfo(t, b.URL); info.Role != "follower" || info.Leader != a.URL {
		t.Fatalf("second server: %+v, want a follower of %s", info, a.URL)
	}

	markers := taskTempDir(t) // writable by the users tasks run as
	// Requests through the follower: the pool, the job and the tasks are
	// created on the leader through it.
	b.CreatePool(t, "hapool", 3, 4, nil)
	b.CreateJob(t, "hajob", "hapool", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("MARKERS"), Value: to(markers)}}
	})
	n := 400
	if v, err := strconv.Atoi(os.Getenv("KILN_E2E_HA_TASKS")); err == nil && v > 0 {
		n = v // to measure the hand-over with a bigger state
	}
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID: to(fmt.Sprintf("t%04d", i)),
			CommandLine: to(`/bin/sh -c 'mktemp "$MARKERS/$AZ_BATCH_TASK_ID.start.XXXXXX" >/dev/null; sleep 0.1; ` +
				`mktemp "$MARKERS/$AZ_BATCH_TASK_ID.end.XXXXXX" >/dev/null'`),
		})
	}
	b.AddTasks(t, "hajob", tasks)
	if _, err := a.Client.GetJob(ctx(t), "hajob", nil); err != nil {
		t.Fatalf("the job created through the follower is not on the leader: %v", err)
	}

	// Kill the leader once about a quarter of the tasks ended.
	eventually(t, 2*time.Minute, "a quarter of the tasks", func() error {
		if m, _ := filepath.Glob(filepath.Join(markers, "*.end.*")); len(m) < n/4 {
			return fmt.Errorf("%d ended", len(m))
		}
		return nil
	})
	a.Kill()
	killed := time.Now()
	ended, _ := filepath.Glob(filepath.Join(markers, "*.end.*"))
	t.Logf("killed the leader with %d of %d tasks ended", len(ended), n)
	eventually(t, 60*time.Second, "the follower to take over", func() error {
		if info := leaderInfo(t, b.URL); info.Role != "leader" {
			return fmt.Errorf("second server: %+v", info)
		}
		return nil
	})
	ended, _ = filepath.Glob(filepath.Join(markers, "*.end.*"))
	t.Logf("hand-over after SIGKILL of the leader: %v (%d tasks ended by then)", time.Since(killed).Round(time.Millisecond), len(ended))
	if log, _ := os.ReadFile(b.logPath); strings.Contains(string(log), "took over as leader") {
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "took over as leader") {
				t.Logf("new leader: %s", line)
			}
		}
	}

	// The CLI, given both addresses with the first one dead, reaches the
	// new leader.
	out, err := runKiln(t, "job", "list", "--url", a.URL+","+b.URL, "--account-name", testAccount, "--account-key", testKey,
		"--data-dir", t.TempDir())
	if err != nil || !strings.Contains(out, "hajob") {
		t.Fatalf("kiln job list with the leader dead: %v\n%s", err, out)
	}
	if out, err := runKiln(t, "storage", "container", "create", "hacontainer", "--url", a.URL+","+b.URL,
		"--account-name", testAccount, "--account-key", testKey, "--data-dir", t.TempDir()); err != nil {
		t.Fatalf("kiln storage container create with the leader dead: %v\n%s", err, out)
	}

	counts := b.WaitJobTasks(t, "hajob", 3*time.Minute)
	if c := counts.TaskCounts; int(*c.Completed) != n || int(*c.Succeeded) != n || *c.Failed != 0 {
		t.Fatalf("after the hand-over: completed %d succeeded %d failed %d, want %d", *c.Completed, *c.Succeeded, *c.Failed, n)
	}
	entries, err := os.ReadDir(markers)
	if err != nil {
		t.Fatal(err)
	}
	starts, ends := map[string]int{}, map[string]int{}
	for _, e := range entries {
		id, kind, _ := strings.Cut(e.Name(), ".")
		if strings.HasPrefix(kind, "start.") {
			starts[id]++
		} else if strings.HasPrefix(kind, "end.") {
			ends[id]++
		}
	}
	for i := range n {
		id := fmt.Sprintf("t%04d", i)
		if starts[id] != 1 || ends[id] != 1 {
			t.Errorf("task %s started %d times and ended %d times, want once", id, starts[id], ends[id])
		}
	}
	for _, task := range b.ListTasks(t, "hajob", nil) {
		if *task.State != azbatch.TaskStateCompleted || task.ExecutionInfo == nil || *task.ExecutionInfo.ExitCode != 0 ||
			*task.ExecutionInfo.RetryCount != 0 || *task.ExecutionInfo.RequeueCount != 0 {
			t.Errorf("task %s: state %s, execution %+v", *task.ID, *task.State, task.ExecutionInfo)
		}
	}

	// The killed server comes back as a follower of the new leader.
	a.Start()
	if info := leaderInfo(t, a.URL); info.Role != "follower" || info.Leader != b.URL || info.Epoch != 2 {
		t.Fatalf("restarted first server: %+v, want a follower of %s at epoch 2", info, b.URL)
	}
	if j, err := a.Client.GetJob(ctx(t), "hajob", nil); err != nil || *j.ExecutionInfo.PoolID != "hapool" {
		t.Fatalf("GetJob through the restarted follower: %v", err)
	}

	// A leader whose lease connection breaks (here: PostgreSQL terminates
	// it) exits at once rather than lead beside another server; the
	// follower takes over.
	terminateLeaseHolder(t, dsn)
	exited := make(chan error, 1)
	cmd := b.cmd
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		b.cmd = nil
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Fatalf("the leader without its lease exited with %v (code %d), want code 3", err, code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the leader whose lease connection was terminated kept running")
	}
	eventually(t, 60*time.Second, "the restarted server to take over", func() error {
		if info := leaderInfo(t, a.URL); info.Role != "leader" || info.Epoch != 3 {
			return fmt.Errorf("first server: %+v", info)
		}
		return nil
	})
	if got := a.ListTasks(t, "hajob", nil); len(got) != n {
		t.Fatalf("the third leader lists %d tasks, want %d", len(got), n)
	}
	if log, _ := os.ReadFile(b.logPath); !strings.Contains(string(log), "lost the leader lease") {
		t.Errorf("the deposed leader's log does not say it lost the lease")
	}

	// A leader stopped in an orderly way (SIGTERM) releases the lease: the
	// follower takes over.
	b.Start()
	if info := leaderInfo(t, b.URL); info.Role != "follower" || info.Leader != a.URL {
		t.Fatalf("restarted second server: %+v, want a follower of %s", info, a.URL)
	}
	a.Stop()
	eventually(t, 60*time.Second, "the follower to take over from a stopped leader", func() error {
		if info := leaderInfo(t, b.URL); info.Role != "leader" || info.Epoch != 4 {
			return fmt.Errorf("second server: %+v", info)
		}
		return nil
	})
	if log, _ := os.ReadFile(a.logPath); strings.Contains(string(log), "lost the leader lease") {
		t.Errorf("the stopped leader's log says it lost the lease")
	}
}

// terminateLeaseHolder ends the PostgreSQL connection that holds the leader
// lock, as a network failure between the leader and the database would.
func terminateLeaseHolder(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(ctx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx(t))
	var n int
	if err := conn.QueryRow(ctx(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = $1`, pgstore.LeaderLockKey).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("terminated %d lease holders, want 1", n)
	}
}

// postgresURL starts PostgreSQL and returns the URL of a new database.
func postgresURL(t *testing.T) string {
	kv := map[string]string{}
	for _, f := range strings.Fields(postgres.Start(t)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", kv["user"], kv["port"], kv["dbname"])
}

type haInfo struct {
	Role   string `json:"role"`
	URL    string `json:"url"`
	Leader string `json:"leader"`
	Epoch  int64  `json:"epoch"`
}

// leaderInfo reads GET /healthz/leader (zero on error).
func leaderInfo(t *testing.T, url string) haInfo {
	var info haInfo
	resp, err := http.Get(url + "/healthz/leader")
	if err != nil {
		return info
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info
}

// TestSQLiteOneServer: SQLite has no high availability; a second server on
// the same SQLite database refuses to start, saying why.
func TestSQLiteOneServer(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	cmd := exec.Command(kilnBin, "server", "--addr", freeAddr(t), "--data-dir", s.DataDir)
	cmd.Env = append(os.Environ(), "KILN_ACCOUNT_NAME="+testAccount, "KILN_ACCOUNT_KEY="+testKey)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("a second server on the same SQLite database kept running:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "another kiln server uses the SQLite database") {
		t.Fatalf("second server on the same SQLite database: %v\n%s", err, out)
	}
	// The first server is unharmed.
	if _, err := s.Client.GetApplication(ctx(t), "none", nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("first server after the refused second one: %v", err)
	}
}

// TestHighAvailabilityHTTPS: two servers serving HTTPS with the same
// self-signed certificate (the second server's data directory gets the
// first's): the follower forwards to the leader pinned by the fingerprint in
// the lease row, agents pinned to the one fingerprint fail over, and a job
// survives a SIGKILL of the leader with every task run once.
func TestHighAvailabilityHTTPS(t *testing.T) {
	dsn := postgresURL(t)
	shared := "file://" + t.TempDir()
	addrB := freeAddr(t)
	common := []string{"--tls", "--store", dsn, "--storage", shared}
	a := startHTTPSServer(t, t.TempDir(), append(append([]string{}, common...), "--peer-urls", "https://"+addrB), pinnedFromCredentials(t))
	fp := readFingerprint(t, a.DataDir)

	b := &Server{t: t, DataDir: t.TempDir(), Addr: addrB, Args: append(append([]string{}, common...), "--peer-urls", a.URL)}
	b.URL = "https://" + addrB
	b.logPath = filepath.Join(b.DataDir, "server.log")
	for _, f := range []string{tlspin.CertFile, tlspin.KeyFile} {
		data, err := os.ReadFile(filepath.Join(a.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.DataDir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		b.Kill()
		killAgents(b.DataDir)
		if t.Failed() {
			if log, err := os.ReadFile(b.logPath); err == nil {
				t.Logf("second server log:\n%s", tail(string(log), 8000))
			}
		}
	})
	b.startHTTPS()
	hcB, err := batchclient.PinnedTransport(b.URL, fp)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the second server healthy", func() error {
		resp, err := hcB.Get(b.URL + "/healthz/leader")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var info haInfo
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.Role != "follower" || info.Leader != a.URL {
			return fmt.Errorf("%+v %v", info, err)
		}
		return nil
	})
	b.Client = batchClient(t, b.URL, testKey, hcB)

	b.CreatePool(t, "hapool", 2, 4, nil)
	const n = 100
	markers := markerJob(t, b, "hajob", "hapool", n, "0.2")
	waitMarkers(t, markers, n/5, 2*time.Minute)
	a.Kill()
	counts := b.WaitJobTasks(t, "hajob", 3*time.Minute)
	if c := counts.TaskCounts; int(*c.Succeeded) != n || *c.Failed != 0 {
		t.Fatalf("after the hand-over: succeeded %d failed %d, want %d", *c.Succeeded, *c.Failed, n)
	}
	checkRanOnce(t, markers, n)
}

// readFingerprint is the server fingerprint in dataDir's credentials.json.
func readFingerprint(t *testing.T, dataDir string) string {
	c, err := readCreds(dataDir)
	if err != nil || c.ServerFingerprint == "" {
		t.Fatalf("no fingerprint in credentials.json: %v", err)
	}
	return c.ServerFingerprint
}

// TestHighAvailabilityRemoteAgents: agents run by hand join a pool with both
// servers' addresses (`kiln agent --server A,B --pool --token`); the pool,
// its join token and the job are made through the follower; the leader is
// killed mid-job and every task still runs exactly once.
func TestHighAvailabilityRemoteAgents(t *testing.T) {
	dsn := postgresURL(t)
	shared := "file://" + t.TempDir()
	addrB := freeAddr(t)
	common := []string{"--store", dsn, "--storage", shared}
	a := StartServer(t, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", "http://"+addrB)})
	b := startServerAt(t, addrB, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", a.URL)})

	createAgentsPool(t, b, "rpool", 2, 4)
	token, command, _ := joinToken(t, b, "rpool", false)
	if !strings.Contains(command, "--server "+a.URL+","+b.URL+" ") {
		t.Errorf("join command %q does not list both servers", command)
	}
	dir := t.TempDir()
	for i := range 2 {
		startRemoteAgent(t, a.URL+","+b.URL, "rpool", token, filepath.Join(dir, fmt.Sprintf("agent%d", i)))
	}
	b.WaitNodes(t, "rpool", 2, azbatch.NodeStateIdle)

	const n = 200
	markers := markerJob(t, b, "rjob", "rpool", n, "0.1")
	waitMarkers(t, markers, n/4, 2*time.Minute)
	a.Kill()
	killed := time.Now()
	eventually(t, 60*time.Second, "the follower to take over", func() error {
		if info := leaderInfo(t, b.URL); info.Role != "leader" {
			return fmt.Errorf("second server: %+v", info)
		}
		return nil
	})
	t.Logf("hand-over after SIGKILL of the leader: %v", time.Since(killed).Round(time.Millisecond))
	counts := b.WaitJobTasks(t, "rjob", 3*time.Minute)
	if c := counts.TaskCounts; int(*c.Succeeded) != n || *c.Failed != 0 {
		t.Fatalf("after the hand-over: succeeded %d failed %d, want %d", *c.Succeeded, *c.Failed, n)
	}
	checkRanOnce(t, markers, n)
	for _, task := range b.ListTasks(t, "rjob", nil) {
		if *task.ExecutionInfo.RetryCount != 0 || *task.ExecutionInfo.RequeueCount != 0 {
			t.Errorf("task %s: retries %d, requeues %d", *task.ID, *task.ExecutionInfo.RetryCount, *task.ExecutionInfo.RequeueCount)
		}
	}
}
