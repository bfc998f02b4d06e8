package sharedkey

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/batch"
)

var (
	testNow       = time.Date(2025, 11, 25, 9, 5, 0, 0, time.UTC)
	testPrimary   = []byte("primary-key-0123456789")
	testSecondary = []byte("secondary-key-0123456789")
)

type verifierBundle struct {
	v *Verifier
}

func setupVerifier(t *testing.T) *verifierBundle {
	t.Helper()
	accounts := map[string][][]byte{
		"acct":      {testPrimary, testSecondary},
		"myaccount": {testPrimary, nil}, // no secondary key
	}
	return &verifierBundle{v: &Verifier{
		Keys: func(a string) ([][]byte, bool) {
			k, ok := accounts[a]
			return k, ok
		},
		Now: func() time.Time { return testNow },
	}}
}

// serverRequest builds a request as a server handler receives it.
func serverRequest(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("ocp-date", testDate)
	return r
}

// signWith sets the Authorization header for an explicit string to sign.
func signWith(r *http.Request, account string, key []byte, sts string) {
	r.Header.Set("Authorization", "SharedKey "+account+":"+Sign(key, sts))
}

// wantAuthFailed asserts err is a 403 AuthenticationFailed whose detail
// contains detail.
func wantAuthFailed(t *testing.T, err error, detail string) {
	t.Helper()
	var be *batch.Error
	if !errors.As(err, &be) {
		t.Fatalf("err = %v (%T), want *batch.Error", err, err)
	}
	if be.Status != http.StatusForbidden || be.Code != "AuthenticationFailed" || be.Message == "" {
		t.Errorf("err = %+v, want 403 AuthenticationFailed", be)
	}
	var got string
	for _, kv := range be.Values {
		if kv.Key == "AuthenticationErrorDetail" {
			got = kv.Value
		}
	}
	if !strings.Contains(got, detail) {
		t.Errorf("AuthenticationErrorDetail = %q, want it to contain %q", got, detail)
	}
}

func TestVerifier_Verify(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools/p1?api-version=2024-07-01.20.0&timeOut=30")
		SignRequest(r, "acct", testPrimary)
		account, err := b.v.Verify(r)
		if err != nil || account != "acct" {
			t.Fatalf("Verify = %q, %v", account, err)
		}
	})
	t.Run("SecondaryKey", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools")
		SignRequest(r, "acct", testSecondary)
		if _, err := b.v.Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("AccountCaseInsensitive", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools")
		SignRequest(r, "MyAccount", testPrimary)
		account, err := b.v.Verify(r)
		if err != nil || account != "MyAccount" {
			t.Fatalf("Verify = %q, %v", account, err)
		}
	})
	t.Run("DateHeader", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("Date", testDate)
		SignRequest(r, "acct", testPrimary)
		if _, err := b.v.Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("GoRFC1123UTC", func(t *testing.T) {
		t.Parallel()
		// azbatch formats options.OCPDate with time.RFC1123: "... UTC".
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("ocp-date", testNow.Add(-time.Minute).Format(time.RFC1123))
		SignRequest(r, "acct", testPrimary)
		if _, err := b.v.Verify(r); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrMissingAuthorization", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		_, err := b.v.Verify(serverRequest("GET", "/pools"))
		wantAuthFailed(t, err, "Missing Authorization header")
	})
	t.Run("ErrBearer", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools")
		r.Header.Set("Authorization", "Bearer eyJ0")
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "Bearer tokens are not supported")
	})
	t.Run("ErrMalformedAuthorization", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		for _, h := range []string{"SharedKey", "SharedKey acct", "SharedKey :sig", "SharedKey acct:", "Basic abc"} {
			r := serverRequest("GET", "/pools")
			r.Header.Set("Authorization", h)
			_, err := b.v.Verify(r)
			wantAuthFailed(t, err, "The Authorization header must have the form")
		}
	})
	t.Run("ErrUnknownAccount", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools")
		SignRequest(r, "nobody", testPrimary)
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "Unknown account 'nobody'")
	})
	t.Run("ErrMissingDate", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		signWith(r, "acct", testPrimary, StringToSign(r, "acct"))
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "Request date header not specified")
	})
	t.Run("ErrBadDate", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("ocp-date", "yesterday")
		SignRequest(r, "acct", testPrimary)
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "'yesterday' is not a valid RFC 1123 date")
	})
	t.Run("ErrTooOld", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("ocp-date", testNow.Add(-20*time.Minute).Format(http.TimeFormat))
		SignRequest(r, "acct", testPrimary)
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "The request is older than 15m0s")
	})
	t.Run("ErrInFuture", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("ocp-date", testNow.Add(20*time.Minute).Format(http.TimeFormat))
		SignRequest(r, "acct", testPrimary)
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "too far in the future")
	})
	t.Run("MaxAge", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		b.v.MaxAge = time.Hour
		r := httptest.NewRequest("GET", "/pools", nil)
		r.Header.Set("ocp-date", testNow.Add(-20*time.Minute).Format(http.TimeFormat))
		SignRequest(r, "acct", testPrimary)
		if _, err := b.v.Verify(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrWrongKey", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools?api-version=2024-07-01.20.0")
		SignRequest(r, "acct", []byte("wrong"))
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "is not the same as any computed signature. Server used following string to sign: 'GET\n")
		wantAuthFailed(t, err, "/acct/pools\napi-version:2024-07-01.20.0'")
	})
	t.Run("ErrEmptySecondaryKeyNeverMatches", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := serverRequest("GET", "/pools")
		SignRequest(r, "myaccount", nil)
		_, err := b.v.Verify(r)
		wantAuthFailed(t, err, "is not the same as any computed signature")
	})
	t.Run("ErrMalformedSignature", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		for _, sig := range []string{"!!!", "YWJj", strings.Repeat("A", 44) + "==", strings.Repeat("A", 43) + "=", strings.Repeat("/", 44)} {
			r := serverRequest("GET", "/pools")
			r.Header.Set("Authorization", "SharedKey acct:"+sig)
			_, err := b.v.Verify(r)
			wantAuthFailed(t, err, "The MAC signature found in the HTTP request '"+sig+"'")
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		for name, tamper := range map[string]func(r *http.Request){
			"IfMatch":  func(r *http.Request) { r.Header.Set("If-Match", "other") },
			"OcpRange": func(r *http.Request) { r.Header.Set("ocp-range", "bytes=0-1") },
			"Query":    func(r *http.Request) { r.URL.RawQuery = "api-version=2024-07-01.20.0&$filter=x" },
			"Path": func(r *http.Request) {
				r.URL.Path, r.URL.RawPath = "/pools/p2", ""
				r.RequestURI = "/pools/p2?" + r.URL.RawQuery
			},
			"Method": func(r *http.Request) { r.Method = "DELETE" },
			"Date":   func(r *http.Request) { r.Header.Set("ocp-date", testNow.Format(http.TimeFormat)) },
		} {
			r := serverRequest("GET", "/pools/p1?api-version=2024-07-01.20.0")
			r.Header.Set("If-Match", "etag")
			SignRequest(r, "acct", testPrimary)
			tamper(r)
			if _, err := b.v.Verify(r); err == nil {
				t.Errorf("%s: tampered request verified", name)
			}
		}
	})
	t.Run("DoesNotReadBody", func(t *testing.T) {
		t.Parallel()
		b := setupVerifier(t)
		r := httptest.NewRequest("POST", "/jobs", strings.NewReader(`{"id":"j1"}`))
		r.Header.Set("ocp-date", testDate)
		r.Header.Set("Content-Length", "11")
		r.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
		SignRequest(r, "acct", testPrimary)
		r.Body = failingBody{t}
		if _, err := b.v.Verify(r); err != nil {
			t.Fatal(err)
		}
	})
}

type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("Verify read the body")
	return 0, io.EOF
}
func (failingBody) Close() error { return nil }

// TestVerifier_Variants signs strings built the way other clients build them
// and checks that each is accepted.
func TestVerifier_Variants(t *testing.T) {
	t.Parallel()
	hdr := func(verb string, cl string) []string {
		return []string{verb, "", "", cl, "", "", "", "", "", "", "", ""}
	}
	tests := []struct {
		name    string
		method  string
		target  string
		header  map[string]string
		account string
		sts     string
	}{
		{
			name:    "EmptyPostSignedEmptyReceivedZero",
			method:  "POST",
			target:  "/jobs/j1/enable?api-version=2024-07-01.20.0",
			header:  map[string]string{"Content-Length": "0"},
			account: "acct",
			sts: lines(append(hdr("POST", ""), "ocp-date:"+testDate, "/acct/jobs/j1/enable",
				"api-version:2024-07-01.20.0")...),
		},
		{
			name:    "EmptyPostSignedZeroReceivedNone",
			method:  "POST",
			target:  "/jobs/j1/enable?api-version=2024-07-01.20.0",
			account: "acct",
			sts: lines(append(hdr("POST", "0"), "ocp-date:"+testDate, "/acct/jobs/j1/enable",
				"api-version:2024-07-01.20.0")...),
		},
		{
			name:    "AccountLowercased",
			method:  "GET",
			target:  "/pools",
			account: "MyAccount",
			sts:     lines(append(hdr("GET", ""), "ocp-date:"+testDate, "/myaccount/pools")...),
		},
		{
			name:    "EmptyQueryValuesDropped",
			method:  "GET",
			target:  "/pools?api-version=1&%24filter=&b=&b=2",
			account: "acct",
			sts:     lines(append(hdr("GET", ""), "ocp-date:"+testDate, "/acct/pools", "api-version:1", "b:2")...),
		},
		{
			name:    "QueryNamesNotLowercased",
			method:  "GET",
			target:  "/pools/p1?timeOut=30&api-version=1",
			account: "acct",
			sts:     lines(append(hdr("GET", ""), "ocp-date:"+testDate, "/acct/pools/p1", "api-version:1", "timeOut:30")...),
		},
		{
			name:    "RawRequestLinePath",
			method:  "GET",
			target:  "/jobs/j1/tasks/t1/files/résumé.txt",
			account: "acct",
			sts:     lines(append(hdr("GET", ""), "ocp-date:"+testDate, "/acct/jobs/j1/tasks/t1/files/résumé.txt")...),
		},
		{
			name:    "AllAtOnce",
			method:  "POST",
			target:  "/jobs/j1/tasks/t1/files/résumé.txt?Flag=&api-version=1",
			header:  map[string]string{"Content-Length": "0"},
			account: "MyAccount",
			sts:     lines(append(hdr("POST", ""), "ocp-date:"+testDate, "/myaccount/jobs/j1/tasks/t1/files/résumé.txt", "api-version:1")...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupVerifier(t)
			r := serverRequest(tt.method, tt.target)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if StringToSign(r, tt.account) == tt.sts {
				t.Fatalf("test case is the canonical form; it exercises no variant")
			}
			signWith(r, tt.account, testPrimary, tt.sts)
			if _, err := b.v.Verify(r); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// The same variant with a wrong key still fails.
			signWith(r, tt.account, []byte("wrong"), tt.sts)
			_, err := b.v.Verify(r)
			wantAuthFailed(t, err, "is not the same as any computed signature")
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	v := &Verifier{
		Keys: func(string) ([][]byte, bool) { return [][]byte{testPrimary, testSecondary}, true },
		Now:  func() time.Time { return testNow },
	}
	r := httptest.NewRequest("GET", "/jobs/job-1/tasks?api-version=2024-07-01.20.0&maxresults=1000&%24filter=state%20eq%20%27active%27&timeOut=30", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "azsdk-go-azbatch/v0.1.0 (go1.26.8; linux)")
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("client-request-id", "5c1e2a3b-0000-0000-0000-000000000000")
	r.Header.Set("return-client-request-id", "true")
	r.Header.Set("ocp-date", testDate)
	SignRequest(r, "acct", testPrimary)

	b.Run("Primary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	})

	r2 := r.Clone(r.Context())
	SignRequest(r2, "acct", testSecondary)
	b.Run("Secondary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(r2); err != nil {
				b.Fatal(err)
			}
		}
	})

	r3 := r.Clone(r.Context())
	SignRequest(r3, "acct", []byte("wrong"))
	b.Run("WrongKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(r3); err == nil {
				b.Fatal("verified")
			}
		}
	})
}
