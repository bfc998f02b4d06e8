package cli

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kilnbatch/kiln/internal/server"
)

// slurmFlags are the `kiln server` flags of the Slurm provider
// (docs/slurm.md).
type slurmFlags struct {
	enabled                         bool
	partition, sbatchArgs, lowArgs  string
	agentBinary, rootDir, agentAddr string
	poll                            time.Duration
}

func (f *slurmFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.enabled, "slurm", os.Getenv("KILN_SLURM") != "", "offer the slurm provider to pools with metadata kiln.provider=slurm without making it the default (--provider slurm makes it the default) (env KILN_SLURM)")
	fs.StringVar(&f.partition, "slurm-partition", os.Getenv("KILN_SLURM_PARTITION"), "Slurm partition of the nodes' jobs (default: the cluster's default partition) (env KILN_SLURM_PARTITION)")
	fs.StringVar(&f.sbatchArgs, "slurm-sbatch-args", os.Getenv("KILN_SLURM_SBATCH_ARGS"), "more sbatch arguments for every node's job, separated by spaces, e.g. \"--time=1-0 --cpus-per-task=8 --mem=16G\" (env KILN_SLURM_SBATCH_ARGS)")
	fs.StringVar(&f.lowArgs, "slurm-low-priority-sbatch-args", os.Getenv("KILN_SLURM_LOW_PRIORITY_SBATCH_ARGS"), "more sbatch arguments for the jobs of Spot/low-priority nodes, after --slurm-sbatch-args (the last of a repeated option wins), e.g. \"--partition=scavenger --qos=preemptible\" (env KILN_SLURM_LOW_PRIORITY_SBATCH_ARGS)")
	fs.StringVar(&f.agentBinary, "slurm-agent-binary", os.Getenv("KILN_SLURM_AGENT_BINARY"), "path of the kiln binary on the Slurm nodes (default: this server's own executable, on a shared file system) (env KILN_SLURM_AGENT_BINARY)")
	fs.StringVar(&f.rootDir, "slurm-root-dir", os.Getenv("KILN_SLURM_ROOT_DIR"), "directory on the Slurm nodes for the node root directories <dir>/<node id> (default /tmp/kiln-slurm) (env KILN_SLURM_ROOT_DIR)")
	fs.StringVar(&f.agentAddr, "slurm-agent-listen", os.Getenv("KILN_SLURM_AGENT_LISTEN"), "file server address of agents on the Slurm nodes; the server fetches task files there (default 0.0.0.0:0) (env KILN_SLURM_AGENT_LISTEN)")
	fs.DurationVar(&f.poll, "slurm-poll-interval", 0, "how often the nodes' job states are read with squeue (default 5s)")
}

// config is the server's Slurm configuration. With --slurm, the Slurm
// commands must be there (--provider slurm checks it when the provider is
// built).
func (f *slurmFlags) config() (server.SlurmConfig, error) {
	if f.enabled {
		if _, err := exec.LookPath("sbatch"); err != nil {
			return server.SlurmConfig{}, fmt.Errorf("--slurm: sbatch not found in PATH (install the Slurm client commands, e.g. apt-get install slurm-client): %w", err)
		}
	}
	return server.SlurmConfig{
		Enabled:               f.enabled,
		Partition:             f.partition,
		SbatchArgs:            strings.Fields(f.sbatchArgs),
		LowPrioritySbatchArgs: strings.Fields(f.lowArgs),
		AgentBinary:           f.agentBinary,
		RootDir:               f.rootDir,
		AgentListen:           f.agentAddr,
		PollInterval:          f.poll,
	}, nil
}
