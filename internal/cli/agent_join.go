package cli

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/agent"
)

// Defaults of `kiln agent` when it joins a pool with a join token
// (docs/remote-agents.md).
const (
	// rootDirRoot is the node root directory of an agent run as root.
	rootDirRoot = "/var/lib/kiln-agent"
	// rootDirUser is the node root directory of other users, under $HOME.
	rootDirUser        = ".kiln-agent"
	rootDirDefaultHelp = rootDirRoot + " as root, else ~/" + rootDirUser
	// joinListenDefault: the file server listens on every interface and
	// reports the address the node reaches the server from; requests to it
	// are signed with the node's secret.
	joinListenDefault = "0.0.0.0:0"
)

// joinDefaults checks and completes the configuration of a joining agent.
func joinDefaults(cmd *cobra.Command, cfg *agent.Config) error {
	if cfg.PoolID == "" || cfg.Token == "" {
		return errors.New("kiln agent needs --pool and --token (or KILN_AGENT_TOKEN) to join a pool: `kiln pool join-token POOL` prints them; agents started by a node provider get --node-id")
	}
	if cfg.RootDir == "" {
		if os.Geteuid() == 0 {
			cfg.RootDir = rootDirRoot
		} else {
			home, err := os.UserHomeDir()
			if err != nil {
				return errors.New("kiln agent: no home directory for the default root directory; pass --root-dir")
			}
			cfg.RootDir = filepath.Join(home, rootDirUser)
		}
	}
	if !cmd.Flags().Changed("listen") {
		cfg.Listen = joinListenDefault
	}
	return nil
}
