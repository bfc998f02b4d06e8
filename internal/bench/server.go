package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/sharedkey"
)

// APIVersion is the api-version of the raw requests the bench sends.
const APIVersion = "2024-07-01.20.0"

// benchAccount is the account every bench server creates.
const benchAccount = "kilnbench"

// clockTicks is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK), 100 on every Linux configuration Go supports).
const clockTicks = 100

// server is a `kiln server` subprocess with its own data directory.
type server struct {
	e       *env
	name    string
	DataDir string
	URL     string
	Key     string // base64 account key
	// HTTP is the client every request to the server goes through: one
	// keep-alive connection per concurrent caller, up to many.
	HTTP   *http.Client
	Client *azbatch.Client
	cmd    *exec.Cmd
	exited chan struct{}
	pprof  string // host:port of the server's pprof listener, or ""
	closed sync.Once
}

// startServer starts `kiln server` on a free port in a new data directory
// named after the scenario, and waits until it answers. extra are more
// server flags.
func startServer(ctx context.Context, e *env, name string, extra ...string) (*server, error) {
	e.serial++
	dir := filepath.Join(e.tmp, fmt.Sprintf("%s-%d", name, e.serial))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	s := &server{e: e, name: name, DataDir: dir, URL: "http://" + addr, Key: base64.StdEncoding.EncodeToString(keyBytes), exited: make(chan struct{})}
	args := []string{"server", "--addr", addr, "--data-dir", dir, "--log-level", "warn"}
	if e.cfg.ProfileDir != "" {
		if s.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof", s.pprof)
	}
	args = append(args, extra...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(e.cfg.Exe, args...)
	// The server (and its agents) see none of the caller's KILN_* settings
	// (KILN_PUBLIC_URL, KILN_PROVIDER...), only the bench's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KILN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KILN_ACCOUNT_NAME="+benchAccount, "KILN_ACCOUNT_KEY="+s.Key)
	if e.cfg.ProfileDir != "" {
		// Local agents inherit the server's environment: each writes its
		// CPU profile there when Close stops it.
		agentDir := filepath.Join(e.cfg.ProfileDir, name+"-agents")
		if err := os.MkdirAll(agentDir, 0o755); err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "KILN_AGENT_CPUPROFILE_DIR="+agentDir)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kiln server: %w", err)
	}
	s.cmd = cmd
	go func() { _ = cmd.Wait(); close(s.exited) }()

	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	s.HTTP = &http.Client{Transport: tr}
	s.Client, err = batchclient.New(s.URL, benchAccount, s.Key, &azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: s.HTTP,
		Retry:     policy.RetryOptions{MaxRetries: 3, TryTimeout: 5 * time.Minute},
	}})
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.waitHealthy(ctx); err != nil {
		s.Close()
		return nil, err
	}
	e.logf("%s: server pid %d on %s, data dir %s", name, s.Pid(), s.URL, dir)
	return s, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (s *server) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("kiln server exited at start: %s", s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := s.HTTP.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("kiln server did not answer /healthz within 30s: %s", s.logTail())
}

// logTail is the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.DataDir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Pid is the server's process id.
func (s *server) Pid() int { return s.cmd.Process.Pid }

// Close kills the server, then stops every local agent it started (their
// pids are in <data-dir>/nodes/*/agent.pid): SIGTERM first, so that an agent
// exits in an orderly way (and writes its CPU profile, see
// KILN_AGENT_CPUPROFILE_DIR), then SIGKILL to its whole session, which holds
// its tasks too.
func (s *server) Close() { s.closed.Do(s.close) }

func (s *server) close() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	pids := s.agentPids()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if t, ok := s.HTTP.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	if s.e.cfg.ProfileDir != "" {
		_ = os.Remove(filepath.Join(s.e.cfg.ProfileDir, s.name+"-agents")) // only if empty
	}
}

// alive reports whether a process exists and is not a zombie (an agent
// whose parent, the server, is gone may wait for a reaper that never
// comes).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// CPU time and memory, from /proc.

// cpuSeconds is the user+system CPU time of a process so far.
func cpuSeconds(pid int) (float64, error) {
	self, _, err := procCPU(pid)
	return self, err
}

// procCPU returns the user+system CPU time of a process, and that of its
// children it has waited for (cutime+cstime), in seconds.
func procCPU(pid int) (self, children float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields after the last ')' start at field 3 (state).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks [4]int64 // utime, stime, cutime, cstime: fields 14 to 17
	for j := range ticks {
		if ticks[j], err = strconv.ParseInt(f[11+j], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return float64(ticks[0]+ticks[1]) / clockTicks, float64(ticks[2]+ticks[3]) / clockTicks, nil
}

// agentPids lists the local agents the server started (none with the sim
// provider).
func (s *server) agentPids() []int {
	var pids []int
	matches, _ := filepath.Glob(filepath.Join(s.DataDir, "nodes", "*", "agent.pid"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStatusField reads a "Name:  123 kB" line of a /proc status-like file
// and returns the number.
func procStatusField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// RSS is the server's resident memory now (VmRSS), in bytes.
func (s *server) RSS() (int64, error) {
	kb, err := procStatusField(fmt.Sprintf("/proc/%d/status", s.Pid()), "VmRSS")
	return kb * 1024, err
}

// PeakRSS is the server's highest resident memory so far (VmHWM), in bytes.
func (s *server) PeakRSS() (int64, error) {
	kb, err := procStatusField(fmt.Sprintf("/proc/%d/status", s.Pid()), "VmHWM")
	return kb * 1024, err
}

// cpuMeter measures the CPU used over a window by the server, by this
// process (the load generator, and the simulated agents), and by the local
// agents the server started, with the tasks they ran.
type cpuMeter struct {
	pid          int
	start        time.Time
	server, self float64
	agents       map[int][2]float64 // pid -> own, children's CPU seconds
	err          error
}

func (s *server) meterCPU() *cpuMeter {
	m := &cpuMeter{pid: s.Pid(), start: time.Now(), agents: map[int][2]float64{}}
	var err1, err2 error
	m.server, err1 = cpuSeconds(m.pid)
	m.self, err2 = cpuSeconds(os.Getpid())
	m.err = errors.Join(err1, err2)
	for _, pid := range s.agentPids() {
		if own, children, err := procCPU(pid); err == nil {
			m.agents[pid] = [2]float64{own, children}
		}
	}
	return m
}

// cpuUse is what a cpuMeter measured, in cores (CPU seconds per second).
type cpuUse struct {
	Wall          time.Duration
	Server, Bench float64
	// Agents and Tasks: local agents running at both ends of the window,
	// and the processes they ran (waited for) in it.
	Agents, Tasks float64
	ServerSeconds float64 // CPU seconds
}

func (m *cpuMeter) stop() (cpuUse, error) {
	wall := time.Since(m.start)
	srv, err1 := cpuSeconds(m.pid)
	self, err2 := cpuSeconds(os.Getpid())
	if err := errors.Join(m.err, err1, err2); err != nil {
		return cpuUse{}, err
	}
	u := cpuUse{
		Wall:          wall,
		Server:        (srv - m.server) / wall.Seconds(),
		Bench:         (self - m.self) / wall.Seconds(),
		ServerSeconds: srv - m.server,
	}
	for pid, was := range m.agents {
		if own, children, err := procCPU(pid); err == nil {
			u.Agents += (own - was[0]) / wall.Seconds()
			u.Tasks += (children - was[1]) / wall.Seconds()
		}
	}
	return u, nil
}

// profile records the server's CPU profile, one second at a time, into
// ProfileDir/<scenario>-<phase>-NNN.pb.gz until the returned function is
// first called (which waits for the second in progress). Without ProfileDir
// it does nothing.
func (s *server) profile(phase string) (stop func()) {
	if s.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			path := filepath.Join(s.e.cfg.ProfileDir, fmt.Sprintf("%s-%s-%03d.pb.gz", s.name, phase, i))
			if err := fetchTo("http://"+s.pprof+"/debug/pprof/profile?seconds=1", path); err != nil {
				s.e.logf("%s: cpu profile: %v", s.name, err)
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func fetchTo(u, path string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rawGet sends one signed GET of path (with query) and reads the whole
// answer: the time a request takes on the wire and in the server, without
// the SDK's decoding. It fails on any status but 200.
func (s *server) rawGet(ctx context.Context, path string, query url.Values) (time.Duration, int, error) {
	key, err := sharedkey.DecodeKey(s.Key)
	if err != nil {
		return 0, 0, err
	}
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("api-version", APIVersion)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	sharedkey.SignRequest(req, benchAccount, key)
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return d, int(n), nil
}

// healthRoundTrip is the p50 of an unauthenticated GET /healthz: the floor
// of any request to this server from this process.
func (s *server) healthRoundTrip(ctx context.Context, n int) (float64, error) {
	var xs []float64
	for range n {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthz", nil)
		resp, err := s.HTTP.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		xs = append(xs, durMs(time.Since(start)))
	}
	return quantile(xs, 0.5), nil
}
