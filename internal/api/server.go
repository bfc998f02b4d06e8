// Package api serves the Azure Batch data-plane REST API (api-version
// 2024-07-01.20.0 and older ones of the form YYYY-MM-DD.NN.N since 2018) on
// top of service.Operations: routing, Shared Key authentication, OData query
// options, the Azure error body and the node file proxy to agent file
// servers. It holds no state of its own.
package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/applications"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/metrics"
	"github.com/kilnbatch/kiln/internal/service"
	"github.com/kilnbatch/kiln/sharedkey"
)

// Config configures the handler returned by New.
type Config struct {
	// Ops is the service every Azure Batch call is delegated to. Required.
	Ops service.Operations
	// AgentHandler serves /agent/v1/* (the agent protocol), mounted at
	// /agent/ without Shared Key auth. May be nil (then /agent/ is 404).
	AgentHandler http.Handler
	// StorageHandler serves Kiln storage (Azure Blob protocol, SAS
	// authentication of its own) under /storage/, with the prefix
	// stripped. May be nil (then /storage/ is 404).
	StorageHandler http.Handler
	// Applications holds application packages (nil: the application
	// routes answer 501).
	Applications *applications.Registry
	// Logger receives request errors and panics. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for signature freshness and error timestamps.
	// Default time.Now.
	Now func() time.Time
	// Metrics, when set, serves GET /metrics (no Shared Key: its own
	// optional bearer token) and counts every request (docs/metrics.md).
	Metrics *metrics.Metrics
}

// server holds the dependencies shared by the handlers.
type server struct {
	ops      service.Operations
	log      *slog.Logger
	now      func() time.Time
	verifier *sharedkey.Verifier
	mux      *http.ServeMux // Azure Batch routes, behind auth
	files    *http.Client   // talks to agent file servers
	apps     *applications.Registry
}

// New returns the HTTP handler of the whole server: GET /healthz, the agent
// protocol under /agent/ and every Azure Batch route.
func New(cfg Config) http.Handler {
	s := &server{ops: cfg.Ops, log: cfg.Logger, now: cfg.Now, apps: cfg.Applications}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.verifier = &sharedkey.Verifier{Keys: cfg.Ops.AccountKeys, Now: s.now}
	s.files = newFileHTTPClient()
	s.mux = http.NewServeMux()
	s.routes()

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	if cfg.AgentHandler != nil {
		root.Handle("/agent/", cfg.AgentHandler)
	} else {
		root.Handle("/agent/", http.NotFoundHandler())
	}
	if cfg.StorageHandler != nil {
		root.Handle("/storage", http.StripPrefix("/storage", cfg.StorageHandler))
		root.Handle("/storage/", http.StripPrefix("/storage", cfg.StorageHandler))
	}
	root.Handle("/", http.HandlerFunc(s.serveBatch))
	if cfg.Metrics != nil {
		root.Handle("GET /metrics", cfg.Metrics.Handler())
		return cfg.Metrics.Instrument(s.recoverer(root), s.operation)
	}
	return s.recoverer(root)
}

// operation labels a served request for metrics: the pattern of the route
// that served it ("GET /pools/{poolId}", "/agent/"), "other" for paths no
// route knows.
func (s *server) operation(r *http.Request) string {
	p := r.Pattern
	if p == "/" { // refused before serveBatch routed it (authentication)
		_, p = s.mux.Handler(r)
	}
	if p == "" || p == "/" {
		return "other"
	}
	return p
}

// newFileHTTPClient returns the client for agent file servers: no overall
// timeout (downloads stream), but a bounded wait for connections and
// response headers.
func newFileHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

// routes registers every Azure Batch route on s.mux.
func (s *server) routes() {
	h := func(pattern string, fn func(*call) error) {
		s.mux.Handle(pattern, s.handler(fn))
	}

	// Account.
	h("GET /supportedimages", s.supportedImages)
	h("GET /nodecounts", s.poolNodeCounts)
	h("GET /lifetimejobstats", s.lifetimeJobStats)
	h("GET /lifetimepoolstats", s.lifetimePoolStats)

	// Pools.
	h("POST /pools", s.poolAdd)
	h("GET /pools", s.poolList)
	h("GET /pools/{poolId}", s.poolGet)
	h("HEAD /pools/{poolId}", s.poolExists)
	h("DELETE /pools/{poolId}", s.poolDelete)
	h("PATCH /pools/{poolId}", s.poolPatch)
	h("POST /pools/{poolId}/updateproperties", s.poolUpdateProperties)
	h("POST /pools/{poolId}/resize", s.poolResize)
	h("POST /pools/{poolId}/stopresize", s.poolStopResize)
	h("POST /pools/{poolId}/removenodes", s.poolRemoveNodes)
	s.autoScaleRoutes(h)

	// Compute nodes.
	h("GET /pools/{poolId}/nodes", s.nodeList)
	h("GET /pools/{poolId}/nodes/{nodeId}", s.nodeGet)
	h("POST /pools/{poolId}/nodes/{nodeId}/reboot", s.nodeReboot)
	h("POST /pools/{poolId}/nodes/{nodeId}/disablescheduling", s.nodeDisableScheduling)
	h("POST /pools/{poolId}/nodes/{nodeId}/enablescheduling", s.nodeEnableScheduling)
	h("GET /pools/{poolId}/nodes/{nodeId}/files", s.nodeFileList)
	h("GET /pools/{poolId}/nodes/{nodeId}/files/{filePath...}", s.nodeFileGet)
	h("HEAD /pools/{poolId}/nodes/{nodeId}/files/{filePath...}", s.nodeFileProperties)
	h("DELETE /pools/{poolId}/nodes/{nodeId}/files/{filePath...}", s.nodeFileDelete)
	s.nodeOpsRoutes(h)
	s.certificateRoutes(h)

	// Jobs.
	h("POST /jobs", s.jobAdd)
	h("GET /jobs", s.jobList)
	h("GET /jobs/{jobId}", s.jobGet)
	h("DELETE /jobs/{jobId}", s.jobDelete)
	h("PATCH /jobs/{jobId}", s.jobPatch)
	h("PUT /jobs/{jobId}", s.jobUpdate)
	h("POST /jobs/{jobId}/disable", s.jobDisable)
	h("POST /jobs/{jobId}/enable", s.jobEnable)
	h("POST /jobs/{jobId}/terminate", s.jobTerminate)
	h("GET /jobs/{jobId}/taskcounts", s.jobTaskCounts)
	h("GET /jobs/{jobId}/jobpreparationandreleasetaskstatus", s.jobPrepReleaseStatus)

	// Job schedules.
	h("POST /jobschedules", s.jobScheduleAdd)
	h("GET /jobschedules", s.jobScheduleList)
	h("GET /jobschedules/{jobScheduleId}", s.jobScheduleGet)
	h("HEAD /jobschedules/{jobScheduleId}", s.jobScheduleExists)
	h("DELETE /jobschedules/{jobScheduleId}", s.jobScheduleDelete)
	h("PATCH /jobschedules/{jobScheduleId}", s.jobSchedulePatch)
	h("PUT /jobschedules/{jobScheduleId}", s.jobScheduleUpdate)
	h("POST /jobschedules/{jobScheduleId}/disable", s.jobScheduleDisable)
	h("POST /jobschedules/{jobScheduleId}/enable", s.jobScheduleEnable)
	h("POST /jobschedules/{jobScheduleId}/terminate", s.jobScheduleTerminate)
	h("GET /jobschedules/{jobScheduleId}/jobs", s.jobScheduleJobList)

	// Tasks.
	h("POST /jobs/{jobId}/tasks", s.taskAdd)
	h("POST /jobs/{jobId}/addtaskcollection", s.taskAddCollection)
	h("GET /jobs/{jobId}/tasks", s.taskList)
	h("GET /jobs/{jobId}/tasks/{taskId}", s.taskGet)
	h("PUT /jobs/{jobId}/tasks/{taskId}", s.taskUpdate)
	h("DELETE /jobs/{jobId}/tasks/{taskId}", s.taskDelete)
	h("POST /jobs/{jobId}/tasks/{taskId}/terminate", s.taskTerminate)
	h("POST /jobs/{jobId}/tasks/{taskId}/reactivate", s.taskReactivate)
	h("GET /jobs/{jobId}/tasks/{taskId}/subtasksinfo", s.taskSubtasks)
	h("GET /jobs/{jobId}/tasks/{taskId}/files", s.taskFileList)
	h("GET /jobs/{jobId}/tasks/{taskId}/files/{filePath...}", s.taskFileGet)
	h("HEAD /jobs/{jobId}/tasks/{taskId}/files/{filePath...}", s.taskFileProperties)
	h("DELETE /jobs/{jobId}/tasks/{taskId}/files/{filePath...}", s.taskFileDelete)

	// Applications (data plane) and their management (Kiln's own routes).
	h("GET /applications", s.applicationList)
	h("GET /applications/{applicationId}", s.applicationGet)
	h("PUT /kiln/applications/{applicationId}", s.applicationPut)
	h("DELETE /kiln/applications/{applicationId}", s.applicationDelete)
	h("PUT /kiln/applications/{applicationId}/versions/{version}", s.applicationVersionPut)
	h("DELETE /kiln/applications/{applicationId}/versions/{version}", s.applicationVersionDelete)

	// Spot preemption on demand (Kiln's own route, spot.go).
	h("POST /kiln/pools/{poolId}/preempt", s.poolPreempt)

	// Account keys (Kiln's own routes, account_keys.go).
	h("GET /kiln/account/keys", s.accountKeysList)
	h("POST /kiln/account/keys/regenerate", s.accountKeyRegenerate)

	// Join tokens of bring-your-own-node pools (Kiln's own routes, join_tokens.go).
	s.joinTokenRoutes(h)
	s.accountRoutes(h) // /kiln/accounts (accounts.go)

	// Azure operations Kiln does not implement yet (501 NotImplemented).
	// Certificate paths with parentheses are handled in s.fallback.
	for pattern, op := range notImplemented {
		h(pattern, s.unsupported(op))
	}
	h("/", s.fallback)
}

// notImplemented maps the routes of the remaining Azure Batch operations
// (current and older api-versions) to their operation names.
var notImplemented = map[string]string{
	"POST /pools/{poolId}/upgradeos":         "Pool_UpgradeOS",
	"GET /pools/{poolId}/nodes/{nodeId}/rdp": "ComputeNode_GetRemoteDesktop",
}

// serveBatch authenticates an Azure Batch request, checks its api-version
// and dispatches it.
func (s *server) serveBatch(w http.ResponseWriter, r *http.Request) {
	c := s.newCall(w, r)
	account, err := s.verifier.Verify(r)
	if err != nil {
		c.fail(err)
		return
	}
	// Account names are case-insensitive; the service gets them lowercased.
	c.account = strings.ToLower(account)
	if err := c.checkAPIVersion(); err != nil {
		c.fail(err)
		return
	}
	routed := r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	s.mux.ServeHTTP(w, routed)
	r.Pattern = routed.Pattern // the route, for operation (no second lookup)
}

type callKey struct{}

// handler adapts a call handler to http.Handler: it picks up the call that
// serveBatch attached and answers the returned error.
func (s *server) handler(fn func(*call) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(callKey{}).(*call)
		if c == nil {
			// Only reachable if s.mux is served directly.
			c = s.newCall(w, r)
		}
		c.r = r
		if err := fn(c); err != nil {
			c.fail(err)
		}
	})
}

// recoverer turns a panic into a 500 answer (when nothing was sent yet) and
// logs it; http.ErrAbortHandler is passed on.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.EscapedPath(),
				"panic", v, "stack", string(debug.Stack()))
			if sw.wrote {
				// Too late for an error answer: cut the connection.
				panic(http.ErrAbortHandler)
			}
			c := s.newCall(sw, r)
			c.fail(errPanic)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records whether the response has started.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unsupported answers an Azure operation Kiln does not implement.
func (s *server) unsupported(op string) func(*call) error {
	return func(c *call) error { return errNotImplemented(op) }
}

func errNotImplemented(op string) error {
	e := batch.Errorf(http.StatusNotImplemented, "NotImplemented",
		"The operation %s is not implemented by this Kiln server.", op)
	return e.With("Operation", op)
}

// fallback answers requests no route matched: certificate operations (their
// paths have parentheses, certificates.go), known paths with another method
// 405 UnsupportedHttpVerb, anything else 400 InvalidUri.
func (s *server) fallback(c *call) error {
	p := c.r.URL.EscapedPath()
	if strings.HasPrefix(p, "/certificates(") || strings.HasPrefix(p, "/certificates%28") {
		return s.certificateByThumbprint(c) // certificates.go
	}
	if allowed := s.allowedMethods(c.r); len(allowed) > 0 {
		c.w.Header().Set("Allow", strings.Join(allowed, ", "))
		e := batch.Errorf(http.StatusMethodNotAllowed, "UnsupportedHttpVerb",
			"The resource doesn't support the specified HTTP verb.")
		return e.With("HttpVerb", c.r.Method)
	}
	e := batch.Errorf(http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server.")
	return e.With("Path", p)
}

// allowedMethods lists the methods some route other than the fallback
// serves for r's path.
func (s *server) allowedMethods(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.WithContext(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}
