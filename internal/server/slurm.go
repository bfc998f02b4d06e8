package server

import (
	"time"

	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/provider/slurm"
)

// SlurmConfig configures the Slurm provider (docs/slurm.md): nodes are
// Slurm batch jobs running `kiln agent`.
type SlurmConfig struct {
	// Enabled offers the provider to pools (metadata kiln.provider=slurm)
	// even when it is not the server's default provider.
	Enabled bool
	// Partition, SbatchArgs, AgentBinary, RootDir and AgentListen: see
	// slurm.Config.
	Partition  string
	SbatchArgs []string
	// LowPrioritySbatchArgs are added for Spot/low-priority nodes.
	LowPrioritySbatchArgs []string
	AgentBinary           string
	RootDir               string
	AgentListen           string
	// PollInterval is how often the job states are read (squeue).
	PollInterval time.Duration
}

// newSlurmProvider builds the Slurm provider of the configuration.
func newSlurmProvider(cfg Config, fingerprint string) (provider.Provider, error) {
	p, err := slurm.New(slurm.Config{
		Partition:             cfg.Slurm.Partition,
		SbatchArgs:            cfg.Slurm.SbatchArgs,
		LowPrioritySbatchArgs: cfg.Slurm.LowPrioritySbatchArgs,
		AgentBinary:           cfg.Slurm.AgentBinary,
		RootDir:               cfg.Slurm.RootDir,
		AgentListen:           cfg.Slurm.AgentListen,
		OrphanTimeout:         cfg.AgentOrphanTimeout,
		ServerFingerprint:     fingerprint,
		PollInterval:          cfg.Slurm.PollInterval,
		Logger:                cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// slurmExtra is the Slurm provider pools may pick with metadata
// kiln.provider=slurm when Slurm is enabled (--slurm) but is not the
// default provider; none otherwise. A Slurm provider that cannot be built
// (no sbatch here) is logged and left out, so such pools are refused.
func slurmExtra(cfg Config, fingerprint string, def provider.Provider) []provider.Provider {
	if !cfg.Slurm.Enabled || def != nil && def.Name() == "slurm" {
		return nil
	}
	p, err := newSlurmProvider(cfg, fingerprint)
	if err != nil {
		cfg.Logger.Error("slurm provider not available", "err", err)
		return nil
	}
	return []provider.Provider{p}
}
