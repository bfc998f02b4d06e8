package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/cli/output"
	"github.com/kilnbatch/kiln/internal/tlspin"
)

// CredentialsFileName is the file, inside the data directory, where
// `kiln server` records how to reach it.
const CredentialsFileName = "credentials.json"

// Environment variables read by the client commands. The AZURE_BATCH_* names
// are the ones the az CLI reads; the KILN_* names take precedence.
const (
	EnvURL              = "KILN_URL"
	EnvAccountName      = "KILN_ACCOUNT_NAME"
	EnvAccountKey       = "KILN_ACCOUNT_KEY"
	EnvFingerprint      = "KILN_SERVER_FINGERPRINT"
	EnvDataDir          = "KILN_DATA_DIR"
	EnvAzureEndpoint    = "AZURE_BATCH_ENDPOINT"
	EnvAzureAccount     = "AZURE_BATCH_ACCOUNT"
	EnvAzureAccessKey   = "AZURE_BATCH_ACCESS_KEY"
	envXDGDataHome      = "XDG_DATA_HOME"
	credentialsFileMode = 0o600
)

// Credentials is how a client reaches and authenticates to a Kiln server: the
// content of <data-dir>/credentials.json.
type Credentials struct {
	URL         string `json:"url"`
	AccountName string `json:"accountName"`
	AccountKey  string `json:"accountKey"` // base64, as Azure Batch account keys are
	// ServerFingerprint pins the server's HTTPS certificate ("SHA256:<hex>"),
	// for a self-signed one; written by `kiln server --tls`.
	ServerFingerprint string `json:"serverFingerprint,omitempty"`
	// Servers lists every server, comma-separated, when URL named several
	// (URL is then the first; servers.go); empty otherwise.
	Servers string `json:"-"`
}

// DefaultDataDir is Kiln's data directory when neither --data-dir nor
// $KILN_DATA_DIR is set: $XDG_DATA_HOME/kiln, else ~/.local/share/kiln.
func DefaultDataDir() string {
	return defaultDataDir(os.Getenv)
}

func defaultDataDir(getenv func(string) string) string {
	if d := getenv(envXDGDataHome); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kiln")
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil || home == "" {
			return filepath.Join(os.TempDir(), "kiln")
		}
	}
	return filepath.Join(home, ".local", "share", "kiln")
}

// ResolveDataDir returns the data directory to use given the --data-dir flag
// value: the flag if set, else $KILN_DATA_DIR, else DefaultDataDir().
func ResolveDataDir(flagValue string) string {
	return resolveDataDir(flagValue, os.Getenv)
}

func resolveDataDir(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if d := getenv(EnvDataDir); d != "" {
		return d
	}
	return defaultDataDir(getenv)
}

// CredentialsPath is the path of the credentials file in dataDir.
func CredentialsPath(dataDir string) string {
	return filepath.Join(dataDir, CredentialsFileName)
}

// WriteCredentials writes c to <dataDir>/credentials.json with mode 0600,
// creating dataDir (0700) if needed. The file is replaced atomically.
func WriteCredentials(dataDir string, c Credentials) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dataDir, ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(credentialsFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), CredentialsPath(dataDir)); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// ReadCredentials reads <dataDir>/credentials.json. A missing file yields an
// error that matches fs.ErrNotExist.
func ReadCredentials(dataDir string) (Credentials, error) {
	var c Credentials
	path := CredentialsPath(dataDir)
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// globalOptions holds the persistent flags shared by all client commands.
// Every AddClientCommands call gets its own, so tests can build many roots.
type globalOptions struct {
	url, accountName, accountKey, dataDir string
	fingerprint                           string
	output                                string

	getenv func(string) string
	// transport, when set, replaces the HTTP client (tests).
	transport policy.Transporter

	resolved Credentials // set by client()
}

func (o *globalOptions) addFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&o.url, "url", "", "Kiln server URL, or several comma-separated (highly available servers) (env "+EnvURL+" or "+EnvAzureEndpoint+"; default: from <data-dir>/"+CredentialsFileName+")")
	f.StringVar(&o.accountName, "account-name", "", "Batch account name (env "+EnvAccountName+" or "+EnvAzureAccount+")")
	f.StringVar(&o.accountKey, "account-key", "", "Batch account key, base64 (env "+EnvAccountKey+" or "+EnvAzureAccessKey+")")
	f.StringVar(&o.dataDir, "data-dir", "", "Kiln data directory (env "+EnvDataDir+"; default $XDG_DATA_HOME/kiln or ~/.local/share/kiln)")
	f.StringVar(&o.fingerprint, "server-fingerprint", "", "trust the server's HTTPS certificate by its SHA-256 fingerprint, SHA256:<hex> (env "+EnvFingerprint+"; default: from <data-dir>/"+CredentialsFileName+" for the same server)")
	f.StringVarP(&o.output, "output", "o", string(output.FormatDefault), "output format: table or json")
}

func (o *globalOptions) format() (output.Format, error) {
	return output.ParseFormat(o.output)
}

// credentials resolves where the server is, field by field: flags, then the
// KILN_* variables, then the az CLI's AZURE_BATCH_* variables, then the
// credentials file the server wrote into the data directory.
func (o *globalOptions) credentials() (Credentials, error) {
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	first := func(vals ...string) string {
		for _, v := range vals {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
		return ""
	}
	c := Credentials{
		URL:         first(o.url, getenv(EnvURL), getenv(EnvAzureEndpoint)),
		AccountName: first(o.accountName, getenv(EnvAccountName), getenv(EnvAzureAccount)),
		AccountKey:  first(o.accountKey, getenv(EnvAccountKey), getenv(EnvAzureAccessKey)),

		ServerFingerprint: first(o.fingerprint, getenv(EnvFingerprint)),
	}
	var fileErr error
	var path string
	if c.URL == "" || c.AccountName == "" || c.AccountKey == "" || c.ServerFingerprint == "" {
		dir := resolveDataDir(o.dataDir, getenv)
		path = CredentialsPath(dir)
		fc, err := ReadCredentials(dir)
		if err != nil {
			fileErr = err
		} else {
			// Take the file's fields only where nothing more specific was given;
			// its key belongs to its server, so with another URL use it only if
			// the URL matches.
			sameServer := c.URL == "" || sameServers(c.URL, fc.URL)
			c.URL = first(c.URL, fc.URL)
			if sameServer {
				c.AccountName = first(c.AccountName, fc.AccountName)
				c.AccountKey = first(c.AccountKey, fc.AccountKey)
				c.ServerFingerprint = first(c.ServerFingerprint, fc.ServerFingerprint)
			}
		}
	}
	if c.URL == "" {
		msg := "no Kiln server found: start one with `kiln server` or pass --url, --account-name and --account-key (or set " +
			EnvURL + ", " + EnvAccountName + ", " + EnvAccountKey + ")"
		if fileErr != nil && !errors.Is(fileErr, fs.ErrNotExist) {
			msg += "; reading " + path + ": " + fileErr.Error()
		} else if path != "" {
			msg += " (no " + path + ")"
		}
		return c, errors.New(msg)
	}
	c = withServerList(c) // one URL, or several (servers.go)
	if c.AccountName == "" {
		return c, fmt.Errorf("no account name for %s: pass --account-name or set %s", c.URL, EnvAccountName)
	}
	if c.AccountKey == "" {
		return c, fmt.Errorf("no account key for %s: pass --account-key or set %s", c.URL, EnvAccountKey)
	}
	return c, nil
}

// normalizeURL adds a scheme when missing (http for loopback hosts, https
// otherwise, as the az CLI does for AZURE_BATCH_ENDPOINT) and drops a
// trailing slash.
func normalizeURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	if strings.Contains(u, "://") {
		return u
	}
	host := u
	if i := strings.IndexAny(host, "/"); i >= 0 {
		host = host[:i]
	}
	if h := strings.ToLower(host); strings.HasPrefix(h, "localhost") || strings.HasPrefix(h, "127.") || strings.HasPrefix(h, "[::1]") {
		return "http://" + u
	}
	return "https://" + u
}

func sameURL(a, b string) bool {
	return strings.EqualFold(normalizeURL(a), normalizeURL(b))
}

// client resolves credentials and builds a Shared Key azbatch client.
func (o *globalOptions) client() (*azbatch.Client, error) {
	c, err := o.credentials()
	if err != nil {
		return nil, err
	}
	o.resolved = c
	// batchclient allows plain HTTP and sets short retry delays suited to a
	// local server, so a stopped server fails fast.
	opts := &azbatch.ClientOptions{}
	tr, err := o.httpTransport(c)
	if err != nil {
		return nil, err
	}
	if tr != nil {
		opts.Transport = tr
	}
	cl, err := batchclient.New(c.URL, c.AccountName, c.AccountKey, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.URL, err)
	}
	return cl, nil
}

// httpTransport is the HTTP client for c: the test transport if set, else
// one pinned to c.ServerFingerprint if there is one, else nil (the default).
func (o *globalOptions) httpTransport(c Credentials) (policy.Transporter, error) {
	if o.transport != nil {
		return o.transport, nil
	}
	if c.Servers != "" {
		return serversTransport(c)
	}
	if c.ServerFingerprint == "" {
		return nil, nil
	}
	hc, err := tlspin.HTTPClient(c.URL, c.ServerFingerprint)
	if err != nil {
		return nil, fmt.Errorf("--server-fingerprint: %w", err)
	}
	return hc, nil
}
