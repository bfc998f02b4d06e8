package sharedkey

import (
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// jsRequest is a request as the npm @azure/batch client holds it before
// signing: headers with their original names, the URL as a string.
type jsRequest struct {
	method  string
	url     string
	headers [][2]string
	body    string
}

func (r *jsRequest) get(name string) string {
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// jsQueryParse follows querystringify.parse (used by url-parse): '+' is a
// space, names and values are decodeURIComponent-decoded, and the first of
// repeated names wins.
func jsQueryParse(q string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dec := func(s string) string {
			s, err := url.PathUnescape(strings.ReplaceAll(s, "+", " "))
			if err != nil {
				panic(err)
			}
			return s
		}
		k, v = dec(k), dec(v)
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// jsStringToSign re-implements BatchSharedKeyCredentials.signRequest of the
// npm @azure/batch client, independently of the package code.
func jsStringToSign(r *jsRequest, account string) string {
	var s strings.Builder
	s.WriteString(r.method + "\n")
	app := func(name string) { s.WriteString(r.get(name) + "\n") }
	app("Content-Encoding")
	app("Content-Language")
	// getContentLengthToAppend
	switch {
	case r.get("Content-Length") != "":
		s.WriteString(r.get("Content-Length") + "\n")
	case r.body != "":
		s.WriteString(strconv.Itoa(len(r.body)) + "\n")
	case r.method == "POST":
		s.WriteString("0\n")
	default:
		s.WriteString("\n")
	}
	for _, h := range []string{"Content-MD5", "Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"} {
		app(h)
	}
	// _getCanonicalizedHeaders: names starting with "ocp-" (case-sensitive),
	// sorted, lowercased, only when the value is not empty.
	var names []string
	for _, h := range r.headers {
		if strings.HasPrefix(h[0], "ocp-") {
			names = append(names, h[0])
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if v := r.get(n); v != "" {
			s.WriteString(strings.ToLower(n) + ":" + v + "\n")
		}
	}
	// _getCanonicalizedResource: raw pathname, query names as given, sorted.
	rest := r.url[strings.Index(r.url, "://")+3:]
	pathQuery := rest[strings.Index(rest, "/"):]
	path, query, _ := strings.Cut(pathQuery, "?")
	s.WriteString("/" + account + path)
	q := jsQueryParse(query)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.WriteString("\n" + k + ":" + q[k])
	}
	return s.String()
}

// TestVerifier_JSClient builds requests the way the npm @azure/batch client
// signs them and checks that they verify as the server receives them.
func TestVerifier_JSClient(t *testing.T) {
	t.Parallel()
	const (
		jsKey    = "cHJpbWFyeS1rZXktMDEyMzQ1Njc4OQ==" // base64 of testPrimary
		jsCT     = "application/json; charset=utf-8"
		endpoint = "https://myaccount.westeurope.batch.azure.com"
		api      = "api-version=2022-10-01.16.0"
	)
	if base64.StdEncoding.EncodeToString(testPrimary) != jsKey {
		t.Fatal("jsKey is not the test primary key")
	}

	common := func(extra ...[2]string) [][2]string {
		return append([][2]string{
			{"ocp-date", testDate},
			{"Content-Type", jsCT},
			{"client-request-id", "a2c4b1f0-0000-4000-8000-000000000000"},
			{"return-client-request-id", "false"},
			{"accept", "application/json"},
		}, extra...)
	}
	tests := []struct {
		name    string
		account string
		req     jsRequest
		// wireCL is the Content-Length header the server receives ("-" = none).
		wireCL []string
	}{
		{
			name:    "GetPool",
			account: "myaccount",
			req:     jsRequest{method: "GET", url: endpoint + "/pools/p1?" + api + "&timeout=30", headers: common()},
			wireCL:  []string{"-"},
		},
		{
			name:    "ListJobsFilter",
			account: "myaccount",
			req: jsRequest{method: "GET",
				url:     endpoint + "/jobs?" + api + "&$filter=state%20eq%20'active'&maxresults=10&$select=id,state",
				headers: common()},
			wireCL: []string{"-"},
		},
		{
			name:    "NextLinkWithPlusAndEscapes",
			account: "myaccount",
			req: jsRequest{method: "GET",
				url:     endpoint + "/pools?" + api + "&$skiptoken=abc%2Bdef+x%3D%3D&maxresults=2",
				headers: common()},
			wireCL: []string{"-"},
		},
		{
			name:    "EmptyPostSignsZero",
			account: "myaccount",
			req:     jsRequest{method: "POST", url: endpoint + "/jobs/j1/enable?" + api, headers: common()},
			wireCL:  []string{"0", "-"},
		},
		{
			name:    "PostWithBody",
			account: "myaccount",
			req: jsRequest{method: "POST", url: endpoint + "/jobs?" + api, headers: common(),
				body: `{"id":"j1","poolInfo":{"poolId":"p1"},"displayName":"Jöb"}`},
			wireCL: []string{strconv.Itoa(len(`{"id":"j1","poolInfo":{"poolId":"p1"},"displayName":"Jöb"}`))},
		},
		{
			name:    "DeleteJobIfMatch",
			account: "myaccount",
			req: jsRequest{method: "DELETE", url: endpoint + "/jobs/j1?" + api,
				headers: common([2]string{"If-Match", `"0x8D4EDFEBFADF4AB"`})},
			wireCL: []string{"-"},
		},
		{
			name:    "TaskFileEscapedPathAndRange",
			account: "MyAccount", // as the user typed it
			req: jsRequest{method: "GET",
				url:     endpoint + "/jobs/j1/tasks/t1/files/wd%2Fsub%20dir%2Fout.txt?" + api,
				headers: common([2]string{"ocp-range", "bytes=0-99"})},
			wireCL: []string{"-"},
		},
	}
	for _, tt := range tests {
		for _, cl := range tt.wireCL {
			t.Run(tt.name+"/CL="+cl, func(t *testing.T) {
				t.Parallel()
				b := setupVerifier(t)
				key, err := DecodeKey(jsKey)
				if err != nil {
					t.Fatal(err)
				}
				sts := jsStringToSign(&tt.req, tt.account)

				// The request as a Go server receives it.
				target := tt.req.url[len(endpoint):]
				r := httptest.NewRequest(tt.req.method, target, strings.NewReader(tt.req.body))
				for _, h := range tt.req.headers {
					r.Header.Set(h[0], h[1])
				}
				if cl != "-" {
					r.Header.Set("Content-Length", cl)
				}
				r.Header.Set("Authorization", "SharedKey "+tt.account+":"+Sign(key, sts))

				account, err := b.v.Verify(r)
				if err != nil {
					t.Fatalf("Verify: %v\nJS string to sign: %q", err, sts)
				}
				if account != tt.account {
					t.Errorf("account = %q, want %q", account, tt.account)
				}
			})
		}
	}
}

// TestJSStringToSign_Shape pins the replica to the facts file: ocp-date
// signed, Date empty, Content-Type signed on GET, "0" for an empty POST.
func TestJSStringToSign_Shape(t *testing.T) {
	t.Parallel()
	r := &jsRequest{method: "POST", url: "https://h/jobs/j1/enable?api-version=1",
		headers: [][2]string{{"ocp-date", testDate}, {"Content-Type", "application/json; charset=utf-8"}}}
	want := lines("POST", "", "", "0", "", "application/json; charset=utf-8", "", "", "", "", "", "",
		"ocp-date:"+testDate, "/acct/jobs/j1/enable", "api-version:1")
	if got := jsStringToSign(r, "acct"); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
