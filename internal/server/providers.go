package server

import (
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/provider/agents"
)

// extraProviders are the node providers a pool may pick besides the
// default one (newProvider, --provider) with its metadata kiln.provider
// (service/providers.go): "agents", bring-your-own nodes joining with the
// pool's join token (docs/remote-agents.md), always. Register more here.
func extraProviders(def provider.Provider) []provider.Provider {
	var out []provider.Provider
	if def == nil || def.Name() != agents.Name {
		out = append(out, agents.New())
	}
	return out
}
