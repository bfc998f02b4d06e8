package cli

// `kiln storage`: the server's blob storage, shaped like `az storage`. The
// server serves each account's at <server URL>/storage/<account> speaking the Azure Blob REST
// protocol, so the commands use the official azblob SDK, authenticated by an
// account SAS signed locally with the Kiln account key.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/progress"
)

const (
	// EnvStorageURL overrides the storage base URL (tests point it at Azurite).
	EnvStorageURL = "KILN_STORAGE_URL"
	// storagePath is where the server serves its storage, below its URL.
	storagePath = "/storage"
	// storageSASLifetime is how long each account SAS the CLI signs for
	// itself is valid; storageSASRenew is how soon a new one replaces it, so
	// that a transfer lasting hours never sends an expired token.
	storageSASLifetime = time.Hour
	storageSASRenew    = 10 * time.Minute
)

// storageOptions holds what the storage commands share beyond the global
// flags.
type storageOptions struct {
	g          *globalOptions
	storageURL string // hidden --storage-url
	// isTerminal decides whether transfers draw a progress bar on stderr
	// (tests force it).
	isTerminal func(io.Writer) bool
}

// newStorageCommand is `kiln storage`.
func newStorageCommand(o *globalOptions) *cobra.Command {
	return (&storageOptions{g: o, isTerminal: progress.IsTerminal}).command()
}

func (s *storageOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Manage the Kiln server's blob storage: containers, uploads, downloads, signed URLs",
		Long: "Kiln serves Azure-compatible blob storage, each account's own at <server URL>" + storagePath + "/<account>.\n" +
			"These commands work in the storage of the account they authenticate as: they sign their\n" +
			"requests with an account SAS made from the account key, and `kiln storage url`\n" +
			"prints signed URLs for resourceFiles (storageContainerUrl, httpUrl) and outputFiles.",
	}
	cmd.PersistentFlags().StringVar(&s.storageURL, "storage-url", "", "storage base URL (env "+EnvStorageURL+"; default <server URL>"+storagePath+"/<account>)")
	cmd.PersistentFlags().MarkHidden("storage-url")
	cmd.AddCommand(
		s.containerCommand(),
		s.uploadCommand(),
		s.downloadCommand(),
		s.listCommand(),
		s.urlCommand(),
		s.deleteCommand(),
	)
	return cmd
}

// storageTarget is where storage is and how to sign for it.
type storageTarget struct {
	baseURL string // e.g. http://127.0.0.1:8080/storage, no trailing slash
	cred    *azblob.SharedKeyCredential
	// serverURL and fingerprint pin the server's certificate (see
	// Credentials.ServerFingerprint).
	serverURL, fingerprint string
	servers                string // every server, when several (Credentials.Servers)
}

// target resolves the credentials and the storage base URL: --storage-url,
// else $KILN_STORAGE_URL, else the account's storage on the server,
// <server URL>/storage/<account> (path-style, as Azurite's).
func (s *storageOptions) target() (storageTarget, error) {
	c, err := s.g.credentials()
	if err != nil {
		return storageTarget{}, err
	}
	cred, err := azblob.NewSharedKeyCredential(c.AccountName, c.AccountKey)
	if err != nil {
		return storageTarget{}, fmt.Errorf("account key for %s: %w", c.AccountName, err)
	}
	return storageTarget{baseURL: s.baseURL(c), cred: cred, serverURL: c.URL, fingerprint: c.ServerFingerprint, servers: c.Servers}, nil
}

func (s *storageOptions) baseURL(c Credentials) string {
	getenv := s.g.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, u := range []string{s.storageURL, getenv(EnvStorageURL)} {
		if u = strings.TrimSpace(u); u != "" {
			return normalizeURL(u)
		}
	}
	return c.URL + storagePath + "/" + strings.ToLower(c.AccountName)
}

// client resolves the target and builds an azblob client whose every
// request carries a fresh account SAS.
func (s *storageOptions) client() (*azblob.Client, storageTarget, error) {
	t, err := s.target()
	if err != nil {
		return nil, t, err
	}
	opts := &azblob.ClientOptions{}
	opts.PerRetryPolicies = []policy.Policy{&sasPolicy{cred: t.cred}}
	// Short retry delays, as for the Batch client: a local server that is
	// down should fail fast.
	opts.Retry.MaxRetries = 3
	opts.Retry.RetryDelay = 200 * time.Millisecond
	opts.Retry.MaxRetryDelay = 2 * time.Second
	tr, err := s.g.httpTransport(Credentials{URL: t.serverURL, ServerFingerprint: t.fingerprint, Servers: t.servers})
	if err != nil {
		return nil, t, err
	}
	if tr != nil {
		opts.Transport = tr
	}
	cl, err := azblob.NewClientWithNoCredential(t.baseURL, opts)
	if err != nil {
		return nil, t, fmt.Errorf("storage at %s: %w", t.baseURL, err)
	}
	return cl, t, nil
}

// accountSAS signs an account SAS for the blob service with every permission
// the storage commands need, valid until expiry.
func accountSAS(cred *azblob.SharedKeyCredential, expiry time.Time) (string, error) {
	qp, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry.UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sign account SAS: %w", err)
	}
	return qp.Encode(), nil
}

// sasPolicy appends an account SAS to the query of each try. The token is
// re-signed every storageSASRenew, so long transfers never outlive it.
type sasPolicy struct {
	cred *azblob.SharedKeyCredential

	mu      sync.Mutex
	query   string
	renewAt time.Time
}

func (p *sasPolicy) token() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.query != "" && now.Before(p.renewAt) {
		return p.query, nil
	}
	q, err := accountSAS(p.cred, now.Add(storageSASLifetime))
	if err != nil {
		return "", err
	}
	p.query, p.renewAt = q, now.Add(storageSASRenew)
	return q, nil
}

func (p *sasPolicy) Do(req *policy.Request) (*http.Response, error) {
	q, err := p.token()
	if err != nil {
		return nil, err
	}
	// Each try is a clone of the request, so the query never carries two.
	u := req.Raw().URL
	if u.RawQuery == "" {
		u.RawQuery = q
	} else {
		u.RawQuery += "&" + q
	}
	return req.Next()
}

// storageError makes storage errors actionable: missing containers and
// blobs, refused signatures, and a storage endpoint that cannot be reached.
func storageError(err error, t storageTarget, container string) error {
	switch {
	case err == nil:
		return nil
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("container %q does not exist (create it with `kiln storage container create %s`)", container, container)
	case bloberror.HasCode(err, bloberror.ContainerAlreadyExists):
		return fmt.Errorf("container %q already exists", container)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure):
		// The account SAS grants everything the commands do, so a refusal
		// means the signature did not match.
		var re *azcore.ResponseError
		errors.As(err, &re)
		return fmt.Errorf("storage at %s refused the account SAS: check the account name and key (%s)", t.baseURL, storageErrorText(re))
	case isUnreachable(err):
		return fmt.Errorf("cannot reach Kiln storage at %s (is `kiln server` running?): %w", t.baseURL, err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		// As text, so that the context callers add is printed too (FormatError
		// prints a wrapped ResponseError without it).
		return errors.New(storageErrorText(re))
	}
	return err
}

// storageErrorText is "<code>: <message>" for a storage error answer, the
// message taken from the XML body (<Error><Code/><Message/></Error>, first
// line) or else the HTTP status.
func storageErrorText(re *azcore.ResponseError) string {
	code := re.ErrorCode
	if code == "" {
		code = fmt.Sprintf("HTTP%d", re.StatusCode)
	}
	var msg string
	if re.RawResponse != nil {
		if body, err := runtime.Payload(re.RawResponse); err == nil {
			var x struct {
				Message string `xml:"Message"`
			}
			if xml.Unmarshal(body, &x) == nil {
				msg, _, _ = strings.Cut(strings.TrimSpace(x.Message), "\n")
			}
		}
		if msg == "" {
			msg = strings.TrimPrefix(re.RawResponse.Status, strconv.Itoa(re.StatusCode)+" ")
		}
	}
	if msg == "" {
		msg = http.StatusText(re.StatusCode)
	}
	return code + ": " + strings.TrimSpace(msg)
}

// errBlobExists is returned by uploads with --overwrite=false.
var errBlobExists = errors.New("the blob already exists (--overwrite=false)")
