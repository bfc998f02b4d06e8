package sharedkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/batch"
)

// MaxAgeDefault is how far a request's date may be from the server's clock.
const MaxAgeDefault = 15 * time.Minute

// CodeAuthenticationFailed is the Azure error code of every Verify failure.
const CodeAuthenticationFailed = "AuthenticationFailed"

// Verifier checks incoming requests.
type Verifier struct {
	// Keys returns the decoded keys (primary, secondary) of an account,
	// ok=false if unknown. Account names are case-insensitive: Keys is called
	// with the name as the client wrote it and, if that is unknown, once more
	// lowercased.
	Keys func(account string) (keys [][]byte, ok bool)
	// MaxAge is how old (or how far in the future) the request's ocp-date or
	// Date may be. Default MaxAgeDefault (15 minutes).
	MaxAge time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

const authFailedMessage = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."

func authError(format string, args ...any) *batch.Error {
	e := batch.Errorf(http.StatusForbidden, CodeAuthenticationFailed, "%s", authFailedMessage)
	return e.With("AuthenticationErrorDetail", fmt.Sprintf(format, args...))
}

// parseDate accepts the RFC 1123 forms clients send: "GMT" (http.TimeFormat,
// JS toUTCString), "UTC" or a numeric zone (Go time.RFC1123/RFC1123Z), and
// the other formats of http.ParseTime.
func parseDate(s string) (time.Time, bool) {
	if t, err := http.ParseTime(s); err == nil {
		return t, true
	}
	for _, layout := range [...]string{time.RFC1123, time.RFC1123Z} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseAuthorization splits "SharedKey account:signature".
func parseAuthorization(h string) (account, sig string, err *batch.Error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, Scheme) {
		if strings.EqualFold(scheme, "Bearer") {
			return "", "", authError("Bearer tokens are not supported; sign the request with SharedKey.")
		}
		return "", "", authError("The Authorization header must have the form 'SharedKey <account>:<signature>'; found scheme '%s'.", scheme)
	}
	account, sig, ok := strings.Cut(strings.TrimSpace(rest), ":")
	if !ok || account == "" || sig == "" {
		return "", "", authError("The Authorization header must have the form 'SharedKey <account>:<signature>'.")
	}
	return account, strings.TrimSpace(sig), nil
}

// Verify checks the Authorization header of r. On success it returns the
// account name exactly as written in the Authorization header; account names
// are case-insensitive, so normalize before using it as a key.
//
// A failure is a *batch.Error with Status 403, Code "AuthenticationFailed"
// and a value "AuthenticationErrorDetail". Verify does not read the body.
//
// Besides the canonical form it accepts the variants real clients produce:
// Content-Length "0" instead of empty (or the reverse) for an empty body, the
// account lowercased in the resource, query parameters with empty values
// left out, query names not lowercased, and the path as written on the
// request line when it differs from r.URL.EscapedPath().
func (v *Verifier) Verify(r *http.Request) (account string, err error) {
	h, ok := headerValue(r.Header, "Authorization")
	if !ok || strings.TrimSpace(h) == "" {
		return "", authError("Missing Authorization header.")
	}
	account, sig, aerr := parseAuthorization(h)
	if aerr != nil {
		return "", aerr
	}

	var keys [][]byte
	if v.Keys != nil {
		keys, ok = v.Keys(account)
		if !ok {
			if lower := strings.ToLower(account); lower != account {
				keys, ok = v.Keys(lower)
			}
		}
	}
	if !ok || len(keys) == 0 {
		return "", authError("Unknown account '%s'.", account)
	}

	var c canonical
	c.extract(r)
	if !c.hasDate {
		return "", authError("Request date header not specified: send ocp-date (or Date) in RFC 1123 format.")
	}
	date, ok := parseDate(c.date)
	if !ok {
		return "", authError("The date header '%s' is not a valid RFC 1123 date, e.g. 'Mon, 02 Jan 2006 15:04:05 GMT'.", c.date)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	maxAge := v.MaxAge
	if maxAge <= 0 {
		maxAge = MaxAgeDefault
	}
	t := now()
	if date.Before(t.Add(-maxAge)) {
		return "", authError("Request date header too old: '%s'. The request is older than %v (server time %s).",
			c.date, maxAge, t.UTC().Format(http.TimeFormat))
	}
	if date.After(t.Add(maxAge)) {
		return "", authError("Request date header too far in the future: '%s'. The request is dated more than %v after the server time %s.",
			c.date, maxAge, t.UTC().Format(http.TimeFormat))
	}

	// A signature is the padded base64 of 32 bytes: 44 characters.
	var got [sha256.Size + 1]byte
	valid := len(sig) == base64.StdEncoding.EncodedLen(sha256.Size)
	if valid {
		n, derr := base64.StdEncoding.Decode(got[:], []byte(sig))
		valid = derr == nil && n == sha256.Size
	}

	var stack [512]byte
	first := c.appendTo(stack[:0], account, 0)
	if valid {
		m := matcher{keys: keys, want: got[:sha256.Size]}
		if m.match(first) {
			return account, nil
		}
		applicable := c.applicable(account)
		var buf []byte
		for _, vr := range variantOrder[1:] {
			if vr&^applicable != 0 {
				continue
			}
			buf = c.appendTo(buf[:0], account, vr)
			if m.match(buf) {
				return account, nil
			}
		}
	}
	if len(sig) > 100 {
		sig = sig[:100] + "..."
	}
	return "", authError("The MAC signature found in the HTTP request '%s' is not the same as any computed signature. Server used following string to sign: '%s'.", sig, first)
}

// matcher compares a signature with the HMACs of strings to sign under each
// key, creating each key's HMAC once per request.
type matcher struct {
	keys [][]byte
	want []byte
	macs []hash.Hash
	buf  [2]hash.Hash // primary and secondary, without allocating a slice
	sum  [sha256.Size]byte
}

func (m *matcher) match(stringToSign []byte) bool {
	if m.macs == nil {
		if len(m.keys) <= len(m.buf) {
			m.macs = m.buf[:len(m.keys)]
		} else {
			m.macs = make([]hash.Hash, len(m.keys))
		}
	}
	for i, k := range m.keys {
		if len(k) == 0 {
			// An empty key would let anyone sign; never accept it.
			continue
		}
		h := m.macs[i]
		if h == nil {
			h = hmac.New(sha256.New, k)
			m.macs[i] = h
		} else {
			h.Reset()
		}
		h.Write(stringToSign)
		if hmac.Equal(h.Sum(m.sum[:0]), m.want) {
			return true
		}
	}
	return false
}
