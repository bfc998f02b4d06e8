// Package provider declares where compute nodes come from. A Provider is the
// only part of Kiln that knows how a node is started or stopped: local
// processes (package local), agents joining from other machines, and later
// Slurm or Kubernetes. Everything else sees nodes only through the agent
// protocol.
package provider

import "context"

// NodeSpec is what a provider needs to bring one node up.
type NodeSpec struct {
	Account   string
	PoolID    string
	NodeID    string
	Dedicated bool
	// Token is the per-node secret the agent presents when it registers.
	Token string
	// ServerURL is where the agent reaches the server's agent protocol.
	ServerURL string
}

// Image is an operating system image a provider offers (Azure's
// "supported images").
type Image struct {
	NodeAgentSKUID string
	Publisher      string
	Offer          string
	SKU            string
	Version        string
	OSType         string // linux | windows
}

// Provider starts and stops nodes.
type Provider interface {
	// Name identifies the provider in pool documents and logs.
	Name() string
	// Start brings a node up; it returns once the start has been initiated.
	// The node reports in through the agent protocol.
	Start(ctx context.Context, n NodeSpec) error
	// Stop makes sure a node is gone (process ended, resources freed). It is
	// called after the agent was asked to shut down, and must succeed when
	// the node is already gone.
	Stop(ctx context.Context, n NodeSpec) error
	// Images lists the images the provider offers.
	Images() []Image
}
