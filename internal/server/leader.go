package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnbatch/kiln/internal/store"
)

// High availability (docs/high-availability.md): servers that share a
// store implementing store.Elector (PostgreSQL) elect a leader through a
// lease in the store. The leader alone runs a service (state, scheduler,
// pool loops, node provider) and answers requests; every other server is a
// follower that forwards every request to the leader (follower.go) and
// tries to take the lease every LeaderPollInterval. A follower that takes
// it loads the state from the store and answers requests itself.

// LeaderPollInterval is how often a follower tries to take the leader
// lease (and refreshes where the leader is).
var LeaderPollInterval = time.Second

// LeaseLostExit is what a server does when it cannot lead on: its lease
// was lost (the store connection holding it failed), or it took the lease
// but could not start the control plane. By default it logs why and exits
// with status 3, since its in-memory state may be stale and another server
// may lead already; a supervisor restarts it as a follower. Tests may
// replace it.
var LeaseLostExit = func(s *Server, why string) {
	s.cfg.Logger.Error(why + "; exiting so that no two servers lead")
	os.Exit(3)
}

// Roles a server reports.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)

// ha is the highly available part of a server: who leads, and the handler
// of the current role.
type ha struct {
	s           *Server
	el          store.Elector
	st          store.Store
	me          store.Leader
	tls         bool // serves HTTPS
	fingerprint string
	selfSigned  bool

	handler atomic.Pointer[http.Handler] // leader's API, or the follower's proxy
	proxy   *followerProxy

	mu      sync.Mutex
	inner   *Server // the leading control plane, nil while following
	lease   store.Lease
	closing bool

	stop chan struct{}
	done chan struct{}
}

// startHA starts a server on a shared store: leader at once if no other
// server leads, else follower until it takes the lease.
func startHA(ctx context.Context, cfg Config, ln net.Listener, tlsCfg tlsSetup, baseURL string, st store.Store, el store.Elector) (*Server, error) {
	s := &Server{cfg: cfg, ln: ln, Fingerprint: tlsCfg.fingerprint}
	h := &ha{s: s, el: el, st: st, tls: tlsCfg.cfg != nil, fingerprint: tlsCfg.fingerprint, selfSigned: tlsCfg.selfSigned,
		stop: make(chan struct{}), done: make(chan struct{})}
	h.me = store.Leader{Holder: holderID(), URL: baseURL, Fingerprint: tlsCfg.fingerprint}
	h.proxy = newFollowerProxy(h)
	s.ha = h
	s.Creds = Credentials{URL: baseURL}
	if tlsCfg.selfSigned {
		s.Creds.ServerFingerprint = tlsCfg.fingerprint
	}
	fail := func(err error) (*Server, error) {
		st.Close()
		ln.Close()
		return nil, err
	}
	lease, err := el.TryLead(ctx, h.me)
	if err != nil {
		return fail(err)
	}
	if u, err := url.Parse(baseURL); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
			cfg.Logger.Warn("other servers and agents reach this server at " + baseURL + ", which is no address; set --public-url")
		}
	}
	if cfg.Storage == "" && (lease == nil || len(cfg.PeerURLs) > 0) {
		cfg.Logger.Warn("several servers on one database, but storage is in this server's data directory: " +
			"give every server the same --storage bucket, or blobs written through one are missing on the next leader")
	}
	if lease != nil {
		if err := h.lead(ctx, lease); err != nil {
			lease.Release()
			ln.Close()
			return nil, err
		}
	} else {
		var ph http.Handler = h.proxy
		h.handler.Store(&ph)
		if err := h.followerCredentials(ctx); err != nil {
			return fail(err)
		}
		cfg.Logger.Info("another server leads: following it", "leader", h.proxy.leaderURL())
	}
	s.http = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsCfg.cfg}
	go h.run()
	go func() {
		serve := s.http.Serve
		if tlsCfg.cfg != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http server", "err", err)
		}
	}()
	return s, nil
}

// lead starts the control plane on the store under lease and serves it.
func (h *ha) lead(ctx context.Context, lease store.Lease) error {
	cfg := h.s.cfg
	inner, err := startLeader(ctx, cfg, newIdleListener(h.s.ln.Addr()), tlsSetup{fingerprint: h.fingerprint, selfSigned: h.selfSigned},
		h.me.URL, h.st)
	if err != nil {
		return fmt.Errorf("lead: %w", err)
	}
	h.mu.Lock()
	h.inner, h.lease = inner, lease
	h.s.Creds = inner.Creds
	h.mu.Unlock()
	var api http.Handler = inner.http.Handler
	h.handler.Store(&api)
	cfg.Logger.Info("leading: this server runs the scheduler and pool loops", "epoch", lease.Epoch(), "url", h.me.URL)
	return nil
}

// run follows until it takes the lease, then watches the lease.
func (h *ha) run() {
	defer close(h.done)
	t := time.NewTicker(LeaderPollInterval)
	defer t.Stop()
	for {
		h.mu.Lock()
		lease := h.lease
		h.mu.Unlock()
		if lease != nil {
			select {
			case <-h.stop:
				return
			case <-lease.Lost():
				h.mu.Lock()
				closing := h.closing
				h.mu.Unlock()
				if !closing {
					LeaseLostExit(h.s, "lost the leader lease (the store connection holding it failed)")
				}
				return
			}
		}
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		h.proxy.refresh(ctx)
		lease, err := h.el.TryLead(ctx, h.me)
		if err != nil {
			h.s.cfg.Logger.Warn("leader lease", "err", err)
		} else if lease != nil {
			start := time.Now()
			// Not ctx: what the control plane opens may keep its context.
			if err := h.lead(context.WithoutCancel(ctx), lease); err != nil {
				// The state could not be loaded: leave the lease to another
				// server rather than lead without a control plane.
				lease.Release()
				cancel()
				LeaseLostExit(h.s, "took the leader lease but cannot lead ("+err.Error()+"); gave it up")
				return
			}
			h.s.cfg.Logger.Info("took over as leader", "epoch", lease.Epoch(), "load", time.Since(start).Round(time.Millisecond))
		}
		cancel()
	}
}

// ServeHTTP answers /healthz and /healthz/leader itself and passes every
// other request to the role's handler.
func (h *ha) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	role := h.Role()
	w.Header().Set("X-Kiln-Role", role)
	if h.serveMetrics(w, r) { // this process's own, never forwarded (metrics.go)
		return
	}
	switch {
	case r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	case r.URL.Path == "/healthz/leader" && r.Method == http.MethodGet:
		h.serveLeaderInfo(w, r, role)
		return
	}
	(*h.handler.Load()).ServeHTTP(w, r)
}

// Role is RoleLeader or RoleFollower.
func (h *ha) Role() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inner != nil {
		return RoleLeader
	}
	return RoleFollower
}

// LeaderInfo is the answer of GET /healthz/leader.
type LeaderInfo struct {
	// Role is this server's: leader or follower.
	Role string `json:"role"`
	// URL is this server's URL.
	URL string `json:"url"`
	// Leader is the URL of the leader as recorded in the store, Epoch its
	// lease's epoch and Since when it took it.
	Leader string    `json:"leader,omitempty"`
	Epoch  int64     `json:"epoch,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

func (h *ha) serveLeaderInfo(w http.ResponseWriter, r *http.Request, role string) {
	info := LeaderInfo{Role: role, URL: h.me.URL}
	if l, ok, err := h.el.CurrentLeader(r.Context()); err == nil && ok {
		info.Leader, info.Epoch, info.Since = l.URL, l.Epoch, l.Since
	}
	b, _ := json.Marshal(info)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// followerCredentials finds the account a follower writes to
// credentials.json: the configured one, else the first stored one; the
// leader creates it, so it waits for it a while.
func (h *ha) followerCredentials(ctx context.Context) error {
	cfg := h.s.cfg
	deadline := time.Now().Add(60 * time.Second)
	for {
		accts, err := h.st.AccountList(ctx)
		if err != nil {
			return err
		}
		for _, a := range accts {
			if cfg.AccountName == "" || strings.EqualFold(a.Name, cfg.AccountName) {
				h.s.Creds.AccountName, h.s.Creds.AccountKey = a.Name, a.PrimaryKey
				return writeCredentials(cfg.DataDir, h.s.Creds)
			}
		}
		if time.Now().After(deadline) {
			return errors.New("server: following another server, but the store holds no account yet (is the leader up?)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// shutdown stops following or leading; a leader releases its lease, so a
// follower takes over at once.
func (h *ha) shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	h.mu.Lock()
	inner, lease := h.inner, h.lease
	h.mu.Unlock()
	if inner != nil {
		inner.svc.Close() // ends the agents' long polls, which Shutdown waits for
	}
	err := h.s.http.Shutdown(ctx)
	if inner != nil {
		if ierr := inner.Shutdown(ctx); err == nil {
			err = ierr
		}
	} else if cerr := h.st.Close(); err == nil {
		err = cerr
	}
	if lease != nil {
		_ = lease.Release()
	}
	return err
}

// holderID names this process in the lease row.
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// agentURLs is what agents started by this server get as --server: this
// server's URL, then its peers' (they fail over in that order).
func agentURLs(baseURL string, peers []string) string {
	urls := []string{baseURL}
	for _, p := range peers {
		p = strings.TrimRight(strings.TrimSpace(p), "/")
		if p != "" && p != baseURL {
			urls = append(urls, p)
		}
	}
	return strings.Join(urls, ",")
}

// idleListener is the listener of a leader's inner HTTP server in HA mode:
// the outer server accepts connections, so it never yields one.
type idleListener struct {
	addr net.Addr
	once sync.Once
	done chan struct{}
}

func newIdleListener(addr net.Addr) *idleListener {
	return &idleListener{addr: addr, done: make(chan struct{})}
}

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return l.addr }

// tlsSetup is how the server serves: its TLS configuration (nil: plain
// HTTP), its certificate's fingerprint, and whether that certificate is the
// generated self-signed one.
type tlsSetup struct {
	cfg         *tls.Config
	fingerprint string
	selfSigned  bool
}

// Role is this server's role: RoleLeader, or RoleFollower on a shared
// store while another server leads. A server on SQLite always leads.
func (s *Server) Role() string {
	if s.ha == nil {
		return RoleLeader
	}
	return s.ha.Role()
}
