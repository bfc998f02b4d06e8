package server

import (
	"net/http"
	"strings"

	"github.com/kilnbatch/kiln/internal/metrics"
)

// Prometheus metrics (docs/metrics.md): one registry per server process,
// served at GET /metrics on the server's address. In high availability
// every server answers /metrics itself, never forwarding it: the leader
// reports the state gauges and the API and scheduler metrics, a follower
// its own process metrics and kiln_server_leader 0, so that Prometheus
// scrapes every server and sums nothing twice.

// newMetrics builds the registry cfg asks for; nil when metrics are off.
func newMetrics(cfg Config) *metrics.Metrics {
	if cfg.MetricsOff {
		return nil
	}
	return metrics.New(metrics.Options{Store: storeKind(cfg), Token: cfg.MetricsToken})
}

// storeKind is the store label of the transaction histogram.
func storeKind(cfg Config) string {
	if strings.HasPrefix(cfg.Store, "postgres://") || strings.HasPrefix(cfg.Store, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// serveMetrics answers GET /metrics of a server in high availability (both
// roles) with this process's registry; false when r is something else.
func (h *ha) serveMetrics(w http.ResponseWriter, r *http.Request) bool {
	m := h.s.cfg.metrics
	if m == nil || r.URL.Path != "/metrics" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	m.SetRole(h.Role) // kiln_server_leader
	m.Handler().ServeHTTP(w, r)
	return true
}
