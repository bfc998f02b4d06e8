package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// The agent's /ops/ endpoints: node operations the server asks for
// directly (protocol.PathOpsUsers, protocol.PathOpsUploadLogs), served next
// to the file server and signed the same way.

// withOps serves /ops/ from the agent and everything else from files.
func (a *agent) withOps(files http.Handler) http.Handler {
	ops := http.NewServeMux()
	ops.HandleFunc("POST "+protocol.PathOpsUsers, a.opUserAdd)
	ops.HandleFunc("PUT "+protocol.PathOpsUsers+"/{name}", a.opUserUpdate)
	ops.HandleFunc("DELETE "+protocol.PathOpsUsers+"/{name}", a.opUserDelete)
	ops.HandleFunc("DELETE "+protocol.PathOpsUsers, a.opUsersReset)
	ops.HandleFunc("POST "+protocol.PathOpsUploadLogs, a.opUploadLogs)
	ops.HandleFunc("POST "+protocol.PathOpsReimage, a.opReimage)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/ops/") {
			files.ServeHTTP(w, r)
			return
		}
		if !fileserver.Verify(a.nodeSecret(), r) {
			http.Error(w, "missing, invalid or expired signature", http.StatusForbidden)
			return
		}
		ops.ServeHTTP(w, r)
	})
}

// opsError is a failed operation: the status and Azure error to answer.
type opsError struct {
	status        int
	code, message string
}

func (e *opsError) Error() string { return e.code + ": " + e.message }

func opsErrorf(status int, code, format string, args ...any) *opsError {
	return &opsError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// opsAnswer writes v (200) or err (its status, or 500).
func opsAnswer(w http.ResponseWriter, status int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		oe, ok := err.(*opsError)
		if !ok {
			oe = opsErrorf(http.StatusInternalServerError, "InternalError", "%v", err)
		}
		w.WriteHeader(oe.status)
		_ = json.NewEncoder(w).Encode(protocol.OpsError{Code: oe.code, Message: oe.message})
		return
	}
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func decodeOp(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(v); err != nil {
		return opsErrorf(http.StatusBadRequest, "InvalidRequestBody", "The specified Request Body is not syntactically valid: %v", err)
	}
	return nil
}

// reimageDirs are what a reimage wipes: everything tasks and the start
// task wrote (a new OS disk on Azure).
var reimageDirs = []string{dirWorkItems, dirShared, dirStartup}

// opReimage wipes the node once its attempts are over (the server killed
// or drained them) and any clean in progress is done, then recreates the
// layout, removes the user accounts the agent made and installs the
// order's certificates. With order.Keep (a reboot) it only installs the
// certificates.
func (a *agent) opReimage(w http.ResponseWriter, r *http.Request) {
	var order protocol.ReimageOrder
	if err := decodeOp(r, &order); err != nil {
		opsAnswer(w, 0, nil, err)
		return
	}
	var wait []<-chan struct{}
	a.mu.Lock()
	for _, at := range a.known {
		wait = append(wait, at.done)
	}
	for pc := range a.cleaning {
		wait = append(wait, pc.done)
	}
	a.mu.Unlock()
	for _, done := range wait {
		select {
		case <-done:
		case <-r.Context().Done():
			opsAnswer(w, 0, nil, opsErrorf(http.StatusConflict, "NodeNotReady", "The node's tasks did not stop in time."))
			return
		}
	}
	if !order.Keep {
		for _, d := range reimageDirs {
			if err := a.root.RemoveAll(d); err != nil {
				opsAnswer(w, 0, nil, err)
				return
			}
		}
		if err := createLayout(a.rootDir); err != nil {
			opsAnswer(w, 0, nil, err)
			return
		}
		if err := a.removeUsers(); err != nil {
			a.log.Warn("reimage: remove users", "err", err)
		}
	}
	if err := a.installCertificates(order.Certificates); err != nil {
		opsAnswer(w, 0, nil, err)
		return
	}
	a.log.Info("node reimaged", "keep", order.Keep)
	opsAnswer(w, http.StatusNoContent, nil, nil)
}
