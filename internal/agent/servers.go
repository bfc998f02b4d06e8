package agent

import (
	"log/slog"
	"net/http"

	"github.com/kilnbatch/kiln/internal/failover"
)

// Several servers (high availability, docs/high-availability.md): the
// agent's --server may list several server URLs, comma-separated. The agent
// talks to one at a time through a failover.Transport: when the current
// server cannot be reached it moves to the next, and sticks to the one that
// answers. A follower forwards the agent's calls to the leader, so any
// server that is up will do.

// ServerHTTPClient is the agent's HTTP client for servers, a comma-separated
// list of server URLs (one URL is fine). With a fingerprint, the TLS
// certificate of every listed server is pinned to it; other hosts (resource
// files, output file destinations) are verified as usual.
func ServerHTTPClient(servers, fingerprint string) (*http.Client, error) {
	return failover.PinnedClient(servers, fingerprint)
}

// withServers resolves a server list in cfg.ServerURL: requests are built
// against the first URL, and the client (a failover one, unless the caller
// gave its own) takes them to whichever server is up.
func withServers(cfg Config) (Config, error) {
	if !failover.IsList(cfg.ServerURL) {
		return cfg, nil
	}
	if cfg.HTTPClient == nil {
		hc, err := ServerHTTPClient(cfg.ServerURL, "")
		if err != nil {
			return cfg, err
		}
		cfg.HTTPClient = hc
	}
	if ft, ok := cfg.HTTPClient.Transport.(*failover.Transport); ok && ft.OnSwitch == nil {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		ft.OnSwitch = func(from, to string) {
			log.Warn("server unreachable: switching to the next one", "from", from, "to", to, "node", cfg.NodeID)
		}
	}
	cfg.ServerURL = failover.First(cfg.ServerURL)
	return cfg, nil
}
