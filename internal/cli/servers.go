package cli

import (
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kilnbatch/kiln/internal/failover"
)

// Several servers (high availability, docs/high-availability.md): --url,
// KILN_URL and the url of credentials.json may list several server URLs,
// comma-separated. Requests are built against the first; a failover
// transport takes them to whichever server is up and sticks to it.

// withServerList normalizes each URL of c.URL; with several, c.URL becomes
// the first and c.Servers all of them.
func withServerList(c Credentials) Credentials {
	urls := failover.Split(c.URL)
	if len(urls) <= 1 {
		c.URL = normalizeURL(c.URL)
		return c
	}
	for i, u := range urls {
		urls[i] = normalizeURL(u)
	}
	c.URL, c.Servers = urls[0], strings.Join(urls, ",")
	return c
}

// sameServers reports whether two comma-separated URL lists share a server.
func sameServers(a, b string) bool {
	for _, x := range failover.Split(a) {
		for _, y := range failover.Split(b) {
			if sameURL(x, y) {
				return true
			}
		}
	}
	return false
}

// serversTransport is the failover HTTP client over c.Servers, pinned to
// c.ServerFingerprint if set.
func serversTransport(c Credentials) (policy.Transporter, error) {
	hc, err := failover.PinnedClient(c.Servers, c.ServerFingerprint)
	if err != nil {
		return nil, fmt.Errorf("--url, --server-fingerprint: %w", err)
	}
	return hc, nil
}
