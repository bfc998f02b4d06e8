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
func New(endpoint, account, base64Key string, opts *azbatch.ClientOptions) (*azbatch.Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("batchclient: endpoint %q must be an absolute http:// or https:// URL", endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("batchclient: endpoint %q must not have a query or fragment", endpoint)
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
	if u.Scheme == "http" {
		o.InsecureAllowCredentialWithHTTP = true
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
