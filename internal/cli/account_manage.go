package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// `kiln account create|list|show|delete`: Kiln's account management routes
// (internal/api/accounts.go), allowed to the server's admin account only
// (the one in the server's credentials.json).

// accountInfo is an account as /kiln/accounts answers it.
type accountInfo struct {
	AccountName  string     `json:"accountName"`
	Primary      string     `json:"primary,omitempty"`
	Secondary    string     `json:"secondary,omitempty"`
	CreationTime *time.Time `json:"creationTime,omitempty"`
	Admin        bool       `json:"admin"`
}

// accountManageCommands are added to `kiln account`.
func accountManageCommands(o *globalOptions) []*cobra.Command {
	return []*cobra.Command{accountCreateCommand(o), accountListCommand(o), accountShowCommand(o), accountDeleteCommand(o)}
}

func accountPath(name string) string { return "/kiln/accounts/" + url.PathEscape(name) }

func accountCreateCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account with its own keys, pools, jobs and storage (admin account only)",
		Long: `Create an account on the server. Its name follows Azure's rule: 3 to 24 lower-case
letters and digits. The answer shows its primary and secondary keys; give them to the
account's users (KILN_ACCOUNT_NAME and KILN_ACCOUNT_KEY, or --account-name/--account-key).
Only the server's admin account (the one in the server's credentials.json) may do this.`,
		Example: "  kiln account create team1\n  kiln account create team2 --key \"$(openssl rand -base64 64 | tr -d '\\n')\"",
		Args:    cobra.ExactArgs(1),
	}
	var key string
	cmd.Flags().StringVar(&key, "key", "", "the primary key, base64 (default: generated)")
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var a accountInfo
		if _, _, err := m.sendJSON(ctx, http.MethodPost, "/kiln/accounts", map[string]string{"name": args[0], "key": key}, &a); err != nil {
			return err
		}
		return o.printAccount(cmd.OutOrStdout(), a)
	})
	return cmd
}

func accountListCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the server's accounts (admin account only)", Args: cobra.NoArgs}
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var list struct {
			Value []accountInfo `json:"value"`
		}
		if _, _, err := m.sendJSON(ctx, http.MethodGet, "/kiln/accounts", nil, &list); err != nil {
			return err
		}
		return o.printResult(cmd.OutOrStdout(), list.Value, func(w io.Writer) error {
			t := output.NewTable(w, "NAME", "ADMIN", "CREATED")
			for _, a := range list.Value {
				t.Row(a.AccountName, strconv.FormatBool(a.Admin), output.Time(a.CreationTime))
			}
			return t.Flush()
		})
	})
	return cmd
}

func accountShowCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "show NAME", Short: "Show an account with its keys (admin account only)", Args: cobra.ExactArgs(1)}
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var a accountInfo
		if _, _, err := m.sendJSON(ctx, http.MethodGet, accountPath(args[0]), nil, &a); err != nil {
			return err
		}
		return o.printAccount(cmd.OutOrStdout(), a)
	})
	return cmd
}

func accountDeleteCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an account and its storage (admin account only)",
		Long: `Delete an account: its keys stop working at once and its storage containers and
application packages are deleted. An account that still has pools, jobs, job schedules
or certificates is refused (AccountNotEmpty): delete those first. The admin account
cannot be deleted.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		if _, _, err := m.sendJSON(ctx, http.MethodDelete, accountPath(args[0]), nil, nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted account %s\n", args[0])
		return err
	})
	return cmd
}

func (o *globalOptions) printAccount(w io.Writer, a accountInfo) error {
	return o.printResult(w, a, func(w io.Writer) error {
		return output.Details(w,
			[2]string{"Account", a.AccountName},
			[2]string{"Admin", strconv.FormatBool(a.Admin)},
			[2]string{"Created", output.Time(a.CreationTime)},
			[2]string{"Primary", a.Primary},
			[2]string{"Secondary", a.Secondary},
		)
	})
}
