package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// newNodePreemptCommand preempts Spot/low-priority nodes on demand through
// Kiln's own route POST /kiln/pools/{poolId}/preempt (Azure preempts them
// when it needs capacity back and has no such operation).
func newNodePreemptCommand(o *globalOptions) *cobra.Command {
	var (
		poolID  string
		nodeIDs []string
		count   int
	)
	cmd := &cobra.Command{
		Use:   "preempt [NODE_ID...]",
		Short: "Preempt low-priority nodes, as Azure evicts Spot VMs (Kiln only)",
		Long: `Preempt Spot/low-priority nodes of a pool, as Azure does when it takes the capacity
back: each node's agent and task processes are killed and its local data is lost,
the node's state becomes preempted, its running tasks are requeued (requeueCount + 1)
to run elsewhere, and after the server's --spot-replace-delay the node is replaced
under the same id (creating, starting, start task again).

Name the nodes (arguments or --node-id), or give --count to let the server pick
that many running low-priority nodes at random (default one).`,
	}
	cmd.Flags().StringVar(&poolID, "pool-id", "", "pool ID (required)")
	cmd.Flags().StringSliceVar(&nodeIDs, "node-id", nil, "node ID (repeatable)")
	cmd.Flags().IntVar(&count, "count", 0, "number of running low-priority nodes to preempt, chosen by the server (default 1 when no node is named)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if poolID == "" {
			return fmt.Errorf("--pool-id is required")
		}
		ids := append(append([]string{}, nodeIDs...), args...)
		if len(ids) > 0 && count > 0 {
			return fmt.Errorf("give node IDs or --count, not both")
		}
		if count < 0 {
			return fmt.Errorf("--count must not be negative")
		}
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var out struct {
			Preempted []string `json:"preempted"`
		}
		body := struct {
			NodeIDs []string `json:"nodeIds,omitempty"`
			Count   int      `json:"count,omitempty"`
		}{ids, count}
		if _, _, err := m.sendJSON(ctx, http.MethodPost, "/kiln/pools/"+url.PathEscape(poolID)+"/preempt", body, &out); err != nil {
			return err
		}
		if out.Preempted == nil {
			out.Preempted = []string{}
		}
		return o.printResult(cmd.OutOrStdout(), out, func(w io.Writer) error {
			if len(out.Preempted) == 0 {
				_, err := fmt.Fprintf(w, "No running low-priority node to preempt in pool %s.\n", poolID)
				return err
			}
			for _, id := range out.Preempted {
				if _, err := fmt.Fprintf(w, "Preempted node %s in pool %s.\n", id, poolID); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return cmd
}
