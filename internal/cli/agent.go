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
	"github.com/kilnbatch/kiln/internal/failover"
)

func newAgentCommand() *cobra.Command {
	var cfg agent.Config
	var logLevel, fingerprint string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the compute node agent (started by node providers, or by hand on a node)",
		Long: `Run the Kiln compute node agent. It registers with the server through the agent
protocol (docs/agent-protocol.md), runs the tasks it is assigned, and serves the
node's files to the server. The token comes from --token or KILN_AGENT_TOKEN.

On any machine, join a pool whose metadata kiln.provider is "agents" with the pool's
join token (kiln pool join-token POOL prints the command line):

  kiln agent --server https://HOST:PORT --pool POOL --token TOKEN

The agent waits as standby while the pool has the nodes its target asks for, and
goes back to standby when its node leaves the pool (docs/remote-agents.md).
Node providers start agents with --node-id and a per-node token instead.`,
		Example: "  kiln agent --server https://10.0.0.5:8080 --pool p1 --token kjt_... --server-fingerprint SHA256:...",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Token == "" {
				cfg.Token = os.Getenv("KILN_AGENT_TOKEN")
			}
			join := cfg.NodeID == "" // a pool join token (agent_join.go)
			if join {
				if err := joinDefaults(cmd, &cfg); err != nil {
					return err
				}
			}
			if cfg.ServerURL == "" || cfg.RootDir == "" || !join && cfg.NodeID == "" {
				return errors.New("kiln agent needs --server and --root-dir, and --pool with --token (or --node-id)")
			}
			if fingerprint != "" || failover.IsList(cfg.ServerURL) {
				hc, err := agent.ServerHTTPClient(cfg.ServerURL, fingerprint)
				if err != nil {
					return fmt.Errorf("--server, --server-fingerprint: %w", err)
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
			if join {
				return agent.RunJoin(ctx, cfg)
			}
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ServerURL, "server", os.Getenv("KILN_SERVER"), "server base URL, or several comma-separated (highly available servers: the agent fails over between them) (env KILN_SERVER)")
	f.StringVar(&cfg.PoolID, "pool", "", "pool id")
	f.StringVar(&cfg.NodeID, "node-id", "", "node id given by the provider (without it, --token is the pool's join token)")
	f.StringVar(&cfg.Token, "token", "", "the pool's join token, or the per-node token with --node-id (env KILN_AGENT_TOKEN)")
	f.StringVar(&cfg.RootDir, "root-dir", "", "node root directory (AZ_BATCH_NODE_ROOT_DIR; joining a pool: default "+rootDirDefaultHelp+")")
	f.BoolVar(&cfg.LowPriority, "low-priority", false, "join the pool as a low-priority node (counts against targetLowPriorityNodes)")
	f.StringVar(&cfg.Listen, "listen", agent.ListenDefault, "file server listen address (joining a pool: default "+joinListenDefault+", so the server reaches the node's files)")
	f.DurationVar(&cfg.OrphanTimeout, "orphan-timeout", 0, "exit after this long without reaching the server (0: never)")
	f.StringVar(&fingerprint, "server-fingerprint", os.Getenv("KILN_SERVER_FINGERPRINT"), "trust the server's HTTPS certificate by its SHA-256 fingerprint (SHA256:<hex>, printed by kiln server) instead of a certificate authority (env KILN_SERVER_FINGERPRINT)")
	f.StringVar(&logLevel, "log-level", "info", "log level")
	_ = time.Second
	return cmd
}
