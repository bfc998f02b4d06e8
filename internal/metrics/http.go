package metrics

import (
	"net/http"
	"time"
)

// Instrument counts and times every request next serves, labelled by
// operation(r) after the request was served (so that routing has set
// r.Pattern) and by the status code sent (200 when the handler wrote
// nothing).
func (m *Metrics) Instrument(next http.Handler, operation func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusRecorder{ResponseWriter: w}
		defer func() {
			v := recover()
			status := sw.status
			if status == 0 {
				status = http.StatusOK
				if v != nil {
					status = 499 // aborted before an answer (nginx's "client closed request")
				}
			}
			m.ObserveRequest(operation(r), status, time.Since(start))
			if v != nil {
				panic(v) // http.ErrAbortHandler: the server cuts the connection
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusRecorder records the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
