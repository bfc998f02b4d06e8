package sharedkey

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testDate = "Tue, 25 Nov 2025 09:00:00 GMT"

// lines joins its arguments with "\n": the expected strings below are
// written out line by line from the algorithm in the facts file.
func lines(l ...string) string { return strings.Join(l, "\n") }

// twelve empty standard lines: Content-Encoding .. Range
func emptyHeaders(verb string) []string {
	return []string{verb, "", "", "", "", "", "", "", "", "", "", ""}
}

func TestStringToSign(t *testing.T) {
	t.Parallel()

	type test struct {
		name    string
		req     func() *http.Request
		account string
		want    string
	}
	tests := []test{
		{
			name: "OcpDateGetPool",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/pools/p1?api-version=2024-07-01.20.0&timeOut=30", nil)
				r.Header.Set("ocp-date", testDate)
				r.Header.Set("Accept", "application/json")
				r.Header.Set("client-request-id", "abc")
				return r
			},
			account: "acct",
			want: lines(append(emptyHeaders("GET"),
				"ocp-date:"+testDate,
				"/acct/pools/p1",
				"api-version:2024-07-01.20.0",
				"timeout:30")...),
		},
		{
			name: "DateWithoutOcpDate",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/pools", nil)
				r.Header.Set("Date", testDate)
				return r
			},
			account: "acct",
			want: lines("GET", "", "", "", "", "", testDate, "", "", "", "", "",
				"/acct/pools"),
		},
		{
			name: "OcpDateBlanksDate",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/pools", nil)
				r.Header.Set("Date", "Mon, 24 Nov 2025 09:00:00 GMT")
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want:    lines(append(emptyHeaders("GET"), "ocp-date:"+testDate, "/acct/pools")...),
		},
		{
			name: "ContentLengthZeroReceived",
			req: func() *http.Request {
				r := httptest.NewRequest("POST", "/jobs/j1/enable?api-version=2024-07-01.20.0", nil)
				r.Header.Set("Content-Length", "0")
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want: lines("POST", "", "", "0", "", "", "", "", "", "", "", "",
				"ocp-date:"+testDate,
				"/acct/jobs/j1/enable",
				"api-version:2024-07-01.20.0"),
		},
		{
			name: "ContentLengthZeroOutgoingPost",
			req: func() *http.Request {
				// A client request with no body: net/http sends Content-Length: 0.
				r, _ := http.NewRequest("POST", "http://h/jobs/j1/enable", nil)
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want: lines("POST", "", "", "0", "", "", "", "", "", "", "", "",
				"ocp-date:"+testDate, "/acct/jobs/j1/enable"),
		},
		{
			name: "OutgoingGetHasNoContentLength",
			req: func() *http.Request {
				r, _ := http.NewRequest("DELETE", "http://h/jobs/j1", nil)
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want:    lines(append(emptyHeaders("DELETE"), "ocp-date:"+testDate, "/acct/jobs/j1")...),
		},
		{
			name: "BodyAndAllStandardHeaders",
			req: func() *http.Request {
				body := `{"id":"j1"}`
				r, _ := http.NewRequest("PUT", "http://h/jobs/j1", bytes.NewBufferString(body))
				r.Header.Set("Content-Encoding", "gzip")
				r.Header.Set("Content-Language", "en")
				r.Header.Set("Content-MD5", "md5==")
				r.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
				r.Header.Set("Date", testDate)
				r.Header.Set("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT")
				r.Header.Set("If-Match", `"0x1"`)
				r.Header.Set("If-None-Match", `"0x2"`)
				r.Header.Set("If-Unmodified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")
				r.Header.Set("Range", "bytes=0-9")
				return r
			},
			account: "acct",
			want: lines("PUT", "gzip", "en", "11", "md5==", "application/json; odata=minimalmetadata",
				testDate, "Mon, 01 Jan 2024 00:00:00 GMT", `"0x1"`, `"0x2"`,
				"Tue, 02 Jan 2024 00:00:00 GMT", "bytes=0-9",
				"/acct/jobs/j1"),
		},
		{
			name: "HeaderNamesAnyCase",
			req: func() *http.Request {
				r, _ := http.NewRequest("GET", "http://h/jobs/j1/tasks/t1/files/out.txt", nil)
				// azbatch sets these keys verbatim, not canonicalized.
				r.Header["ocp-date"] = []string{testDate}
				r.Header["ocp-range"] = []string{"bytes=0-99"}
				r.Header["OCP-Custom"] = []string{"x"}
				r.Header["content-type"] = []string{"application/json"}
				r.Header["if-match"] = []string{"e1"}
				return r
			},
			account: "acct",
			want: lines("GET", "", "", "", "", "application/json", "", "", "e1", "", "", "",
				"ocp-custom:x",
				"ocp-date:"+testDate,
				"ocp-range:bytes=0-99",
				"/acct/jobs/j1/tasks/t1/files/out.txt"),
		},
		{
			name: "QueryCanonicalization",
			req: func() *http.Request {
				r := httptest.NewRequest("GET",
					"/pools?maxresults=10&%24filter=state+eq+%27active%27&B=2&a=x%20y&b=1&%24select=id,state&empty=&flag&api-version=2024-07-01.20.0",
					nil)
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want: lines(append(emptyHeaders("GET"),
				"ocp-date:"+testDate,
				"/acct/pools",
				"$filter:state eq 'active'",
				"$select:id,state",
				"a:x y",
				"api-version:2024-07-01.20.0",
				"b:1,2",
				"empty:",
				"flag:",
				"maxresults:10")...),
		},
		{
			name: "EscapedFilePath",
			req: func() *http.Request {
				r := httptest.NewRequest("GET",
					"/jobs/j1/tasks/t1/files/wd%2Fsub%20dir%2Fout.txt?api-version=2024-07-01.20.0", nil)
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "MyAccount",
			want: lines(append(emptyHeaders("GET"),
				"ocp-date:"+testDate,
				"/MyAccount/jobs/j1/tasks/t1/files/wd%2Fsub%20dir%2Fout.txt",
				"api-version:2024-07-01.20.0")...),
		},
		{
			name: "EmptyPath",
			req: func() *http.Request {
				r, _ := http.NewRequest("GET", "http://h?api-version=1", nil)
				r.Header.Set("ocp-date", testDate)
				return r
			},
			account: "acct",
			want:    lines(append(emptyHeaders("GET"), "ocp-date:"+testDate, "/acct/", "api-version:1")...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := StringToSign(tt.req(), tt.account)
			if got != tt.want {
				t.Errorf("StringToSign mismatch\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func TestSign_KnownVector(t *testing.T) {
	t.Parallel()
	// Computed independently with Python's hmac module.
	key, err := DecodeKey("a2lsbi10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm")
	if err != nil {
		t.Fatal(err)
	}
	sts := lines(append(emptyHeaders("GET"), "ocp-date:"+testDate, "/acct/pools", "api-version:2024-07-01.20.0")...)
	if got, want := Sign(key, sts), "0EhKIGwHv7W5n8xk+ZCr4XCMouULyiEeanMBm1z/3AA="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}

	r := httptest.NewRequest("GET", "/pools?api-version=2024-07-01.20.0", nil)
	r.Header.Set("ocp-date", testDate)
	SignRequest(r, "acct", key)
	if got, want := r.Header.Get("Authorization"), "SharedKey acct:0EhKIGwHv7W5n8xk+ZCr4XCMouULyiEeanMBm1z/3AA="; got != want {
		t.Errorf("Authorization = %s, want %s", got, want)
	}
}

func TestSignRequest(t *testing.T) {
	t.Parallel()
	key := []byte("k")

	t.Run("SetsOcpDate", func(t *testing.T) {
		t.Parallel()
		r, _ := http.NewRequest("GET", "http://h/pools", nil)
		r.Header["authorization"] = []string{"Bearer xyz"}
		SignRequest(r, "acct", key)
		d := r.Header.Get("ocp-date")
		if _, ok := parseDate(d); !ok || !strings.HasSuffix(d, " GMT") {
			t.Errorf("ocp-date = %q, want an RFC 1123 GMT date", d)
		}
		if _, ok := r.Header["authorization"]; ok {
			t.Error("lower-case authorization header was kept")
		}
		if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "SharedKey acct:") {
			t.Errorf("Authorization = %q", a)
		}
	})
	t.Run("KeepsExistingDates", func(t *testing.T) {
		t.Parallel()
		r, _ := http.NewRequest("GET", "http://h/pools", nil)
		r.Header["ocp-date"] = []string{testDate}
		SignRequest(r, "acct", key)
		if len(r.Header) != 2 || r.Header["ocp-date"][0] != testDate {
			t.Errorf("headers = %v, want ocp-date untouched and no second date", r.Header)
		}

		r, _ = http.NewRequest("GET", "http://h/pools", nil)
		r.Header.Set("Date", testDate)
		SignRequest(r, "acct", key)
		if _, ok := headerValue(r.Header, "ocp-date"); ok {
			t.Error("ocp-date added although Date was present")
		}
	})
}

func TestDecodeKey(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"a2V5MQ==", " a2V5MQ==\n", "a2V5MQ"} {
		k, err := DecodeKey(in)
		if err != nil || string(k) != "key1" {
			t.Errorf("DecodeKey(%q) = %q, %v", in, k, err)
		}
	}
	for _, in := range []string{"", "  ", "not base64!", "===="} {
		if _, err := DecodeKey(in); err == nil {
			t.Errorf("DecodeKey(%q) succeeded", in)
		} else if in != "" && strings.Contains(err.Error(), in) && strings.TrimSpace(in) != "" {
			t.Errorf("error %q leaks the key", err)
		}
	}
}

func TestStringToSign_OddHeaders(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/pools", nil)
	r.Header["Ocp-Empty"] = []string{}
	r.Header["If-Match"] = []string{}
	r.Header["Ocp-Date"] = []string{testDate}
	r.Header["ocp-date"] = []string{"second"}
	r.Header["Range"] = []string{"bytes=0-1", "bytes=5-6"}
	want := lines("GET", "", "", "", "", "", "", "", "", "", "", "bytes=0-1,bytes=5-6",
		"ocp-date:"+testDate+",second",
		"ocp-empty:",
		"/acct/pools")
	for range 20 { // map order must not matter
		if got := StringToSign(r, "acct"); got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	}
}
