package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/agent/simagent"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider/sim"
	"github.com/kilnbatch/kiln/internal/store"
)

// agents: N simulated agents (internal/agent/simagent, one goroutine each
// in this process) join one server started with --provider sim, in pools
// of at most agentsPerPool nodes with 4 slots each. Measured:
//
//   - bring-up: from creating the pools to every node idle (polled);
//   - idle: the server's CPU (utime+stime from /proc/<pid>/stat over
//     AgentIdle) and RSS while the agents only heartbeat, next to the CPU
//     this process spent being the agents in the same window;
//   - work: AgentTasks tasks, added to disabled jobs (one per pool) and then
//     released by enabling the jobs, completed at once by the agents: tasks
//     completed per second from the enable to the last completion (polled
//     every 20 ms), next to the rate at which the store alone commits the
//     same writes (one transaction per sync of a 4-slot node: 4 completions
//     and 4 new assignments, 8 task rows).

const (
	agentsPerPool = 250 // the service allows 256 nodes per pool
	agentSlots    = 4
)

func runAgents(ctx context.Context, e *env, r *Result) error {
	p := e.p
	srv, err := startServer(ctx, e, "agents", "--provider", "sim", "--heartbeat-interval", p.AgentHeartbeat.String())
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client

	fl := startFleet(ctx, filepath.Join(srv.DataDir, sim.DirName), p.Agents, e.logf)
	defer fl.stop()

	// Bring-up.
	var pools []string
	var sizes []int
	for left := p.Agents; left > 0; left -= agentsPerPool {
		pools = append(pools, fmt.Sprintf("sim%d", len(pools)))
		sizes = append(sizes, min(left, agentsPerPool))
	}
	start := time.Now()
	for i, id := range pools {
		if _, err := c.CreatePool(ctx, poolContent(id, int32(sizes[i]), agentSlots, "sim"), nil); err != nil {
			return fmt.Errorf("create pool %s: %w", id, err)
		}
	}
	for i, id := range pools {
		if _, err := waitNodes(ctx, c, id, sizes[i], azbatch.NodeStateIdle, 2*time.Minute); err != nil {
			return fmt.Errorf("%w (simulated agents running: %d, failed: %d %v)", err, fl.running(), fl.failed.Load(), fl.lastErr.Load())
		}
	}
	bringUp := time.Since(start)
	e.logf("agents: %d simulated nodes idle after %.2fs", p.Agents, bringUp.Seconds())

	// Idle: heartbeats only. Let every agent settle into its long poll.
	if !sleepCtx(ctx, min(p.AgentHeartbeat, 2*time.Second)) {
		return ctx.Err()
	}
	stopProfile := srv.profile("idle")
	m := srv.meterCPU()
	if !sleepCtx(ctx, p.AgentIdle) {
		return ctx.Err()
	}
	idle, err := m.stop()
	stopProfile()
	if err != nil {
		return err
	}
	idleRSS, err := srv.RSS()
	if err != nil {
		return err
	}
	e.logf("agents: idle server %.3f cores, agents %.3f cores", idle.Server, idle.Bench)

	// Work.
	per := p.AgentTasks / len(pools)
	total := per * len(pools)
	for _, id := range pools {
		if err := createJob(ctx, c, id, id); err != nil {
			return err
		}
		if _, err := c.DisableJob(ctx, id, azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionRequeue)}, nil); err != nil {
			return fmt.Errorf("disable job %s: %w", id, err)
		}
		err := addTasks(ctx, c, id, per, 8, func(i int) azbatch.CreateTaskContent {
			return azbatch.CreateTaskContent{ID: to(taskID(i)), CommandLine: to("/bin/true")}
		})
		if err != nil {
			return err
		}
	}
	before := fl.completed.Load()
	stopProfile = srv.profile("work")
	m = srv.meterCPU()
	start = time.Now()
	for _, id := range pools {
		if _, err := c.EnableJob(ctx, id, nil); err != nil {
			return fmt.Errorf("enable job %s: %w", id, err)
		}
	}
	err = waitFor(ctx, 10*time.Minute, 20*time.Millisecond, fmt.Sprintf("%d tasks completed", total), func() (bool, error) {
		done := 0
		for _, id := range pools {
			tc, err := taskCounts(ctx, c, id)
			if err != nil {
				return false, err
			}
			done += int(deref(tc.Completed))
		}
		return done >= total, nil
	})
	elapsed := time.Since(start)
	work, merr := m.stop()
	stopProfile()
	if err != nil {
		return err
	}
	if merr != nil {
		return merr
	}
	workRSS, err := srv.RSS()
	if err != nil {
		return err
	}
	doc, err := storedDoc(ctx, c, pools[0], taskID(0))
	if err != nil {
		return err
	}
	if n := fl.completed.Load() - before; n < int64(total) {
		return fmt.Errorf("the agents completed %d attempts, want at least %d", n, total)
	}
	rate := float64(total) / elapsed.Seconds()
	e.logf("agents: %d tasks in %.2fs: %.0f tasks/s (server %.2f cores, agents %.2f cores)", total, elapsed.Seconds(), rate, work.Server, work.Bench)
	fl.stop()
	srv.Close()

	limit, err := storeCompletionRate(ctx, filepath.Join(e.tmp, "agents-store"), total, doc)
	if err != nil {
		return err
	}

	n := groupThousands(int64(p.Agents))
	r.add(Figure{
		Key: "agents.bringup", Name: fmt.Sprintf("%s simulated nodes: create pools → all idle", n),
		Value: bringUp.Seconds(), Unit: "s",
	})
	r.add(Figure{
		Key: "agents.idle_cpu", Name: fmt.Sprintf("server CPU, %s agents idle (heartbeat %s)", n, p.AgentHeartbeat),
		Value: idle.Server, Unit: "cores", Target: atMost(0.5, "< ½ core with 1,000 agents"),
		Limits: []Limit{{Name: "the agents themselves", Value: idle.Bench, Unit: "cores"}},
	})
	r.add(Figure{
		Key: "agents.idle_rss", Name: fmt.Sprintf("server RSS, %s agents idle", n),
		Value: float64(idleRSS), Unit: "bytes",
	})
	r.add(Figure{
		Key: "agents.rate", Name: fmt.Sprintf("tasks completed per second by %s agents", n),
		Value: rate, Unit: "tasks/s",
		Limits: []Limit{{Name: "store Apply, 8 rows/commit", Value: limit, Unit: "tasks/s"}},
	})
	r.add(Figure{
		Key: "agents.work_cpu", Name: "server CPU while they work",
		Value: work.Server, Unit: "cores",
		Limits: []Limit{{Name: "the agents themselves", Value: work.Bench, Unit: "cores"}},
	})
	r.note("%d pools of up to %d nodes × %d slots; idle window %s; %d tasks (/bin/true, never run) in %.2fs; server RSS after the work %s",
		len(pools), agentsPerPool, agentSlots, p.AgentIdle, total, elapsed.Seconds(), formatBytes(float64(workRSS)))
	if f := fl.failed.Load(); f > 0 {
		r.note("%d simulated agents ended with an error; last: %v", f, fl.lastErr.Load())
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// storeCompletionRate is the rate at which a store alone commits what
// completing tasks on 4-slot nodes writes: per transaction, 4 tasks
// completed and 4 new tasks assigned (8 rows of doc), over n tasks.
func storeCompletionRate(ctx context.Context, dir string, n int, doc []byte) (float64, error) {
	st, _, err := storeInsert(ctx, dir, n+agentSlots, doc, "active")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	defer st.Close()
	tasks, err := st.TaskList(ctx, store.TaskListParams{Account: benchAccount, JobID: "job"})
	if err != nil {
		return 0, err
	}
	w := &store.Writes{Tasks: make([]store.Task, 2*agentSlots)}
	start := time.Now()
	for i := 0; i+2*agentSlots <= len(tasks) && i < n; i += agentSlots {
		for j := range agentSlots {
			done, next := tasks[i+j], tasks[i+agentSlots+j]
			done.State, done.NodeID, done.AttemptID = "completed", "", ""
			next.State, next.NodeID, next.AttemptID = "preparing", "tvmps_0123456789abcdef", fmt.Sprintf("a%d", i+j)
			w.Tasks[j], w.Tasks[agentSlots+j] = done, next
		}
		if err := st.Apply(ctx, w); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fleet runs one simulated agent per spec file the sim provider writes,
// and stops it when the file goes away.
type fleet struct {
	dir       string
	client    *http.Client
	logf      func(string, ...any)
	ctx       context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	agents    map[string]context.CancelFunc
	wg        sync.WaitGroup
	completed atomic.Int64
	failed    atomic.Int64
	lastErr   atomic.Value
	stopOnce  sync.Once
}

// startFleet watches dir (polling) for up to n agents at once.
func startFleet(ctx context.Context, dir string, n int, logf func(string, ...any)) *fleet {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: n + 64, // one long poll per agent, kept alive
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	f := &fleet{dir: dir, client: &http.Client{Transport: tr}, logf: logf, agents: map[string]context.CancelFunc{}}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.watch()
	return f
}

// watch scans the directory when its modification time changes (checked
// every 20 ms: a stat is cheap, so the watcher's own CPU stays out of the
// agents' figure), and at least once a second in case two changes fell in
// one timestamp tick.
func (f *fleet) watch() {
	defer f.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var seen time.Time
	var last time.Time
	for {
		if fi, err := os.Stat(f.dir); err == nil && (!fi.ModTime().Equal(seen) || time.Since(last) > time.Second) {
			seen, last = fi.ModTime(), time.Now()
			f.scan()
		}
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan starts an agent for every new spec and stops those whose spec is
// gone.
func (f *fleet) scan() {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	present := make(map[string]bool, len(entries))
	for _, ent := range entries {
		if !sim.IsSpecFile(ent.Name()) {
			continue
		}
		present[ent.Name()] = true
		f.mu.Lock()
		_, running := f.agents[ent.Name()]
		f.mu.Unlock()
		if running {
			continue
		}
		spec, err := sim.ReadSpec(filepath.Join(f.dir, ent.Name()))
		if err != nil {
			continue
		}
		actx, cancel := context.WithCancel(f.ctx)
		f.mu.Lock()
		f.agents[ent.Name()] = cancel
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := simagent.Run(actx, simagent.Config{
				ServerURL: spec.ServerURL, PoolID: spec.PoolID, NodeID: spec.NodeID, Token: spec.Token,
				HTTPClient: f.client,
				OnComplete: func(protocol.Assignment) { f.completed.Add(1) },
			})
			if err != nil {
				f.failed.Add(1)
				f.lastErr.Store(err.Error())
			}
		}()
	}
	f.mu.Lock()
	for name, cancel := range f.agents {
		if !present[name] {
			cancel()
			delete(f.agents, name)
		}
	}
	f.mu.Unlock()
}

func (f *fleet) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.agents)
}

// stop ends every agent and waits for them.
func (f *fleet) stop() {
	f.stopOnce.Do(func() {
		f.cancel()
		f.wg.Wait()
		if t, ok := f.client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
	})
}
