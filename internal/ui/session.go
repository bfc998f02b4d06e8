package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kilnbatch/kiln/sharedkey"
)

// CookieName is the session cookie.
const CookieName = "kiln_session"

// session is one signed-in browser: the account and the key it signed in
// with. The key must stay one of the account's keys: once it is
// regenerated, the session ends.
type session struct {
	account  string
	key      []byte
	lastUsed time.Time
}

// sessions is the server-side session table, keyed by the SHA-256 of the
// cookie value (the table never holds a usable cookie).
type sessions struct {
	idle time.Duration
	mu   sync.Mutex
	m    map[[32]byte]*session
}

func newSessions(idle time.Duration) *sessions {
	return &sessions{idle: idle, m: map[[32]byte]*session{}}
}

// create adds a session and returns its cookie value.
func (s *sessions) create(account string, key []byte) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m { // drop expired sessions
		if now.Sub(v.lastUsed) > s.idle {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(tok))] = &session{account: account, key: key, lastUsed: now}
	return tok
}

// get returns the live session of tok and marks it used.
func (s *sessions) get(tok string) (session, bool) {
	id := sha256.Sum256([]byte(tok))
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if now.Sub(v.lastUsed) > s.idle {
		delete(s.m, id)
		return session{}, false
	}
	v.lastUsed = now
	return *v, true
}

func (s *sessions) remove(tok string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(tok)))
	s.mu.Unlock()
}

// accounts lists the accounts with a session.
func (s *sessions) accounts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, v := range s.m {
		if !seen[v.account] {
			seen[v.account] = true
			out = append(out, v.account)
		}
	}
	return out
}

// session returns the request's session, or answers 401 and false.
func (h *Handler) session(w http.ResponseWriter, r *http.Request) (session, bool) {
	c, err := r.Cookie(CookieName)
	if err == nil && c.Value != "" {
		if s, ok := h.sessions.get(c.Value); ok {
			if h.keyValid(s.account, s.key) {
				return s, true
			}
			h.sessions.remove(c.Value) // the key was regenerated: sign in again
		}
	}
	writeError(w, http.StatusUnauthorized, "Not signed in: sign in with an account name and key.")
	return session{}, false
}

// keyValid tells whether key is one of the account's current keys.
func (h *Handler) keyValid(account string, key []byte) bool {
	keys, ok := h.cfg.Keys(account)
	if !ok {
		return false
	}
	valid := false
	for _, k := range keys {
		if len(k) > 0 && subtle.ConstantTimeCompare(k, key) == 1 {
			valid = true
		}
	}
	return valid
}

// uiHeader tells whether the request carries the CSRF guard header, else
// answers 403.
func uiHeader(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("X-Kiln-UI") == "1" {
		return true
	}
	writeError(w, http.StatusForbidden, "Dashboard requests carry the header X-Kiln-UI: 1.")
	return false
}

func (h *Handler) sessionGet(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"account": s.account})
}

// sessionPost signs in: JSON {"account","key"} or a form with the same
// fields.
func (h *Handler) sessionPost(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Account string `json:"account"`
		Key     string `json:"key"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "The sign-in form could not be read.")
			return
		}
		in.Account, in.Key = r.PostFormValue("account"), r.PostFormValue("key")
	default:
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || json.Unmarshal(b, &in) != nil {
			writeError(w, http.StatusBadRequest, `Send JSON {"account": "...", "key": "..."}.`)
			return
		}
	}
	account := strings.ToLower(strings.TrimSpace(in.Account))
	if account == "" || strings.TrimSpace(in.Key) == "" {
		writeError(w, http.StatusBadRequest, "Enter the account name and one of its keys.")
		return
	}
	key, err := sharedkey.DecodeKey(strings.TrimSpace(in.Key))
	if err != nil || !h.keyValid(account, key) {
		// One answer for an unknown account and a wrong key.
		writeError(w, http.StatusUnauthorized, "Wrong account name or key.")
		return
	}
	tok := h.sessions.create(account, key)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: "/ui",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.cfg.Secure,
	})
	writeJSON(w, http.StatusOK, map[string]string{"account": account})
}

func (h *Handler) sessionDelete(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		h.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/ui", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.cfg.Secure,
	})
	w.WriteHeader(http.StatusNoContent)
}
