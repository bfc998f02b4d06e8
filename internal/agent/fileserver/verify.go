package fileserver

import (
	"net/http"
	"time"
)

// Verify reports whether r carries a valid signature for secret: the agent's
// other signed endpoints (/ops/, protocol.PathOpsUsers) check requests with
// it.
func Verify(secret string, r *http.Request) bool {
	return verify(secret, r.Method, escapedPath(r), r.Header.Get(HeaderDate), r.Header.Get(HeaderSignature), time.Now())
}
