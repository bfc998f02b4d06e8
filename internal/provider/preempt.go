package provider

import "context"

// Preempter is implemented by providers that can evict a node the way Azure
// evicts a Spot/low-priority VM: at once, without the agent's orderly
// shutdown, its processes killed and its local data lost. The service uses
// it to preempt low-priority nodes; a provider without it is asked to Stop
// the node instead.
type Preempter interface {
	// Preempt evicts a node. It must succeed when the node is already gone.
	// The same node id may be started again afterwards (Azure keeps the
	// ids of preempted nodes it replaces).
	Preempt(ctx context.Context, n NodeSpec) error
}
