package provider

import "context"

// NodeEvent is something a provider learned about one of its nodes on its
// own, outside the agent protocol: the infrastructure under the node ended
// it (a Slurm job preempted, failed, cancelled by an administrator, ...).
type NodeEvent struct {
	// NodeID is the Kiln node the event is about.
	NodeID string
	// Preempted: the node was evicted the way a Spot VM is (the resource
	// manager took it back and may give it again later); the service marks
	// it preempted and starts it again later. Otherwise the node is broken
	// for good: the service marks it unusable.
	Preempted bool
	// Code and Reason become the node's error (Azure's node errors); Code
	// defaults to "NodeFailed" for unusable nodes.
	Code, Reason string
	// Uncertain: the provider lost sight of the node (its job vanished)
	// rather than saw it end; the service acts only when the node's agent
	// is silent too.
	Uncertain bool
	// Waiting: nothing ended; the node's resource is not there yet but is
	// coming (a Slurm job waiting in the queue). The service keeps waiting
	// for the node's agent instead of timing its start out.
	Waiting bool
}

// Watcher is implemented by providers that report on their nodes. The
// service calls Watch once, at start, in its own goroutine: Watch calls emit
// for every event until ctx ends, and then returns. Events about nodes the
// service does not know (any more) are ignored.
type Watcher interface {
	Watch(ctx context.Context, emit func(NodeEvent))
}
