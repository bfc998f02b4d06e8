// Package failover spreads HTTP requests over several equivalent Kiln
// servers (high availability: docs/high-availability.md). A Transport sends
// the requests meant for any of them to the one that answered last and, when
// it cannot be reached, to the next, so that agents and the CLI given
// several server addresses keep working while one server is down.
package failover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/kilnbatch/kiln/internal/tlspin"
)

// Split parses a comma-separated list of server URLs (spaces and trailing
// slashes trimmed, empty entries dropped).
func Split(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// First is the first URL of a comma-separated list ("" when empty).
func First(list string) string {
	if us := Split(list); len(us) > 0 {
		return us[0]
	}
	return ""
}

// IsList reports whether list names more than one server.
func IsList(list string) bool { return len(Split(list)) > 1 }

// Transport is an http.RoundTripper over a group of servers. A request to
// the scheme and host of any of them goes to the current server instead;
// when that one cannot be reached (the connection is refused or cannot be
// made, so the request was not sent), the request goes to the next server,
// which becomes the current one. Requests to other hosts go to Other.
//
// A request that fails after it was sent (the connection broke while the
// server answered) is not sent again, since it may have had its effect: its
// error is returned, and the next request tries the same server first (if
// it is gone, that request cannot connect and moves on). A request the
// caller cancels changes nothing.
type Transport struct {
	servers []target
	// Other carries requests to hosts that are none of the servers (default
	// http.DefaultTransport).
	Other http.RoundTripper
	cur   atomic.Int64
	// OnSwitch, if set, is called when the current server changes.
	OnSwitch func(from, to string)
}

type target struct {
	u  *url.URL
	rt http.RoundTripper
}

// New returns a Transport over the servers' URLs; base returns the
// transport to reach each (for example one that pins its certificate).
func New(urls []string, base func(serverURL string) (http.RoundTripper, error)) (*Transport, error) {
	if len(urls) == 0 {
		return nil, errors.New("failover: no server URL")
	}
	t := &Transport{Other: http.DefaultTransport}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("failover: %q is not an http:// or https:// URL", raw)
		}
		rt := http.DefaultTransport
		if base != nil {
			if rt, err = base(raw); err != nil {
				return nil, err
			}
		}
		t.servers = append(t.servers, target{u: u, rt: rt})
	}
	return t, nil
}

// Current is the URL of the server requests go to first.
func (t *Transport) Current() string {
	return t.servers[int(t.cur.Load())%len(t.servers)].u.String()
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.isServer(req.URL) {
		return t.Other.RoundTrip(req)
	}
	n := len(t.servers)
	start := int(t.cur.Load())
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var lastErr error
	for i := range n {
		k := (start + i) % n
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host = t.servers[k].u.Scheme, t.servers[k].u.Host
		out.Host = ""
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, lastErr
			}
			out.Body = body
		}
		resp, err := t.servers[k].rt.RoundTrip(out)
		if err == nil {
			t.setCurrent(start, k)
			return resp, nil
		}
		lastErr = err
		if !notSent(err) || !replayable || req.Context().Err() != nil {
			// Sent (or cancelled by the caller): the server may be fine,
			// so stay with it; if it is gone, the next request finds out.
			t.setCurrent(start, k)
			return nil, err
		}
	}
	return nil, lastErr
}

func (t *Transport) setCurrent(from, to int) {
	if from == to || !t.cur.CompareAndSwap(int64(from), int64(to)) {
		return
	}
	if t.OnSwitch != nil {
		t.OnSwitch(t.servers[from].u.String(), t.servers[to].u.String())
	}
}

// isServer reports whether u is on one of the servers.
func (t *Transport) isServer(u *url.URL) bool {
	for _, s := range t.servers {
		if strings.EqualFold(s.u.Scheme, u.Scheme) && strings.EqualFold(s.u.Host, u.Host) {
			return true
		}
	}
	return false
}

// notSent reports whether err means the request never reached the server:
// no connection could be made.
func notSent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// CloseIdleConnections closes the idle connections of every server's
// transport and of Other.
func (t *Transport) CloseIdleConnections() {
	type closer interface{ CloseIdleConnections() }
	for _, s := range t.servers {
		if c, ok := s.rt.(closer); ok {
			c.CloseIdleConnections()
		}
	}
	if c, ok := t.Other.(closer); ok {
		c.CloseIdleConnections()
	}
}

// PinnedClient is an HTTP client for servers, a comma-separated list of
// server URLs (one URL is fine): a failover Transport when there are
// several. With a fingerprint, the TLS certificate of every listed server
// is pinned to it (tlspin); other hosts are verified as usual.
func PinnedClient(servers, fingerprint string) (*http.Client, error) {
	urls := Split(servers)
	if len(urls) <= 1 {
		return tlspin.HTTPClient(First(servers), fingerprint)
	}
	other, err := tlspin.Transport(urls[0], fingerprint)
	if err != nil {
		return nil, err
	}
	t, err := New(urls, func(u string) (http.RoundTripper, error) {
		return tlspin.Transport(u, fingerprint)
	})
	if err != nil {
		return nil, err
	}
	t.Other = other
	return &http.Client{Transport: t}, nil
}
