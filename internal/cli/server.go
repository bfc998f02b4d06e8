package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/server"
)

func newServerCommand() *cobra.Command {
	var (
		addr, publicURL, logLevel string
		providerName, pprofAddr   string
		storageURL                string
		storeURL                  string
		peerURLs                  string
		tlsCert, tlsKey, tlsMode  string
		heartbeat, nodeTimeout    time.Duration
		orphanTimeout             time.Duration
		autoScaleMin, sampleEvery time.Duration
		spot                      spotFlags
		metricsOn                 bool
		metricsToken              string
		slurmF                    slurmFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Kiln control plane (embedded default: SQLite state, local nodes)",
		Long: `Run the Kiln control plane.

With no flags it listens on 127.0.0.1:8080, keeps its state in SQLite in the data
directory ($KILN_DATA_DIR, default ~/.local/share/kiln), and runs compute nodes as
local 'kiln agent' processes. On first start it creates an account (name and key
from KILN_ACCOUNT_NAME / KILN_ACCOUNT_KEY, or generated), prints it, and writes
<data-dir>/credentials.json, which the other kiln commands read.

It serves plain HTTP unless given --tls-cert and --tls-key (HTTPS with that
certificate) or --tls (HTTPS with a self-signed certificate generated into the
data directory on first start and reused after; its SHA-256 fingerprint is
printed and written to credentials.json, where clients find it to pin it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dataFlag, _ := cmd.Flags().GetString("data-dir")
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg := server.Config{
				Addr:               addr,
				DataDir:            ResolveDataDir(dataFlag),
				AccountName:        os.Getenv(EnvAccountName),
				AccountKey:         os.Getenv(EnvAccountKey),
				PublicURL:          publicURL,
				HeartbeatInterval:  heartbeat,
				NodeTimeout:        nodeTimeout,
				AgentOrphanTimeout: orphanTimeout,
				Provider:           providerName,
				Storage:            storageURL,
				Store:              storeURL,
				TLSCert:            tlsCert,
				TLSKey:             tlsKey,
				PeerURLs:           splitList(peerURLs),
				MetricsOff:         !metricsOn,
				MetricsToken:       metricsToken,
				Logger:             logger,

				AutoScaleMinInterval:  autoScaleMin,
				MetricsSampleInterval: sampleEvery,
			}
			switch tlsMode {
			case "", "off", "false":
			case "auto", "true", "on":
				cfg.TLSAuto = true
			default:
				return fmt.Errorf("--tls: %q is not auto or off", tlsMode)
			}
			spotCfg, err := spot.config()
			if err != nil {
				return err
			}
			cfg.Spot = spotCfg
			if cfg.Slurm, err = slurmF.config(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				stopPprof, err := servePprof(pprofAddr, logger)
				if err != nil {
					sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = srv.Shutdown(sctx)
					return err
				}
				defer stopPprof()
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Kiln server listening on %s\n", srv.URL())
			if role := srv.Role(); role != server.RoleLeader || len(cfg.PeerURLs) > 0 {
				fmt.Fprintf(out, "  role:         %s (high availability: see GET /healthz/leader)\n", role)
			}
			fmt.Fprintf(out, "  account name: %s\n", srv.Creds.AccountName)
			fmt.Fprintf(out, "  account key:  %s\n", srv.Creds.AccountKey)
			if srv.Fingerprint != "" {
				fmt.Fprintf(out, "  certificate:  %s\n", srv.Fingerprint)
			}
			fmt.Fprintf(out, "  data dir:     %s\n", cfg.DataDir)
			fmt.Fprintf(out, "  storage:      %s/storage/%s (bucket %s)\n", srv.URL(), srv.Creds.AccountName, srv.StorageBucket())
			fmt.Fprintf(out, "  dashboard:    %s/ui/ (sign in with the account name and key; docs/dashboard.md)\n", srv.URL())
			fmt.Fprintf(out, "Credentials written to %s; other kiln commands find them there.\n", cfg.DataDir+"/"+server.CredentialsFile)
			<-ctx.Done()
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", envOr("KILN_ADDR", server.AddrDefault), "listen address HOST:PORT (env KILN_ADDR)")
	f.StringVar(&publicURL, "public-url", os.Getenv("KILN_PUBLIC_URL"), "URL clients and agents use to reach this server, if not http://<addr> (https://<addr> with TLS) (env KILN_PUBLIC_URL)")
	f.StringVar(&tlsCert, "tls-cert", os.Getenv("KILN_TLS_CERT"), "serve HTTPS with this PEM certificate (chain) file; needs --tls-key (env KILN_TLS_CERT)")
	f.StringVar(&tlsKey, "tls-key", os.Getenv("KILN_TLS_KEY"), "PEM private key of --tls-cert (env KILN_TLS_KEY)")
	f.StringVar(&tlsMode, "tls", envOr("KILN_TLS", "off"), "off: plain HTTP; auto: HTTPS with a self-signed certificate generated into the data directory on first start and reused (its fingerprint is printed and written to credentials.json); ignored with --tls-cert")
	f.Lookup("tls").NoOptDefVal = "auto"
	f.StringVar(&logLevel, "log-level", envOr("KILN_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	f.DurationVar(&heartbeat, "heartbeat-interval", 0, "longest wait of an agent's long poll (default 10s)")
	f.DurationVar(&nodeTimeout, "node-timeout", 0, "silence after which a node is marked unusable and its tasks requeued (default 45s)")
	f.DurationVar(&orphanTimeout, "agent-orphan-timeout", 0, "how long local agents keep running while the server is unreachable (default 10m)")
	f.StringVar(&providerName, "provider", envOr("KILN_PROVIDER", "local"), "node provider: local (kiln agent processes), slurm (one Slurm job per node, see --slurm-*) or sim (spec files in <data-dir>/sim-nodes for simulated agents, see kiln bench)")
	f.StringVar(&storeURL, "store", os.Getenv("KILN_STORE"), "where the record is kept: postgres://user@host/db (PostgreSQL) or a SQLite file path (default <data-dir>/kiln.db; env KILN_STORE)")
	f.StringVar(&peerURLs, "peer-urls", os.Getenv("KILN_PEER_URLS"), "high availability: comma-separated URLs of the other kiln servers on the same PostgreSQL --store; agents this server starts fail over to them (env KILN_PEER_URLS)")
	f.StringVar(&storageURL, "storage", os.Getenv("KILN_STORAGE"), "bucket of Kiln storage: file:///dir, s3://bucket?endpoint=...&use_path_style=true (any S3-compatible server) or azblob://container (default file://<data-dir>/storage; env KILN_STORAGE)")
	f.DurationVar(&autoScaleMin, "autoscale-min-interval", 0, "shortest autoScaleEvaluationInterval accepted, for development and tests (default 5m, Azure's minimum)")
	f.DurationVar(&sampleEvery, "metrics-sample-interval", 0, "how often pools are sampled for autoscale formulas, for development and tests (default 30s, as Azure)")
	f.BoolVar(&metricsOn, "metrics", envOr("KILN_METRICS", "true") != "false", "serve Prometheus metrics at GET /metrics on the server's address, see docs/metrics.md (env KILN_METRICS)")
	f.StringVar(&metricsToken, "metrics-token", os.Getenv("KILN_METRICS_TOKEN"), "bearer token /metrics requires (Authorization: Bearer <token>); default none: /metrics is open, like most Prometheus targets (env KILN_METRICS_TOKEN)")
	f.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this separate address HOST:PORT (default off)")
	spot.register(f)
	slurmF.register(f)
	return cmd
}

// servePprof serves the runtime profiles of net/http/pprof on their own
// listener, apart from the API, and returns a function that stops it.
func servePprof(addr string, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = hs.Close() }, nil
}
