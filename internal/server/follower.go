package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/tlspin"
)

// followerProxy forwards every request a follower receives (Batch API,
// agent protocol, storage, /kiln routes) to the leader recorded in the
// store's lease row, trusting the leader's certificate by the fingerprint
// recorded there. Long polls and downloads stream through.
type followerProxy struct {
	h *ha

	mu     sync.Mutex
	leader store.Leader
	rp     *httputil.ReverseProxy // for leader; nil when there is none
}

func newFollowerProxy(h *ha) *followerProxy {
	p := &followerProxy{h: h}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.refresh(ctx)
	return p
}

// refresh reads the lease row and, when the leader changed, builds the
// proxy to the new one.
func (p *followerProxy) refresh(ctx context.Context) {
	l, ok, err := p.h.el.CurrentLeader(ctx)
	if err != nil {
		p.h.s.cfg.Logger.Warn("read the leader lease", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok || l.Holder == p.h.me.Holder {
		p.leader, p.rp = store.Leader{}, nil
		return
	}
	if p.rp != nil && l.URL == p.leader.URL && l.Fingerprint == p.leader.Fingerprint && l.Epoch == p.leader.Epoch {
		return
	}
	target, err := url.Parse(l.URL)
	if err != nil {
		p.h.s.cfg.Logger.Error("the leader's URL does not parse", "url", l.URL, "err", err)
		p.leader, p.rp = store.Leader{}, nil
		return
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if target.Scheme == "https" && l.Fingerprint != "" {
		if pinned, err := tlspin.Transport(l.URL, l.Fingerprint); err == nil {
			tr = pinned
		} else {
			p.h.s.cfg.Logger.Warn("cannot pin the leader's certificate", "err", err)
		}
	}
	tr.ResponseHeaderTimeout = 0 // agents' long polls
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
			r.Out.Header.Set(forwardedHeader, p.h.me.Holder)
			r.Out.Host = r.In.Host // signatures and links keep the host the client used
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil { // the client gave up (agents cancel long polls)
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			p.h.s.cfg.Logger.Warn("forward to the leader", "leader", target.String(), "method", r.Method, "path", r.URL.Path, "err", err)
			serverBusy(w, r, "The leader server cannot be reached; another server takes over shortly. Please retry.")
		},
	}
	if p.leader.URL != "" && p.leader.URL != l.URL {
		p.h.s.cfg.Logger.Info("the leader changed", "leader", l.URL, "epoch", l.Epoch)
	}
	p.leader, p.rp = l, rp
}

func (p *followerProxy) leaderURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader.URL
}

// forwardedHeader marks a request a follower forwarded: a server that gets
// one while following does not forward it again (the lease row may name a
// server that follows by now, or a URL that loops back).
const forwardedHeader = "X-Kiln-Forwarded-By"

func (p *followerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	rp := p.rp
	p.mu.Unlock()
	if r.Header.Get(forwardedHeader) != "" {
		serverBusy(w, r, "The server this request was forwarded to does not lead (any more); please retry.")
		return
	}
	if rp == nil {
		serverBusy(w, r, "No server leads at the moment; one takes over shortly. Please retry.")
		return
	}
	w.Header().Set("X-Kiln-Leader", p.leaderURL())
	rp.ServeHTTP(w, r)
}

// serverBusy answers 503 ServerBusy in Azure's error shape, with
// Retry-After: clients and agents retry, and reach the next leader.
func serverBusy(w http.ResponseWriter, r *http.Request, msg string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b, _ := json.Marshal(map[string]any{
		"odata.metadata": scheme + "://" + r.Host + "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
		"code":           "ServerBusy",
		"message":        map[string]string{"lang": "en-US", "value": msg + "\nTime:" + time.Now().UTC().Format(time.RFC3339Nano)},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json;odata=minimalmetadata")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
