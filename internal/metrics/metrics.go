// Package metrics exposes Kiln's Prometheus metrics (docs/metrics.md): task
// and node counts read from the service's in-memory state at scrape time,
// histograms of scheduling latency, task run time, API requests and store
// transactions, and counters of API requests and agent heartbeats.
//
// One Metrics belongs to one server process. It implements
// service.Observer; the server installs it on the service it leads.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kilnbatch/kiln/internal/service"
)

// Namespace prefixes every Kiln metric.
const Namespace = "kiln"

// Buckets of the histograms, in seconds.
var (
	// LatencyBuckets cover scheduling latency: from a few milliseconds
	// (an idle node takes the task at once) to an hour (a queue waiting
	// for nodes).
	LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// RunBuckets cover task run times: a second to a day.
	RunBuckets = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}
	// RequestBuckets cover API requests (agent long polls last up to the
	// heartbeat interval, 10s by default).
	RequestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// CommitBuckets cover store transactions.
	CommitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Options configure New.
type Options struct {
	// Store is the store kind, "sqlite" or "postgres": the label of the
	// store transaction histogram.
	Store string
	// Role reports the server's role ("leader" or "follower") for
	// kiln_server_leader; nil: always leader.
	Role func() string
	// Token, when set, is the bearer token a scrape must present
	// (Authorization: Bearer <token>); empty: no authentication.
	Token string
}

// Metrics holds one process's registry and instruments.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry
	svc  atomic.Pointer[service.Service]
	role atomic.Pointer[func() string]
	h    http.Handler // the /metrics handler (Handler)

	schedLatency *prometheus.HistogramVec
	runTime      *prometheus.HistogramVec
	requests     *prometheus.CounterVec
	reqDuration  *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	commits      *prometheus.HistogramVec
	commitErrors *prometheus.CounterVec
}

// New builds the registry with every Kiln metric plus the Go runtime and
// process collectors.
func New(opts Options) *Metrics {
	if opts.Store == "" {
		opts.Store = "sqlite"
	}
	m := &Metrics{opts: opts, reg: prometheus.NewRegistry()}
	if opts.Role != nil {
		m.SetRole(opts.Role)
	}
	m.schedLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "task_scheduling_latency_seconds",
		Help:    "Time from a task becoming eligible to run (added, dependencies satisfied, retried or requeued) to its attempt starting on a node.",
		Buckets: LatencyBuckets,
	}, []string{"account", "pool"})
	m.runTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "task_run_seconds",
		Help:    "Run time of task attempts, from start to end on the node, by result (success or failure).",
		Buckets: RunBuckets,
	}, []string{"account", "pool", "result"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "api_requests_total",
		Help: "HTTP requests served, by operation (the route pattern, such as \"GET /pools/{poolId}\") and status code.",
	}, []string{"operation", "status"})
	m.reqDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "api_request_duration_seconds",
		Help:    "Duration of HTTP requests until the handler returned, by operation and status code (agent long polls included).",
		Buckets: RequestBuckets,
	}, []string{"operation", "status"})
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "agent_heartbeats_total",
		Help: "Agent syncs (heartbeats) received from compute nodes, by pool.",
	}, []string{"account", "pool"})
	m.commits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "store_transaction_duration_seconds",
		Help:    "Duration of the service's store transactions (one batch of writes each), by store kind (sqlite or postgres).",
		Buckets: CommitBuckets,
	}, []string{"store"})
	m.commitErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "store_transaction_errors_total",
		Help: "Store transactions of the service that failed, by store kind.",
	}, []string{"store"})
	m.reg.MustRegister(m.schedLatency, m.runTime, m.requests, m.reqDuration, m.syncs, m.commits, m.commitErrors)
	m.commits.WithLabelValues(opts.Store) // present from the start
	m.commitErrors.WithLabelValues(opts.Store)
	m.reg.MustRegister(&stateCollector{m: m})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "server_leader",
		Help: "1 if this server leads (runs the scheduler and answers the API), 0 if it follows another (high availability).",
	}, func() float64 {
		if role := m.role.Load(); role != nil && (*role)() != "leader" {
			return 0
		}
		return 1
	}))
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.h = m.newHandler()
	return m
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetRole sets what kiln_server_leader reports (see Options.Role).
func (m *Metrics) SetRole(role func() string) { m.role.Store(&role) }

// Attach makes svc the source of the state gauges and installs m as its
// observer. A server that takes over as leader attaches its new service.
// A nil m does nothing (metrics are off).
func (m *Metrics) Attach(svc *service.Service) {
	if m == nil {
		return
	}
	svc.SetObserver(m)
	m.svc.Store(svc)
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked), behind the bearer token if one is set.
func (m *Metrics) Handler() http.Handler { return m.h }

func (m *Metrics) newHandler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
	if m.opts.Token == "" {
		return h
	}
	want := "Bearer " + m.opts.Token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !constantTimeEqual(r.Header.Get("Authorization"), want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kiln metrics"`)
			http.Error(w, "Unauthorized: /metrics needs the bearer token given to kiln server --metrics-token.", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TaskStarted implements service.Observer.
func (m *Metrics) TaskStarted(account, pool, job string, latency time.Duration) {
	m.schedLatency.WithLabelValues(account, pool).Observe(latency.Seconds())
}

// TaskEnded implements service.Observer.
func (m *Metrics) TaskEnded(account, pool, job, result string, d time.Duration) {
	m.runTime.WithLabelValues(account, pool, result).Observe(d.Seconds())
}

// AgentSync implements service.Observer.
func (m *Metrics) AgentSync(account, pool string) {
	m.syncs.WithLabelValues(account, pool).Inc()
}

// StoreCommit implements service.Observer.
func (m *Metrics) StoreCommit(d time.Duration, err error) {
	m.commits.WithLabelValues(m.opts.Store).Observe(d.Seconds())
	if err != nil {
		m.commitErrors.WithLabelValues(m.opts.Store).Inc()
	}
}

// ObserveRequest counts one HTTP request.
func (m *Metrics) ObserveRequest(operation string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(operation, code).Inc()
	m.reqDuration.WithLabelValues(operation, code).Observe(d.Seconds())
}

var _ service.Observer = (*Metrics)(nil)
