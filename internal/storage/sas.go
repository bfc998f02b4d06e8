package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// SAS verification errors; the HTTP handler answers each with 403 and the
// Azure error code in its message.
var (
	// ErrAuthenticationFailed: no SAS, a forged or expired one, or a kind
	// Kiln does not accept (stored access policies, user delegation,
	// snapshots and versions). Azure code AuthenticationFailed.
	ErrAuthenticationFailed = errors.New("storage: server failed to authenticate the request")
	// ErrPermissionMismatch: a valid SAS whose permissions do not cover the
	// operation. Azure code AuthorizationPermissionMismatch.
	ErrPermissionMismatch = errors.New("storage: this request is not authorized to perform this operation using this permission")
	// ErrResourceTypeMismatch: a valid SAS for another kind of resource (an
	// account SAS without the resource type, a blob SAS used to list).
	// Azure code AuthorizationResourceTypeMismatch.
	ErrResourceTypeMismatch = errors.New("storage: this request is not authorized to perform this operation using this resource type")
)

// Permission is one operation a SAS may permit.
type Permission uint8

// Permissions an operation needs. A SAS permits PermCreate and PermAdd
// with 'w' as well as with their own letters, as in Azure.
const (
	PermRead   Permission = 1 << iota // r: read blobs and properties
	PermAdd                           // a: add (append blobs)
	PermCreate                        // c: create a new blob or container
	PermWrite                         // w: write or overwrite
	PermDelete                        // d: delete
	PermList                          // l: list
)

// parsePermissions reads SAS permission letters; letters Kiln has no use
// for are ignored.
func parsePermissions(sp string) Permission {
	var p Permission
	for _, c := range sp {
		switch c {
		case 'r':
			p |= PermRead
		case 'a':
			p |= PermAdd
		case 'c':
			p |= PermCreate
		case 'w':
			p |= PermWrite
		case 'd':
			p |= PermDelete
		case 'l':
			p |= PermList
		}
	}
	return p
}

// allows reports whether granted permissions cover need.
func (granted Permission) allows(need Permission) bool {
	if granted&need == need {
		return true
	}
	switch need {
	case PermCreate, PermAdd:
		return granted&PermWrite != 0
	}
	return false
}

// clockSkew is how far in the future a SAS start time may be.
const clockSkew = 5 * time.Minute

// oldestSASVersion is the oldest signed version (sv) whose string-to-sign
// Kiln knows.
const oldestSASVersion = "2015-04-05"

// Signer signs and verifies Azure-format SAS tokens with an account key.
type Signer struct {
	Account string
	Key     []byte // the account key, decoded from base64
	// Keys, when set, returns the account's current keys (primary and
	// secondary, decoded): a SAS signed with any of them verifies, as in
	// Azure, and one signed with a regenerated key no longer does. Nil:
	// only Key verifies.
	Keys func() [][]byte
}

func (s Signer) credential() *azblob.SharedKeyCredential {
	cred, err := azblob.NewSharedKeyCredential(s.Account, base64.StdEncoding.EncodeToString(s.Key))
	if err != nil { // only for a key that is not base64, which cannot happen here
		panic(fmt.Sprintf("storage: shared key credential: %v", err))
	}
	return cred
}

// ContainerURL returns base/container with a service SAS for the container
// granting perms (letters of racwdl) until expiry. base is where the
// handler is mounted, like "http://127.0.0.1:8080/storage". It panics on
// permission letters Azure does not define, a programming error.
func (s Signer) ContainerURL(base, container, perms string, expiry time.Time) string {
	qp, err := sas.BlobSignatureValues{
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms,
		ContainerName: container,
	}.SignWithSharedKey(s.credential())
	if err != nil {
		panic(fmt.Sprintf("storage: sign container SAS: %v", err))
	}
	return strings.TrimSuffix(base, "/") + "/" + container + "?" + qp.Encode()
}

// BlobURL returns base/container/blob with a service SAS for the blob
// granting perms (letters of racwd) until expiry. It panics on permission
// letters Azure does not define.
func (s Signer) BlobURL(base, container, blob, perms string, expiry time.Time) string {
	qp, err := sas.BlobSignatureValues{
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms,
		ContainerName: container,
		BlobName:      blob,
	}.SignWithSharedKey(s.credential())
	if err != nil {
		panic(fmt.Sprintf("storage: sign blob SAS: %v", err))
	}
	return strings.TrimSuffix(base, "/") + "/" + container + "/" + escapeBlobName(blob) + "?" + qp.Encode()
}

// ServiceURL returns base/ with an account SAS for the blob service
// granting perms (letters of rwdlac) on resourceTypes (letters of sco:
// service, container, object) until expiry; it is what azblob's
// service.NewClientWithNoCredential takes. It panics on letters Azure does
// not define.
func (s Signer) ServiceURL(base, perms, resourceTypes string, expiry time.Time) string {
	qp, err := sas.AccountSignatureValues{
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms,
		ResourceTypes: resourceTypes,
	}.SignWithSharedKey(s.credential())
	if err != nil {
		panic(fmt.Sprintf("storage: sign account SAS: %v", err))
	}
	return strings.TrimSuffix(base, "/") + "/?" + qp.Encode()
}

// escapeBlobName escapes each "/"-separated segment of a blob name.
func escapeBlobName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Verify checks the SAS in the query q of a request on container and blob
// (blob "" for a container operation, container "" for a service one) that
// needs permission need. It accepts service SAS for a container (sr=c) or
// a blob (sr=b) and account SAS covering the blob service, in the format
// of every signed version since 2015-04-05.
//
// The signature is recomputed over the values exactly as they appear in
// the query, which is what Azure does: re-signing parsed values would
// normalise times and the order of permission letters, and reject tokens
// of SDKs that write them differently than azblob does.
func (s Signer) Verify(q url.Values, container, blob string, need Permission) error {
	granted, err := s.verify(q, container, blob, time.Now())
	if err != nil {
		return err
	}
	if !granted.allows(need) {
		return fmt.Errorf("%w: the SAS grants %q", ErrPermissionMismatch, q.Get("sp"))
	}
	return nil
}

// verify authenticates the SAS in q for the resource and returns the
// permissions it grants there.
func (s Signer) verify(q url.Values, container, blob string, now time.Time) (Permission, error) {
	sig := q.Get("sig")
	if sig == "" {
		return 0, fmt.Errorf("%w: the request carries no SAS (sig); Kiln storage accepts only SAS", ErrAuthenticationFailed)
	}
	// A "+" that was not escaped arrives as a space.
	sig = strings.ReplaceAll(sig, " ", "+")
	sv := q.Get("sv")
	if len(sv) != len(oldestSASVersion) || sv < oldestSASVersion {
		return 0, fmt.Errorf("%w: signed version (sv) %q is missing or older than %s", ErrAuthenticationFailed, sv, oldestSASVersion)
	}
	for _, p := range []string{"si", "skoid", "snapshot", "versionid"} {
		if q.Get(p) != "" {
			return 0, fmt.Errorf("%w: SAS parameter %q is not supported by Kiln storage", ErrAuthenticationFailed, p)
		}
	}
	switch spr := q.Get("spr"); spr {
	case "", "https", "https,http", "http,https", "http":
		// Kiln may sit behind a TLS proxy it cannot see; the signature
		// covers spr either way.
	default:
		return 0, fmt.Errorf("%w: signed protocol (spr) %q", ErrAuthenticationFailed, spr)
	}

	account := q.Has("ss") || q.Has("srt")
	var toSign string
	if account {
		toSign = accountStringToSign(q, s.Account)
	} else {
		sr := q.Get("sr")
		switch sr {
		case "c":
		case "b":
			if blob == "" {
				return 0, fmt.Errorf("%w: a blob SAS (sr=b) covers one blob, not a container or the account", ErrResourceTypeMismatch)
			}
		default:
			return 0, fmt.Errorf("%w: signed resource (sr) %q is not supported (want c or b)", ErrAuthenticationFailed, sr)
		}
		if container == "" {
			return 0, fmt.Errorf("%w: a service SAS cannot authorise an account operation", ErrResourceTypeMismatch)
		}
		canonical := "/blob/" + s.Account + "/" + container
		if sr == "b" {
			canonical += "/" + blob
		}
		toSign = serviceStringToSign(q, canonical)
	}
	keys := [][]byte{s.Key}
	if s.Keys != nil {
		keys = s.Keys()
	}
	matched := false
	for _, k := range keys {
		if len(k) == 0 {
			continue
		}
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(toSign))
		want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if hmac.Equal([]byte(want), []byte(sig)) {
			matched = true
			break
		}
	}
	if !matched {
		return 0, fmt.Errorf("%w: signature did not match (for another resource, account or key, or altered)", ErrAuthenticationFailed)
	}

	// The signature is genuine: now check what it says.
	p := sas.NewQueryParameters(q, false)
	if q.Get("se") == "" || p.ExpiryTime().IsZero() {
		return 0, fmt.Errorf("%w: signed expiry (se) %q is missing or not a time", ErrAuthenticationFailed, q.Get("se"))
	}
	if !now.Before(p.ExpiryTime()) {
		return 0, fmt.Errorf("%w: signature expired at %s", ErrAuthenticationFailed, p.ExpiryTime().UTC().Format(time.RFC3339))
	}
	if st := q.Get("st"); st != "" {
		if p.StartTime().IsZero() {
			return 0, fmt.Errorf("%w: signed start (st) %q is not a time", ErrAuthenticationFailed, st)
		}
		if p.StartTime().After(now.Add(clockSkew)) {
			return 0, fmt.Errorf("%w: signature not valid before %s", ErrAuthenticationFailed, p.StartTime().UTC().Format(time.RFC3339))
		}
	}
	if account {
		if !strings.Contains(q.Get("ss"), "b") {
			return 0, fmt.Errorf("%w: the account SAS does not cover the blob service (ss=%q)", ErrAuthenticationFailed, q.Get("ss"))
		}
		level := byte('o')
		switch {
		case container == "":
			level = 's'
		case blob == "":
			level = 'c'
		}
		if !strings.Contains(q.Get("srt"), string(level)) {
			return 0, fmt.Errorf("%w: the account SAS has srt=%q, the operation needs %q", ErrResourceTypeMismatch, q.Get("srt"), string(level))
		}
	}
	granted := parsePermissions(q.Get("sp"))
	if !account && blob == "" {
		// A service SAS reaches the blobs of its container; on the container
		// itself it only reads properties and lists. Creating or deleting
		// containers takes an account SAS, as in Azure.
		granted &= PermRead | PermList
	}
	return granted, nil
}

// serviceStringToSign is the string-to-sign of a service SAS for the
// version the SAS names.
func serviceStringToSign(q url.Values, canonical string) string {
	sv := q.Get("sv")
	f := []string{q.Get("sp"), q.Get("st"), q.Get("se"), canonical, q.Get("si"), q.Get("sip"), q.Get("spr"), sv}
	if sv >= "2018-11-09" {
		f = append(f, q.Get("sr"), "") // signed resource, snapshot time
	}
	if sv >= "2020-12-06" {
		f = append(f, q.Get("ses"))
	}
	f = append(f, q.Get("rscc"), q.Get("rscd"), q.Get("rsce"), q.Get("rscl"), q.Get("rsct"))
	return strings.Join(f, "\n")
}

// accountStringToSign is the string-to-sign of an account SAS for the
// version the SAS names.
func accountStringToSign(q url.Values, account string) string {
	f := []string{account, q.Get("sp"), q.Get("ss"), q.Get("srt"), q.Get("st"), q.Get("se"), q.Get("sip"), q.Get("spr"), q.Get("sv")}
	if q.Get("sv") >= "2020-12-06" {
		f = append(f, q.Get("ses"))
	}
	return strings.Join(f, "\n") + "\n"
}
