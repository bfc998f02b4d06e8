package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// tailChunk is the most read from a task file per poll.
const tailChunk = 256 << 10

// tail serves GET /ui/tail?job=J&task=T&file=stdout.txt as server-sent
// events: "chunk" {"offset","text"} as the file grows, "end" {"offset",
// "state"} once the task completed and the file is fully sent, "reset"
// {"offset": 0} when the file started again (the task was retried: what
// was sent is replaced by the chunks that follow), "failure" {"message"}
// when it cannot be read (unknown task, no session left). The
// event id is the offset after the chunk: a reconnecting EventSource
// resumes there (Last-Event-ID), as does ?offset=N.
func (h *Handler) tail(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	job, task, file := q.Get("job"), q.Get("task"), q.Get("file")
	if file == "" {
		file = "stdout.txt"
	}
	if job == "" || task == "" {
		writeError(w, http.StatusBadRequest, "Name the job and the task: /ui/tail?job=J&task=T&file=stdout.txt.")
		return
	}
	var offset int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		offset, _ = strconv.ParseInt(v, 10, 64)
	} else if v := q.Get("offset"); v != "" {
		offset, _ = strconv.ParseInt(v, 10, 64)
	}
	if offset < 0 {
		offset = 0
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, id string, v any) {
		b, _ := json.Marshal(v)
		if id != "" {
			fmt.Fprintf(w, "id: %s\n", id)
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	fmt.Fprint(w, "retry: 2000\n\n")
	if flusher != nil {
		flusher.Flush()
	}

	taskPath := "/jobs/" + url.PathEscape(job) + "/tasks/" + url.PathEscape(task)
	filePath := taskPath + "/files/" + escapeFilePath(file)
	ctx := r.Context()
	var pending []byte // an incomplete UTF-8 sequence at the end of the last read
	lastBeat := time.Now()
	for {
		if !h.keyValid(s.account, s.key) {
			send("failure", "", map[string]string{"message": "The session ended: sign in again."})
			return
		}
		// The state first, then the file: when the task had completed
		// before the read, the read saw all of its output.
		st := h.call(ctx, s.account, s.key, http.MethodGet, taskPath, url.Values{"$select": {"id,state"}}, nil)
		if ctx.Err() != nil {
			return
		}
		if st.code != http.StatusOK {
			send("failure", "", map[string]string{"message": azureMessage(st)})
			return
		}
		var t struct {
			State string `json:"state"`
		}
		json.Unmarshal(st.buf.Bytes(), &t)
		completed := t.State == "completed"

		read := 0
		for {
			hdr := http.Header{"Ocp-Range": {fmt.Sprintf("bytes=%d-%d", offset+int64(len(pending)), offset+int64(len(pending))+tailChunk-1)}}
			fr := h.call(ctx, s.account, s.key, http.MethodGet, filePath, nil, hdr)
			if ctx.Err() != nil {
				return
			}
			if fr.code == http.StatusRequestedRangeNotSatisfiable && offset+int64(len(pending)) > 0 {
				// No new bytes, or a new file (a retry runs the task
				// again): start over when the file is now shorter.
				hr := h.call(ctx, s.account, s.key, http.MethodHead, filePath, nil, nil)
				if size, err := strconv.ParseInt(hr.h.Get("Content-Length"), 10, 64); err == nil && hr.code == http.StatusOK &&
					size < offset+int64(len(pending)) {
					send("reset", "0", map[string]any{"offset": 0})
					offset, pending = 0, nil
					continue
				}
			}
			if fr.code != http.StatusOK && fr.code != http.StatusPartialContent {
				break // not there yet, no new bytes (416), or the node is unreachable
			}
			b := append(pending, fr.buf.Bytes()...)
			n := fr.buf.Len()
			read += n
			// Hold back a rune cut in two by the chunk boundary.
			cut := len(b)
			for i := 1; i <= 3 && i <= len(b); i++ {
				if utf8.RuneStart(b[len(b)-i]) {
					if !utf8.FullRune(b[len(b)-i:]) {
						cut = len(b) - i
					}
					break
				}
			}
			if completed && n < tailChunk {
				cut = len(b) // the file is complete: send everything
			}
			if cut > 0 {
				send("chunk", strconv.FormatInt(offset+int64(cut), 10),
					map[string]any{"offset": offset, "text": validText(b[:cut])})
				lastBeat = time.Now()
			}
			offset += int64(cut)
			pending = append([]byte(nil), b[cut:]...)
			if n < tailChunk {
				break
			}
		}
		if completed && read == 0 {
			if len(pending) > 0 {
				send("chunk", strconv.FormatInt(offset+int64(len(pending)), 10),
					map[string]any{"offset": offset, "text": validText(pending)})
				offset += int64(len(pending))
			}
			send("end", strconv.FormatInt(offset, 10), map[string]any{"offset": offset, "state": t.State})
			return
		}
		if time.Since(lastBeat) > 15*time.Second {
			fmt.Fprint(w, ": keep-alive\n\n")
			if flusher != nil {
				flusher.Flush()
			}
			lastBeat = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-h.stop: // the server shuts down: do not hold it up
			return
		case <-time.After(h.cfg.TailInterval):
		}
	}
}

// validText is b as text, each byte that is not part of valid UTF-8 sent as
// '?': the text's UTF-8 length stays the number of file bytes it covers, so
// offsets computed by the browser stay right.
func validText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteByte('?')
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// escapeFilePath escapes each segment of a file path.
func escapeFilePath(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// azureMessage is the message of an Azure error body, or the status text.
func azureMessage(rec *recorder) string {
	var e struct {
		Message struct {
			Value string `json:"value"`
		} `json:"message"`
	}
	if json.Unmarshal(rec.buf.Bytes(), &e) == nil && e.Message.Value != "" {
		return e.Message.Value
	}
	return http.StatusText(rec.code)
}
