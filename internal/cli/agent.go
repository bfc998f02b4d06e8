package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/agent"
	"github.com/kilnbatch/kiln/internal/tlspin"
)

func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	var logLevel, fingerprint string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the compute node agent (started by node providers, or by hand on a node)",
		Long: `Run the Kiln compute node agent. It registers with the server through the agent
protocol (docs/agent-protocol.md), runs the tasks it is assigned, and serves the
node's files to the server. The join token comes from --token or KILN_AGENT_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Token == "" {
				cfg.Token = os.Getenv("KILN_AGENT_TOKEN")
			}
			if cfg.ServerURL == "" || cfg.NodeID == "" || cfg.RootDir == "" {
				return errors.New("kiln agent needs --server, --node-id and --root-dir")
			}
			if fingerprint != "" {
				hc, err := tlspin.HTTPClient(cfg.ServerURL, fingerprint)
				if err != nil {
					return fmt.Errorf("--server-fingerprint: %w", err)
				}
				cfg.HTTPClient = hc
			}
			var level slog.Level
			_ = level.UnmarshalText([]byte(logLevel))
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// KILN_AGENT_CPUPROFILE_DIR: write a CPU profile of this agent
			// there when it exits in an orderly way (for kiln bench).
			if dir := os.Getenv("KILN_AGENT_CPUPROFILE_DIR"); dir != "" {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("agent-%d.pprof", os.Getpid())))
				if err == nil && pprof.StartCPUProfile(f) == nil {
					defer f.Close()
					defer pprof.StopCPUProfile()
				}
			}
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ServerURL, "server", os.Getenv("KILN_SERVER"), "server base URL (env KILN_SERVER)")
	f.StringVar(&cfg.PoolID, "pool", "", "pool id")
	f.StringVar(&cfg.NodeID, "node-id", "", "node id given by the provider")
	f.StringVar(&cfg.Token, "token", "", "join token (prefer KILN_AGENT_TOKEN)")
	f.StringVar(&cfg.RootDir, "root-dir", "", "node root directory (AZ_BATCH_NODE_ROOT_DIR)")
	f.StringVar(&cfg.Listen, "listen", agent.ListenDefault, "file server listen address")
	f.DurationVar(&cfg.OrphanTimeout, "orphan-timeout", 0, "exit after this long without reaching the server (0: never)")
	f.StringVar(&fingerprint, "server-fingerprint", os.Getenv("KILN_SERVER_FINGERPRINT"), "trust the server's HTTPS certificate by its SHA-256 fingerprint (SHA256:<hex>, printed by kiln server) instead of a certificate authority (env KILN_SERVER_FINGERPRINT)")
	f.StringVar(&logLevel, "log-level", "info", "log level")
	_ = time.Second
	return cmd
}
