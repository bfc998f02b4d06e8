// Package batchclient builds the official Azure Batch Go client
// (github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch) for a Kiln server,
// authenticating with Shared Key.
package batchclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/failover"
	"github.com/kilnbatch/kiln/internal/tlspin"
	"github.com/kilnbatch/kiln/sharedkey"
)

// Retry defaults for a local server; a caller's non-zero values win.
const (
	MaxRetriesDefault    = 3
	RetryDelayDefault    = 200 * time.Millisecond
	MaxRetryDelayDefault = 2 * time.Second
)

// New returns an official azbatch.Client for endpoint (e.g.
// "http://127.0.0.1:8080") that signs every request with Shared Key for
// account and its base64 key.
//
// azbatch only takes a TokenCredential, so New passes a static placeholder
// credential and appends sharedkey.Policy to PerRetryPolicies, where it
// replaces the bearer Authorization header on every try. For http://
// endpoints InsecureAllowCredentialWithHTTP is set, as azcore refuses
// credentials over plain HTTP otherwise.
//
// opts may be nil. Otherwise it is copied, not modified; its zero retry
// fields are filled with MaxRetriesDefault, RetryDelayDefault and
// MaxRetryDelayDefault (azcore's own are 3, 800ms and 60s).
//
// endpoint may list several servers of one highly available Kiln,
// comma-separated ("http://host1:8080,http://host2:8080"): requests go to
// one and fail over to the next when it cannot be reached. Without a
// Transport in opts, New sets FailoverTransport(endpoint, ""); to pin a
// self-signed certificate, pass FailoverTransport(endpoint, fingerprint).
func New(endpoint, account, base64Key string, opts *azbatch.ClientOptions) (*azbatch.Client, error) {
	servers := failover.Split(endpoint)
	if len(servers) == 0 {
		servers = []string{endpoint}
	}
	plainHTTP := false
	for _, e := range servers {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("batchclient: endpoint %q must be an absolute http:// or https:// URL", e)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("batchclient: endpoint %q must not have a query or fragment", e)
		}
		plainHTTP = plainHTTP || u.Scheme == "http"
	}
	if account == "" || strings.ContainsAny(account, ": \t\r\n") {
		return nil, fmt.Errorf("batchclient: invalid account name %q", account)
	}
	key, err := sharedkey.DecodeKey(base64Key)
	if err != nil {
		return nil, fmt.Errorf("batchclient: %w", err)
	}

	var o azbatch.ClientOptions
	if opts != nil {
		o = *opts
	}
	// Our policy goes last so that it signs the headers set by the others.
	o.PerRetryPolicies = append(slices.Clip(o.PerRetryPolicies), sharedkey.Policy(account, key))
	if plainHTTP {
		o.InsecureAllowCredentialWithHTTP = true
	}
	if len(servers) > 1 {
		endpoint = servers[0]
		if o.Transport == nil {
			hc, err := FailoverTransport(strings.Join(servers, ","), "")
			if err != nil {
				return nil, err
			}
			o.Transport = hc
		}
	}
	if o.Retry.MaxRetries == 0 {
		o.Retry.MaxRetries = MaxRetriesDefault
	}
	if o.Retry.RetryDelay == 0 {
		o.Retry.RetryDelay = RetryDelayDefault
	}
	if o.Retry.MaxRetryDelay == 0 {
		o.Retry.MaxRetryDelay = MaxRetryDelayDefault
	}
	return azbatch.NewClient(strings.TrimRight(endpoint, "/"), placeholderCredential{}, &o)
}

// placeholderCredential satisfies azbatch's TokenCredential. Its token is
// never sent: sharedkey.Policy overwrites the Authorization header.
type placeholderCredential struct{}

func (placeholderCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{
		Token:     "kiln-sharedkey-placeholder",
		ExpiresOn: time.Now().AddDate(100, 0, 0),
	}, nil
}

// PinnedTransport returns an HTTP client for ClientOptions.Transport that
// trusts the Kiln server at endpoint by its certificate's SHA-256
// fingerprint ("SHA256:<hex>", as `kiln server --tls` prints it and writes
// to credentials.json as serverFingerprint) instead of by a certificate
// authority: the way to reach a server with a self-signed certificate.
// Connections to other hosts are verified as usual. A server whose
// certificate has another fingerprint fails the request with an error
// that says so.
//
//	hc, err := batchclient.PinnedTransport(url, fingerprint)
//	client, err := batchclient.New(url, account, key, &azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}})
func PinnedTransport(endpoint, fingerprint string) (*http.Client, error) {
	hc, err := tlspin.HTTPClient(endpoint, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("batchclient: %w", err)
	}
	return hc, nil
}

// FailoverTransport returns an HTTP client for ClientOptions.Transport over
// several servers of one highly available Kiln (comma-separated URLs):
// requests for any of them go to the one that answered last, and to the
// next when it cannot be reached. With a fingerprint, every listed server's
// certificate is pinned to it, as PinnedTransport does for one server (the
// servers share one certificate); other hosts are verified as usual.
func FailoverTransport(endpoints, fingerprint string) (*http.Client, error) {
	hc, err := failover.PinnedClient(endpoints, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("batchclient: %w", err)
	}
	return hc, nil
}
