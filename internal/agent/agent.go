// Package agent is the Kiln node agent: the process that runs on every
// compute node, registers with the server, pulls task attempts over the agent
// protocol (package protocol), runs them with package taskrunner, reports
// their progress and serves the node's files to the server (package
// fileserver).
//
// The agent talks to the server only through protocol.PathRegister and
// protocol.PathSync; docs/agent-protocol.md describes the exchange. The shape
// follows Nomad's client: Run owns registration and the sync loop (sync.go),
// each attempt runs in its own goroutine (attempt.go) with one file per
// concern (env.go, packages.go, resource_files.go, resource_containers.go,
// output_files.go, all storage through storage.go), and the outbox
// (outbox.go) holds events until the server acknowledges them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Defaults for Config fields and protocol values the server leaves unset.
const (
	// ListenDefault is the file server's default listen address.
	ListenDefault = "127.0.0.1:0"
	// HeartbeatIntervalDefault is used when RegisterResponse.HeartbeatInterval is 0.
	HeartbeatIntervalDefault = 10 * time.Second
	// SyncInterruptDelayDefault is the default Config.SyncInterruptDelay.
	SyncInterruptDelayDefault = time.Millisecond
)

// Config configures Run.
type Config struct {
	// ServerURL is the server's base URL, for example http://127.0.0.1:8080.
	// Required.
	ServerURL string
	// PoolID and NodeID identify the node; Token proves it may join (the
	// per-node token the provider passed). NodeID is required unless Join.
	PoolID, NodeID, Token string
	// Join: Token is the join token of pool PoolID (bring-your-own nodes,
	// join.go); the node id is kept in the root directory. LowPriority
	// counts the node against the pool's low-priority target.
	Join, LowPriority bool
	// RootDir is the node root directory (AZ_BATCH_NODE_ROOT_DIR), created
	// if missing. Required.
	RootDir string
	// Listen is the file server's listen address. Default ListenDefault
	// ("127.0.0.1:0"). The reported FileServerURL is http://<bound address>;
	// when the bound IP is unspecified (":8081", "0.0.0.0:8081") the IP the
	// node uses to reach the server is reported instead.
	Listen string
	// OrphanTimeout: when no register or sync has succeeded for this long,
	// the agent kills all tasks and Run returns nil. Zero means never.
	OrphanTimeout time.Duration
	// Logger receives the agent's logs. Default slog.Default().
	Logger *slog.Logger
	// HTTPClient is used for the server, and for resource files, output
	// files and application packages (Azure Blob storage included).
	// Default: a new client on http.DefaultTransport. It must not set a
	// Timeout shorter than the long poll; the agent bounds every request
	// with a context.
	HTTPClient *http.Client
	// SyncInterruptDelay is the minimum age of an open long poll before the
	// agent cancels it to send a new event at once (see
	// docs/agent-protocol.md, "Latency"). Default SyncInterruptDelayDefault
	// (1ms); a negative value disables interrupting (events then wait for
	// the long poll to end).
	SyncInterruptDelay time.Duration
}

// Run runs the agent until ctx is done, the server orders a shutdown, or the
// server has been unreachable for OrphanTimeout, and returns nil in all
// three cases. It returns an error if the root directory or the file server
// cannot be set up, or if the server refuses registration (4xx other than
// 408 and 429). Before returning it kills every task it started and waits
// for them; after ctx ends, their completions are not reported (the server
// finds out from Known when the node registers again, or from the missed
// heartbeats).
func Run(ctx context.Context, cfg Config) error {
	a, err := newAgent(cfg)
	if err != nil {
		return err
	}
	defer a.root.Close()
	defer a.iso.close()
	return a.run(ctx)
}

// agent is the state of one Run.
type agent struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	rootDir string   // absolute
	root    *os.Root // rootDir, for removals that must not follow links out

	// metrics measures the node for every sync (metrics.go).
	metrics metricsSampler

	hostname, ip  string
	fileServerURL string
	secret        atomic.Pointer[string] // NodeSecret for the file server

	// Registration and liveness; touched only by the Run goroutine.
	nodeID      string
	token       string
	heartbeat   time.Duration
	node        protocol.NodeConfig
	lastContact time.Time
	// contactSent is when the last answered request was sent, and
	// nodeTimeout the server's node timeout (fence.go); guarded by mu.
	contactSent time.Time
	nodeTimeout time.Duration
	fencedAny   bool // attempts were fenced: register again (fence.go)
	// standbyLogged: the agent said once that it waits as standby (join.go).
	standbyLogged bool

	// Attempts run under tasksCtx; stopTasks cancels it and waits on wg.
	tasksCtx context.Context
	stopAll  context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	mu       sync.Mutex
	syncSeq  int64               // last sync Seq sent
	applied  int64               // Seq of the last sync whose response was applied
	eventSeq int64               // last event Seq assigned
	outbox   []protocol.Event    // events not yet acknowledged, in Seq order
	known    map[string]*attempt // accepted and not completed-and-acknowledged
	seen     map[string]struct{} // every AttemptID ever accepted
	queued   chan struct{}       // closed and replaced when an event is queued

	// cleaning holds the clean orders in progress (guarded by mu; nil
	// until the first).
	cleaning map[*pendingClean]struct{}

	// pkgs installs application packages under <root>/applications.
	pkgs *packageInstaller

	// iso runs tasks as their users, in their cgroups (isolation.go).
	iso *isolation
}

func newAgent(cfg Config) (*agent, error) {
	if cfg.ServerURL == "" || cfg.NodeID == "" && !cfg.Join || cfg.RootDir == "" {
		return nil, errors.New("agent: ServerURL, NodeID and RootDir are required")
	}
	cfg, err := withServers(cfg) // several server URLs (servers.go)
	if err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = ListenDefault
	}
	if cfg.SyncInterruptDelay == 0 {
		cfg.SyncInterruptDelay = SyncInterruptDelayDefault
	}
	a := &agent{
		cfg:       cfg,
		log:       cfg.Logger,
		client:    cfg.HTTPClient,
		nodeID:    cfg.NodeID,
		heartbeat: HeartbeatIntervalDefault,
		known:     map[string]*attempt{},
		seen:      map[string]struct{}{},
		queued:    make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.log = a.log.With("node", cfg.NodeID)
	if a.client == nil {
		a.client = &http.Client{}
	}
	dir, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		return nil, fmt.Errorf("agent: root directory: %w", err)
	}
	a.rootDir = dir
	a.metrics.dir = dir
	if err := createLayout(dir); err != nil {
		return nil, err
	}
	if a.root, err = os.OpenRoot(dir); err != nil {
		return nil, fmt.Errorf("agent: root directory: %w", err)
	}
	a.pkgs = newPackageInstaller(a.root, a.client, a.log)
	a.iso = newIsolation(dir, a.log)
	a.hostname, _ = os.Hostname()
	a.ip = outboundIP(cfg.ServerURL)
	a.tasksCtx, a.stopAll = context.WithCancel(context.Background())
	return a, nil
}

func (a *agent) run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: file server: %w", err)
	}
	fsrv, err := fileserver.New(a.rootDir, a.nodeSecret)
	if err != nil {
		ln.Close()
		return fmt.Errorf("agent: file server: %w", err)
	}
	hs := &http.Server{
		Handler:           a.withOps(fsrv), // node_ops.go
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go hs.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			hs.Close()
		}
		fsrv.Close()
	}()
	a.fileServerURL = fileServerURL(ln.Addr(), a.ip)
	a.log.Info("agent starting", "server", a.cfg.ServerURL, "root", a.rootDir, "fileServer", a.fileServerURL)

	defer a.stopTasks()
	fctx, stopFence := context.WithCancel(ctx)
	defer stopFence()
	go a.watchFence(fctx) // fence.go
	return a.loop(ctx)
}

// nodeSecret is the file server's view of the current NodeSecret.
func (a *agent) nodeSecret() string {
	if p := a.secret.Load(); p != nil {
		return *p
	}
	return ""
}

// stopTasks kills every attempt and waits until all attempt and cleanup
// goroutines have finished; their completion events are then in the outbox.
func (a *agent) stopTasks() {
	a.stopOnce.Do(a.stopAll)
	a.wg.Wait()
}

// orphanDeadline is when the agent gives up on the server (zero: never).
func (a *agent) orphanDeadline() time.Time {
	if a.cfg.OrphanTimeout <= 0 {
		return time.Time{}
	}
	return a.lastContact.Add(a.cfg.OrphanTimeout)
}

func (a *agent) orphaned() bool {
	d := a.orphanDeadline()
	return !d.IsZero() && !time.Now().Before(d)
}

// requestContext bounds one request by timeout and by the orphan deadline.
func (a *agent) requestContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(timeout)
	if d := a.orphanDeadline(); !d.IsZero() && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(parent, deadline)
}

// sleep waits d, cut short by the orphan deadline; it returns false if ctx
// ended first.
func (a *agent) sleep(ctx context.Context, d time.Duration) bool {
	if od := a.orphanDeadline(); !od.IsZero() {
		d = min(d, max(time.Until(od), 0))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fileServerURL is http://<bound address>, with ip in place of an
// unspecified bound IP.
func fileServerURL(addr net.Addr, ip string) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
		if ip != "" {
			host = ip
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// outboundIP is the local IP used to reach the server (no packet is sent).
func outboundIP(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return ""
	}
	defer c.Close()
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return ua.IP.String()
	}
	return ""
}

// agentVersion is the module version the binary was built from.
func agentVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
