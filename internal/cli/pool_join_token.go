package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// poolJoinToken is the answer of Kiln's join token routes
// (internal/api/join_tokens.go), with the agent command line to run.
type poolJoinToken struct {
	PoolID       string   `json:"poolId"`
	Token        string   `json:"token"`
	AgentURL     string   `json:"agentUrl"`
	RemovedNodes []string `json:"removedNodes,omitempty"`
	// Command is the `kiln agent` command line that joins the pool.
	Command string `json:"command"`
}

func newPoolJoinTokenCommand(o *globalOptions) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "join-token POOL",
		Short: "Show a pool's join token and the kiln agent command that joins the pool from another machine",
		Long: `Show the join token of a pool whose node provider is "agents" (created with
--metadata kiln.provider=agents), creating it on first use, and the exact
kiln agent command line to run on a machine that should become a node of the pool.

With --rotate the pool gets a new token and the old one is revoked: the nodes that
joined with it leave the pool (their tasks are requeued) and their agents, refused,
exit. See docs/remote-agents.md.`,
		Example: "  kiln pool join-token p1\n  kiln pool join-token p1 --rotate",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token by a new one and revoke the old one (its nodes leave the pool)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		method, path := http.MethodGet, "/kiln/pools/"+url.PathEscape(args[0])+"/joinToken"
		if rotate {
			method, path = http.MethodPost, path+"/rotate"
		}
		var t poolJoinToken
		if _, _, err := m.sendJSON(ctx, method, path, nil, &t); err != nil {
			return err
		}
		if t.AgentURL == "" {
			t.AgentURL = o.resolved.URL
		}
		t.Command = agentJoinCommand(t, o.resolved.ServerFingerprint)
		w := cmd.OutOrStdout()
		err = o.printResult(w, t, func(w io.Writer) error {
			rows := [][2]string{{"Pool", t.PoolID}, {"Token", t.Token}, {"Server", t.AgentURL}}
			if rotate {
				removed := strings.Join(t.RemovedNodes, ", ")
				if removed == "" {
					removed = "(none)"
				}
				rows = append(rows, [2]string{"Removed nodes", removed})
			}
			if err := output.Details(w, rows...); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "\nRun on each machine that should join the pool:\n\n  %s\n", t.Command)
			return err
		})
		if err == nil && loopbackURL(t.AgentURL) {
			fmt.Fprintf(cmd.ErrOrStderr(), "NOTE: the server's URL %s is a loopback address, which other machines cannot reach: start kiln server with --addr 0.0.0.0:PORT --public-url https://HOST:PORT.\n", t.AgentURL)
		}
		return err
	})
	return cmd
}

// agentJoinCommand is the command line that joins the pool.
func agentJoinCommand(t poolJoinToken, fingerprint string) string {
	parts := []string{"kiln", "agent", "--server", t.AgentURL, "--pool", t.PoolID, "--token", t.Token}
	if fingerprint != "" {
		parts = append(parts, "--server-fingerprint", fingerprint)
	}
	for i, p := range parts {
		if strings.ContainsAny(p, " \t'\"$`\\&;|<>()*?[]!#~") {
			parts[i] = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

// loopbackURL reports whether every URL of a (comma-separated) list names a
// loopback host.
func loopbackURL(list string) bool {
	found := false
	for _, s := range strings.Split(list, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Hostname() == "" {
			return false
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); !(h == "localhost" || ip != nil && ip.IsLoopback()) {
			return false
		}
		found = true
	}
	return found
}

// addMetadata sets the NAME=VALUE items of `kiln pool create --metadata` in
// md, replacing items of the same name.
func addMetadata(md *[]azbatch.MetadataItem, items []string) error {
	for _, it := range items {
		name, value, ok := strings.Cut(it, "=")
		if !ok || name == "" {
			return fmt.Errorf("--metadata %q: want NAME=VALUE", it)
		}
		replaced := false
		for i := range *md {
			if (*md)[i].Name != nil && *(*md)[i].Name == name {
				(*md)[i].Value = ptr(value)
				replaced = true
			}
		}
		if !replaced {
			*md = append(*md, azbatch.MetadataItem{Name: ptr(name), Value: ptr(value)})
		}
	}
	return nil
}
