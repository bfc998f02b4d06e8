package sharedkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Scheme is the Authorization scheme of Shared Key.
const Scheme = "SharedKey"

// Sign computes the base64 HMAC-SHA256 signature of stringToSign with the
// (already base64-decoded) key.
func Sign(key []byte, stringToSign string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// DecodeKey decodes a base64 account key as shown by Azure (primary or
// secondary key). Surrounding white space is ignored and missing padding is
// tolerated. The error never contains the key.
func DecodeKey(b64 string) ([]byte, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, errors.New("sharedkey: the account key is empty")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if key, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 != nil {
			return nil, fmt.Errorf("sharedkey: the account key (%d characters) is not valid standard base64: %v", len(s), err)
		}
	}
	if len(key) == 0 {
		return nil, errors.New("sharedkey: the account key decodes to zero bytes")
	}
	return key, nil
}

// headerValue returns the first value of header name, looked up
// case-insensitively (azbatch sets keys such as "ocp-date" verbatim).
func headerValue(h http.Header, name string) (string, bool) {
	if v, ok := h[name]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// delHeader removes header name in every spelling.
func delHeader(h http.Header, name string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// SignRequest signs r with Shared Key: it sets ocp-date to the current time
// (RFC 1123, GMT) unless r already has an ocp-date or Date header, then
// replaces any Authorization header with "SharedKey account:signature".
// Sign after every other header change; the body is not read.
func SignRequest(r *http.Request, account string, key []byte) {
	signRequest(r, account, key, time.Now())
}

func signRequest(r *http.Request, account string, key []byte, now time.Time) {
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	if _, ok := headerValue(r.Header, "ocp-date"); !ok {
		if _, ok := headerValue(r.Header, "Date"); !ok {
			r.Header.Set("ocp-date", now.UTC().Format(http.TimeFormat))
		}
	}
	sig := Sign(key, StringToSign(r, account))
	delHeader(r.Header, "Authorization")
	r.Header.Set("Authorization", Scheme+" "+account+":"+sig)
}

// Policy returns an azcore policy that signs each request with Shared Key
// (see SignRequest). Put it last in azcore ClientOptions.PerRetryPolicies so
// that every try is signed with a fresh ocp-date and overwrites the
// Authorization header set by an earlier bearer-token policy.
//
// Headers added through policy.WithHTTPHeader are applied by azcore after all
// PerRetryPolicies and so are not covered by the signature: do not use it for
// signed headers (ocp-*, If-*, Content-*, Date, Range).
func Policy(account string, key []byte) policy.Policy {
	return &signingPolicy{account: account, key: append([]byte(nil), key...)}
}

type signingPolicy struct {
	account string
	key     []byte
}

func (p *signingPolicy) Do(req *policy.Request) (*http.Response, error) {
	SignRequest(req.Raw(), p.account, p.key)
	return req.Next()
}
