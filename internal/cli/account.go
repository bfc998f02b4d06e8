package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// accountKeys is the answer of Kiln's account key routes
// (internal/api/account_keys.go).
type accountKeys struct {
	AccountName string `json:"accountName"`
	Primary     string `json:"primary"`
	Secondary   string `json:"secondary"`
	Persisted   *bool  `json:"persisted,omitempty"`
}

func newAccountCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage the Batch account's keys, and the server's accounts (create, list, show, delete)"}
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List or regenerate the account's primary and secondary keys (both sign requests)",
	}
	keys.AddCommand(accountKeysListCommand(o), accountKeysRegenerateCommand(o))
	cmd.AddCommand(keys)
	cmd.AddCommand(accountManageCommands(o)...) // account_manage.go
	return cmd
}

func accountKeysListCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "Show the account's primary and secondary keys", Args: cobra.NoArgs}
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var k accountKeys
		if _, _, err := m.sendJSON(ctx, http.MethodGet, "/kiln/account/keys", nil, &k); err != nil {
			return err
		}
		return o.printKeys(cmd.OutOrStdout(), k)
	})
	return cmd
}

func accountKeysRegenerateCommand(o *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "regenerate primary|secondary",
		Short: "Replace one key by a new one; the old one stops working at once",
		Long: `Replace the primary or the secondary key by a new random one. Requests signed with
the old key fail from then on; the other key keeps working, so clients can move to
it first. When the primary changes, the server rewrites <data-dir>/credentials.json,
and this command rewrites the credentials file it read, if any.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"primary", "secondary"},
	}
	cmd.RunE = o.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		name := strings.ToLower(args[0])
		if name != "primary" && name != "secondary" {
			return fmt.Errorf("key name %q: want primary or secondary", args[0])
		}
		m, err := o.mgmtClient()
		if err != nil {
			return err
		}
		var k accountKeys
		if _, _, err := m.sendJSON(ctx, http.MethodPost, "/kiln/account/keys/regenerate", map[string]string{"keyName": name}, &k); err != nil {
			return err
		}
		if name == "primary" {
			o.followPrimary(k)
		}
		if k.Persisted != nil && !*k.Persisted {
			fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: this server's store cannot record account keys; the new key lasts until the server restarts.")
		}
		return o.printKeys(cmd.OutOrStdout(), k)
	})
	return cmd
}

// followPrimary rewrites the credentials file of the data directory with the
// new primary key when it describes the same server and account.
func (o *globalOptions) followPrimary(k accountKeys) {
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dir := resolveDataDir(o.dataDir, getenv)
	fc, err := ReadCredentials(dir)
	if err != nil || !sameURL(fc.URL, o.resolved.URL) || !strings.EqualFold(fc.AccountName, k.AccountName) || fc.AccountKey == k.Primary {
		return
	}
	fc.AccountKey = k.Primary
	_ = WriteCredentials(dir, fc)
}

func (o *globalOptions) printKeys(w io.Writer, k accountKeys) error {
	return o.printResult(w, k, func(w io.Writer) error {
		return output.Details(w,
			[2]string{"Account", k.AccountName},
			[2]string{"Primary", k.Primary},
			[2]string{"Secondary", k.Secondary},
		)
	})
}
