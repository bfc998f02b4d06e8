// Package ui serves Kiln's web dashboard at /ui on the server's port
// (docs/dashboard.md): static assets embedded in the binary, a sign-in
// session held in an HTTP-only cookie, and a few server-side helpers for the
// browser. Every Batch call the dashboard makes goes through /ui/api, which
// signs it with the session account's key and hands it to the same API
// handler as every client, so the dashboard is authorized exactly as a
// client of that account.
package ui

import (
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assetsFS embed.FS

// APIVersion is the api-version of the calls the server makes for the
// dashboard (tail, history).
const APIVersion = "2024-07-01.20.0"

// Config configures the dashboard.
type Config struct {
	// API is the server's root handler (api.New): Batch routes and
	// /storage/. Required.
	API http.Handler
	// Keys returns an account's current keys, decoded (primary first).
	// Required.
	Keys func(account string) ([][]byte, bool)
	// Accounts lists the accounts whose history the sampler records.
	// Nil: only accounts that signed in since the server started.
	Accounts func() []string
	// Secure marks the session cookie Secure (the server serves HTTPS).
	Secure bool
	// SessionIdle is how long an unused session lives (12 h).
	SessionIdle time.Duration
	// HistoryInterval is the sampling period of /ui/history (10 s).
	HistoryInterval time.Duration
	// TailInterval is how often /ui/tail polls a task file (500 ms).
	TailInterval time.Duration
	Logger       *slog.Logger
}

// Handler serves /ui and everything under it.
type Handler struct {
	cfg      Config
	assets   fs.FS
	mux      *http.ServeMux
	sessions *sessions
	history  *history
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// New returns the dashboard handler and starts its history sampler; Close
// stops it.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 12 * time.Hour
	}
	if cfg.HistoryInterval <= 0 {
		cfg.HistoryInterval = 10 * time.Second
	}
	if cfg.TailInterval <= 0 {
		cfg.TailInterval = 500 * time.Millisecond
	}
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		panic(err)
	}
	h := &Handler{cfg: cfg, assets: sub, stop: make(chan struct{}), done: make(chan struct{})}
	h.sessions = newSessions(cfg.SessionIdle)
	h.history = newHistory(time.Hour)
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	h.mux.HandleFunc("GET /ui/session", h.sessionGet)
	h.mux.HandleFunc("POST /ui/session", h.sessionPost)
	h.mux.HandleFunc("DELETE /ui/session", h.sessionDelete)
	h.mux.HandleFunc("/ui/api/", h.apiProxy)
	h.mux.HandleFunc("/ui/storage", h.storageProxy)
	h.mux.HandleFunc("/ui/storage/", h.storageProxy)
	h.mux.HandleFunc("GET /ui/tail", h.tail)
	h.mux.HandleFunc("GET /ui/history", h.historyGet)
	h.mux.HandleFunc("/ui/", h.asset) // any method: a method here would conflict with /ui/api/
	go h.sample()
	return h
}

// Close stops the history sampler and ends the live task streams.
func (h *Handler) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// ServeHTTP serves a request under /ui.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "Cross-site requests to the dashboard are refused.")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// sameOrigin refuses a state-changing request that a browser sent from
// another site (its Origin header names another host): with the X-Kiln-UI
// header and the SameSite cookie, a guard against cross-site requests,
// including a forged sign-in.
func sameOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser, or a browser that sends none: the other guards hold
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	return fwd != "" && strings.EqualFold(u.Host, strings.TrimSpace(fwd))
}

// Wrap returns a handler serving /ui and everything under it with h, and
// every other path with next.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/ui" || strings.HasPrefix(p, "/ui/") {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// contentTypes are the types of the embedded assets (not the system's MIME
// table, which varies between machines).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// asset serves an embedded file; /ui/ is index.html.
func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if name == "" {
		name = "index.html"
	}
	name = path.Clean(name)
	if !fs.ValidPath(name) || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(h.assets, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
