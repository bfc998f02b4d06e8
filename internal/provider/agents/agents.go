// Package agents is the node provider of bring-your-own nodes: nothing is
// started or stopped. Agents run by hand on other machines
// (`kiln agent --server URL --pool POOL --token TOKEN`) join a pool whose
// metadata kiln.provider is "agents" with the pool's join token, and the
// service admits them as nodes up to the pool's targets (see
// docs/remote-agents.md). The service never asks this provider for a node:
// Start and Stop exist only to satisfy provider.Provider.
package agents

import (
	"context"

	"github.com/kilnbatch/kiln/internal/provider"
)

// Name is the provider's name, the value of pool metadata kiln.provider.
const Name = "agents"

// Provider is the agents provider.
type Provider struct{}

// New returns the agents provider.
func New() *Provider { return &Provider{} }

func (*Provider) Name() string { return Name }

// Start does nothing: agents come to the server.
func (*Provider) Start(context.Context, provider.NodeSpec) error { return nil }

// Stop does nothing: a removed node's agent was told to shut down (a joined
// agent then waits as standby); the machine is not Kiln's to stop.
func (*Provider) Stop(context.Context, provider.NodeSpec) error { return nil }

// Images lists the image joined nodes report: whatever their machine runs.
func (*Provider) Images() []provider.Image {
	return []provider.Image{{
		NodeAgentSKUID: "batch.node.kiln.agents",
		Publisher:      "kiln",
		Offer:          "agents",
		SKU:            "byo",
		Version:        "latest",
		OSType:         "linux",
	}}
}
