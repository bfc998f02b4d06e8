// Package bench is `kiln bench`: end-to-end performance scenarios run against
// a real `kiln server` subprocess, each figure printed next to the physical
// limit it is bounded by, measured in the same run on the same machine, and
// next to the target of the performance issue.
//
// The server runs in its own process (started from the kiln binary itself)
// so that its CPU time and memory are read from /proc/<pid> apart from the
// load generator's. Each scenario starts a fresh server in its own data
// directory under one temporary directory, and stops it (and its agents)
// when done.
//
// Scenarios, one file each: ingest.go, dispatch.go, latency.go, queries.go,
// agents.go, poolstart.go. server.go starts and reads the server process;
// report.go prints the table and writes the JSON.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scales.
const (
	ScaleTiny  = "tiny"  // seconds: the test suite runs every scenario at it
	ScaleSmall = "small" // a minute or two
	ScaleFull  = "full"  // the sizes of the performance issue
)

// Params are the sizes of every scenario at one scale.
type Params struct {
	// ingest: tasks added in each phase, by number of concurrent clients,
	// all into one job.
	IngestClients []int
	IngestTasks   []int
	// dispatch: trivial tasks on 2 local nodes x 4 slots.
	DispatchTasks int
	// latency: tasks added one at a time on an idle pool.
	LatencyTasks int
	// queries: active tasks in the job, failed tasks seeded before them,
	// repetitions of each query (at most; also bounded by QueryBudget).
	QueryTasks  int
	QueryFailed int
	QueryReps   int
	QueryBudget time.Duration
	// agents: simulated agents (sim provider), tasks they complete,
	// heartbeat interval and the idle measurement window.
	Agents         int
	AgentTasks     int
	AgentHeartbeat time.Duration
	AgentIdle      time.Duration
	// poolstart: nodes of the resize, and how many times it is measured.
	PoolStartNodes int
	PoolStartRuns  int
}

// ParamsFor returns the sizes of a scale.
func ParamsFor(scale string) (Params, error) {
	switch scale {
	case ScaleTiny:
		return Params{
			IngestClients: []int{1, 8, 32}, IngestTasks: []int{400, 800, 800},
			DispatchTasks: 200,
			LatencyTasks:  50,
			QueryTasks:    5_000, QueryFailed: 40, QueryReps: 20, QueryBudget: 2 * time.Second,
			Agents: 20, AgentTasks: 2_000, AgentHeartbeat: 100 * time.Millisecond, AgentIdle: 2 * time.Second,
			PoolStartNodes: 4, PoolStartRuns: 1,
		}, nil
	case ScaleSmall:
		return Params{
			IngestClients: []int{1, 8, 32}, IngestTasks: []int{10_000, 45_000, 45_000},
			DispatchTasks: 2_000,
			LatencyTasks:  200,
			QueryTasks:    100_000, QueryFailed: 200, QueryReps: 100, QueryBudget: 10 * time.Second,
			Agents: 200, AgentTasks: 20_000, AgentHeartbeat: 10 * time.Second, AgentIdle: 10 * time.Second,
			PoolStartNodes: 16, PoolStartRuns: 3,
		}, nil
	case ScaleFull:
		return Params{
			IngestClients: []int{1, 8, 32}, IngestTasks: []int{100_000, 450_000, 450_000},
			DispatchTasks: 10_000,
			LatencyTasks:  1_000,
			QueryTasks:    1_000_000, QueryFailed: 500, QueryReps: 200, QueryBudget: 20 * time.Second,
			Agents: 1_000, AgentTasks: 100_000, AgentHeartbeat: 10 * time.Second, AgentIdle: 20 * time.Second,
			PoolStartNodes: 16, PoolStartRuns: 5,
		}, nil
	}
	return Params{}, fmt.Errorf("unknown scale %q (tiny, small or full)", scale)
}

// Config configures Run.
type Config struct {
	Scale string
	// Scenarios to run, by name; empty: all, in the order of Scenarios.
	Scenarios []string
	// Exe is the kiln binary started as `kiln server` (default: this
	// process's executable).
	Exe string
	// ProfileDir, when set, receives CPU profiles of the server during each
	// scenario's measured phases (1-second profiles, several files per
	// phase: `go tool pprof -top kiln DIR/ingest-*.pb.gz` merges them), and
	// of each local agent over its whole life (DIR/<scenario>-agents/).
	ProfileDir string
	// Keep leaves the temporary directory (data directories, server logs)
	// in place and says where it is.
	Keep bool
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// scenario is one named measurement.
type scenario struct {
	name string
	desc string
	run  func(ctx context.Context, e *env, r *Result) error
}

// Scenarios lists the scenarios in the order they run.
var scenarios = []scenario{
	{"ingest", "tasks added per second through add task collection", runIngest},
	{"dispatch", "makespan of trivial tasks on 2 local nodes x 4 slots", runDispatch},
	{"latency", "add to running, exit to completed, on an idle pool", runLatency},
	{"queries", "task counts and filtered lists of a large job", runQueries},
	{"agents", "simulated agents heartbeating and taking work", runAgents},
	{"poolstart", "resize to all nodes idle, local agents", runPoolStart},
}

// ScenarioNames are the names --scenario accepts, in running order.
func ScenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// env is what scenarios share.
type env struct {
	cfg    Config
	p      Params
	tmp    string // root of every data directory
	logw   io.Writer
	serial int
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.logw, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// Run runs the selected scenarios and returns their results. A scenario
// that fails is recorded with its error and the others still run; Run
// returns an error only when it cannot start at all.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	p, err := ParamsFor(cfg.Scale)
	if err != nil {
		return nil, err
	}
	var selected []scenario
	for _, name := range cfg.Scenarios {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (one of %s)", name, strings.Join(ScenarioNames(), ", "))
		}
		if !slices.ContainsFunc(selected, func(s scenario) bool { return s.name == name }) {
			selected = append(selected, scenarios[i])
		}
	}
	if len(selected) == 0 {
		selected = scenarios
	} else {
		// Run in the canonical order whatever the flag order.
		slices.SortFunc(selected, func(a, b scenario) int {
			return slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == a.name }) -
				slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == b.name })
		})
	}
	if cfg.Exe == "" {
		if cfg.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the kiln executable: %w", err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "kiln-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, p: p, tmp: tmp, logw: cfg.Log}
	if cfg.Keep {
		e.logf("data directories and server logs in %s (kept)", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	rep := &Report{Scale: cfg.Scale, Started: time.Now().UTC(), Machine: readMachine()}
	for _, sc := range selected {
		if ctx.Err() != nil {
			break
		}
		// Each scenario starts on a quiet machine: the previous one's data
		// is gone and its dirty pages are written back (a million rows
		// written to SQLite leave seconds of writeback, which slows every
		// file system operation of the next scenario).
		if !cfg.Keep {
			clearDir(tmp)
		}
		syncStart := time.Now()
		syscall.Sync()
		e.logf("== %s: %s (sync took %.1fs)", sc.name, sc.desc, time.Since(syncStart).Seconds())
		r := &Result{Name: sc.name, Description: sc.desc}
		start := time.Now()
		err := sc.run(ctx, e, r)
		r.Seconds = time.Since(start).Seconds()
		if err != nil {
			r.Error = err.Error()
			e.logf("%s failed after %.1fs: %v", sc.name, r.Seconds, err)
		} else {
			e.logf("%s done in %.1fs", sc.name, r.Seconds)
		}
		rep.Scenarios = append(rep.Scenarios, *r)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	if err := ctx.Err(); err != nil && len(rep.Scenarios) < len(selected) {
		return rep, fmt.Errorf("interrupted: %w", err)
	}
	return rep, nil
}

// clearDir removes everything in dir.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		os.RemoveAll(filepath.Join(dir, ent.Name()))
	}
}

// Failed lists the scenarios that ended with an error.
func (r *Report) Failed() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.Error != "" {
			out = append(out, s.Name)
		}
	}
	return out
}
