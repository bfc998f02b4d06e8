// Package server wires Kiln's control plane together: store, service, node
// provider and HTTP API, listening on one address.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/api"
	"github.com/kilnbatch/kiln/internal/applications"
	"github.com/kilnbatch/kiln/internal/metrics"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/provider/local"
	"github.com/kilnbatch/kiln/internal/provider/sim"
	"github.com/kilnbatch/kiln/internal/service"
	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/tlspin"
	"github.com/kilnbatch/kiln/internal/ui"
)

// AddrDefault is where `kiln server` listens without --addr.
const AddrDefault = "127.0.0.1:8080"

// Config configures a server. Zero values take the documented defaults.
type Config struct {
	// Addr is the listen address (AddrDefault).
	Addr string
	// DataDir holds the SQLite database, node directories and the
	// credentials file.
	DataDir string
	// AccountName and AccountKey (base64) create the account on first start;
	// empty values generate them.
	AccountName string
	AccountKey  string
	// PublicURL is the URL clients use, if not http://<listen address>.
	PublicURL string
	// HeartbeatInterval and NodeTimeout tune agent liveness (service
	// defaults).
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
	// AgentOrphanTimeout is how long local agents outlive an unreachable
	// server (local.OrphanTimeoutDefault).
	AgentOrphanTimeout time.Duration
	// Provider chooses where nodes come from: "local" (the default: real
	// `kiln agent` processes under DataDir/nodes) or "sim" (no process: node
	// specs are written to DataDir/sim-nodes for a harness such as
	// `kiln bench` to run simulated agents).
	Provider string
	// Storage is the bucket URL of Kiln storage (file://, s3:// or
	// azblob://); empty: a file:// bucket in DataDir/storage.
	Storage string
	// Store is where the record is kept: empty (or a path) for SQLite in
	// DataDir/kiln.db, or a postgres:// / postgresql:// DSN for PostgreSQL.
	Store  string
	Logger *slog.Logger
	// AutoScaleMinInterval lowers the shortest autoScaleEvaluationInterval
	// below Azure's 5 minutes, and MetricsSampleInterval the pool sampling
	// period below 30s; both for development and tests (service defaults).
	AutoScaleMinInterval  time.Duration
	MetricsSampleInterval time.Duration
	// Spot simulates the preemption of low-priority nodes (none by
	// default; see service.SpotConfig).
	Spot service.SpotConfig
	// TLSCert and TLSKey are PEM files: the server serves HTTPS with them.
	// TLSAuto without them serves HTTPS with a self-signed certificate
	// generated into DataDir on first start (tlspin.CertFile, KeyFile) and
	// reused after. Neither: plain HTTP.
	TLSCert, TLSKey string
	TLSAuto         bool
	// Slurm configures the Slurm provider (slurm.go).
	Slurm SlurmConfig
	// PeerURLs are the URLs of the other servers on the same PostgreSQL
	// store (high availability, leader.go): agents this server starts get
	// its URL and theirs, and fail over between them.
	PeerURLs []string
	// MetricsOff turns off GET /metrics (Prometheus, metrics.go);
	// MetricsToken, when set, is the bearer token a scrape must present.
	MetricsOff   bool
	MetricsToken string
	metrics      *metrics.Metrics // built by Start unless MetricsOff
}

// Credentials are what a client needs; the server writes them to
// <DataDir>/credentials.json.
type Credentials struct {
	URL         string `json:"url"`
	AccountName string `json:"accountName"`
	AccountKey  string `json:"accountKey"`
	// ServerFingerprint pins the server's self-signed certificate
	// ("SHA256:<hex>"); empty for plain HTTP and for a --tls-cert.
	ServerFingerprint string `json:"serverFingerprint,omitempty"`
}

// CredentialsFile is the name of the credentials file in the data directory.
const CredentialsFile = "credentials.json"

// Server is a running control plane.
type Server struct {
	cfg    Config
	ln     net.Listener
	http   *http.Server
	svc    *service.Service
	close  func() error
	Creds  Credentials
	credMu sync.Mutex // serializes credentials.json rewrites
	links  *storageLinks
	blobs  *storage.Storage // every account's storage (accounts.go)
	apps   *applications.Registry
	// Fingerprint is the SHA-256 fingerprint of the server's certificate
	// ("SHA256:<hex>"), empty for plain HTTP.
	Fingerprint string
	// ha is set on a shared store (leader.go): leader or follower.
	ha *ha
}

// Start opens the store, adopts existing nodes, and starts serving.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = AddrDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	tlsCfg, fingerprint, selfSigned, err := serverTLS(cfg, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	if tlsCfg != nil && strings.HasPrefix(strings.ToLower(cfg.PublicURL), "http://") {
		ln.Close()
		return nil, fmt.Errorf("server: --public-url %s is http:// but the server serves HTTPS", cfg.PublicURL)
	}
	baseURL := cfg.PublicURL
	if baseURL == "" {
		scheme := "http://"
		if tlsCfg != nil {
			scheme = "https://"
		}
		baseURL = scheme + ln.Addr().String()
	}
	baseURL = strings.TrimRight(baseURL, "/")

	st, err := openStore(ctx, cfg)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	tlsSet := tlsSetup{cfg: tlsCfg, fingerprint: fingerprint, selfSigned: selfSigned}
	// Prometheus metrics, one registry for the process (metrics.go).
	cfg.metrics = newMetrics(cfg)
	if el, ok := st.(store.Elector); ok { // a shared store: leader or follower (leader.go)
		return startHA(ctx, cfg, ln, tlsSet, baseURL, st, el)
	}
	return startLeader(ctx, cfg, ln, tlsSet, baseURL, st)
}

// startLeader runs the control plane on the open store st, serving it on ln.
func startLeader(ctx context.Context, cfg Config, ln net.Listener, tlsSet tlsSetup, baseURL string, st store.Store) (*Server, error) {
	tlsCfg, fingerprint, selfSigned := tlsSet.cfg, tlsSet.fingerprint, tlsSet.selfSigned
	prov, err := newProvider(cfg, fingerprint)
	if err != nil {
		st.Close()
		ln.Close()
		return nil, err
	}
	blobs, err := storage.Open(ctx, storageURL(cfg))
	if err != nil {
		st.Close()
		ln.Close()
		return nil, err
	}
	closeAll := func() {
		blobs.Close()
		st.Close()
		ln.Close()
	}
	links := &storageLinks{base: baseURL + "/storage"}
	apps, err := openApplications(ctx, st, blobs, links)
	if err != nil {
		closeAll()
		return nil, err
	}
	svc, err := service.New(ctx, service.Config{
		Store:             st,
		Provider:          prov,
		Providers:         append(extraProviders(prov), slurmExtra(cfg, fingerprint, prov)...), // slurm.go
		AgentURL:          agentURLs(baseURL, cfg.PeerURLs),
		AccountURL:        func(string) string { return baseURL },
		HeartbeatInterval: cfg.HeartbeatInterval,
		NodeTimeout:       cfg.NodeTimeout,
		Storage:           links,
		Applications:      apps,
		Spot:              cfg.Spot,
		Logger:            cfg.Logger,

		AutoScaleMinInterval:  cfg.AutoScaleMinInterval,
		MetricsSampleInterval: cfg.MetricsSampleInterval,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	acct, err := ensureAccount(ctx, svc, st, cfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	links.setAccounts(svc.Accounts())
	s := &Server{cfg: cfg, ln: ln, svc: svc, links: links, blobs: blobs, apps: apps}
	s.Creds = Credentials{URL: baseURL, AccountName: acct.Name, AccountKey: acct.PrimaryKey}
	s.Fingerprint = fingerprint
	if selfSigned {
		s.Creds.ServerFingerprint = fingerprint
	}
	if err := writeCredentials(cfg.DataDir, s.Creds); err != nil {
		closeAll()
		return nil, err
	}
	handler := api.New(api.Config{Ops: serverOps{Service: svc, srv: s}, AgentHandler: svc.AgentHandler(), StorageHandler: blobs.AccountsHandler(svc.AccountKeys),
		Applications: apps, Logger: cfg.Logger, Metrics: cfg.metrics})
	// The state gauges read svc; svc reports to the histograms (metrics.go).
	cfg.metrics.Attach(svc)
	dash := ui.New(ui.Config{API: handler, Keys: svc.AccountKeys, Accounts: accountNames(svc), Secure: tlsCfg != nil, Logger: cfg.Logger}) // the dashboard at /ui
	s.http = &http.Server{Handler: dash.Wrap(handler), ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsCfg}
	s.http.RegisterOnShutdown(dash.Close) // ends live task streams (/ui/tail)
	s.close = func() error {
		dash.Close()
		err := st.Close()
		if cerr := blobs.Close(); err == nil {
			err = cerr
		}
		return err
	}
	svc.Start()
	go func() {
		serve := s.http.Serve
		if tlsCfg != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http server", "err", err)
		}
	}()
	return s, nil
}

// newProvider builds the node provider cfg.Provider names.
func newProvider(cfg Config, fingerprint string) (provider.Provider, error) {
	switch cfg.Provider {
	case "", "local":
		return local.New(local.Config{NodesDir: filepath.Join(cfg.DataDir, "nodes"), OrphanTimeout: cfg.AgentOrphanTimeout,
			ServerFingerprint: fingerprint, Logger: cfg.Logger})
	case "sim":
		return sim.New(filepath.Join(cfg.DataDir, sim.DirName))
	case "slurm":
		return newSlurmProvider(cfg, fingerprint) // slurm.go
	}
	return nil, fmt.Errorf("server: unknown node provider %q (local, sim or slurm)", cfg.Provider)
}

// ensureAccount returns the account clients use: the one named by the
// configuration (created if missing), else the first stored one, else a new
// generated one.
func ensureAccount(ctx context.Context, svc *service.Service, st store.Store, cfg Config) (store.Account, error) {
	if cfg.AccountName != "" {
		if err := service.ValidateAccountName(cfg.AccountName); err != nil {
			return store.Account{}, fmt.Errorf("account name %q: 3 to 24 lower-case letters and digits, as Azure's", cfg.AccountName)
		}
		return svc.EnsureAccount(ctx, cfg.AccountName, cfg.AccountKey)
	}
	accts, err := st.AccountList(ctx)
	if err != nil {
		return store.Account{}, err
	}
	if len(accts) > 0 {
		return accts[0], nil
	}
	return svc.EnsureAccount(ctx, generatedAccountName(), cfg.AccountKey)
}

func generatedAccountName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("kiln%x", b)
}

func writeCredentials(dir string, c Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, CredentialsFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, CredentialsFile))
}

// StorageBucket is the bucket URL of Kiln storage.
func (s *Server) StorageBucket() string { return redactURL(storageURL(s.cfg)) }

// URL is the server's base URL.
func (s *Server) URL() string { return s.Creds.URL }

// Shutdown stops serving. Local nodes keep running and are adopted by the
// next server on the same data directory.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ha != nil {
		return s.ha.shutdown(ctx)
	}
	s.svc.Close()
	err := s.http.Shutdown(ctx)
	if cerr := s.close(); err == nil {
		err = cerr
	}
	return err
}

// serverTLS is the TLS configuration cfg asks for (nil: plain HTTP), the
// fingerprint of its certificate, and whether that certificate is the
// generated self-signed one.
func serverTLS(cfg Config, addr net.Addr) (*tls.Config, string, bool, error) {
	var cert tls.Certificate
	var err error
	selfSigned := false
	switch {
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, "", false, errors.New("server: --tls-cert and --tls-key go together")
		}
		if cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, "", false, fmt.Errorf("server: load TLS certificate: %w", err)
		}
	case cfg.TLSAuto:
		var hosts []string
		if cfg.PublicURL != "" {
			hosts = append(hosts, tlspin.HostOf(cfg.PublicURL))
		}
		if h, _, err := net.SplitHostPort(addr.String()); err == nil {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
		if cert, err = tlspin.EnsureSelfSigned(cfg.DataDir, hosts); err != nil {
			return nil, "", false, fmt.Errorf("server: self-signed certificate: %w", err)
		}
		selfSigned = true
	default:
		return nil, "", false, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, "", false, errors.New("server: the TLS certificate file holds no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		tlspin.Fingerprint(cert.Certificate[0]), selfSigned, nil
}

// serverOps is the service as the API sees it, with the server's part of
// key regeneration: credentials.json follows a new primary key.
type serverOps struct {
	*service.Service
	srv *Server
}

func (o serverOps) RegenerateAccountKey(ctx context.Context, name, keyName string) (store.Account, bool, error) {
	a, persisted, err := o.Service.RegenerateAccountKey(ctx, name, keyName)
	if err != nil {
		return a, persisted, err
	}
	s := o.srv
	s.links.put(a) // storage SAS are signed with the current primary key
	s.credMu.Lock()
	defer s.credMu.Unlock()
	if strings.EqualFold(a.Name, s.Creds.AccountName) && a.PrimaryKey != s.Creds.AccountKey {
		c := s.Creds
		c.AccountKey = a.PrimaryKey
		if err := writeCredentials(s.cfg.DataDir, c); err != nil {
			s.cfg.Logger.Error("rewrite credentials after key regeneration", "err", err)
		} else {
			s.Creds = c
		}
	}
	return a, persisted, nil
}

// accountNames lists the service's accounts (the dashboard's history
// sampler).
func accountNames(svc *service.Service) func() []string {
	return func() []string {
		accts := svc.Accounts()
		out := make([]string, len(accts))
		for i, a := range accts {
			out[i] = a.Name
		}
		return out
	}
}
