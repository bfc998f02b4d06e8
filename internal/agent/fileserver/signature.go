package fileserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Headers of the file server protocol (see protocol.FileInfo).
const (
	// HeaderSignature is hex(HMAC-SHA256(NodeSecret, METHOD + "\n" +
	// escapedPath + "\n" + date)).
	HeaderSignature = "X-Kiln-Signature"
	// HeaderDate is the signing time, RFC 3339.
	HeaderDate = "X-Kiln-Date"
	// HeaderIsDirectory is "true" or "false" on GET and HEAD answers.
	HeaderIsDirectory = "X-Kiln-Is-Directory"
	// HeaderCreationTime is the creation time (birth time where the platform
	// offers it cheaply, else the modification time), RFC 1123 (http.TimeFormat).
	HeaderCreationTime = "X-Kiln-Creation-Time"
	// HeaderFileMode is the Unix mode in octal, as in protocol.FileInfo.FileMode.
	HeaderFileMode = "X-Kiln-File-Mode"
)

// MaxClockSkew is how far X-Kiln-Date may be from the file server's clock,
// in either direction.
const MaxClockSkew = 5 * time.Minute

// Sign returns the signature of a request. escapedPath is the path of the
// request target exactly as sent on the wire, without the query, for example
// "/files/workitems/job%201/job-1/t1/stdout.txt" (Go: req.URL.EscapedPath()).
// The query string is not signed.
func Sign(secret, method, escapedPath, date string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(method + "\n" + escapedPath + "\n" + date))
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a request's signature headers against secret at time now.
func verify(secret, method, escapedPath, date, signature string, now time.Time) bool {
	if secret == "" || date == "" || signature == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return false
	}
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return false
	}
	want := Sign(secret, method, escapedPath, date)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(signature)))
}
