package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/api"
	"github.com/kilnbatch/kiln/internal/service"
	"github.com/kilnbatch/kiln/sharedkey"
)

func TestServer_Auth(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("WrongKey", func(t *testing.T) {
		r := b.request(t, "GET", "/pools?api-version="+apiVersion, nil)
		sharedkey.SignRequest(r, testAccount, []byte("not the key"))
		resp, body := send(t, r)
		wantError(t, resp, body, 403, "AuthenticationFailed")
	})
	t.Run("NoAuthorization", func(t *testing.T) {
		resp, body := send(t, b.request(t, "GET", "/pools?api-version="+apiVersion, nil))
		wantError(t, resp, body, 403, "AuthenticationFailed")
	})
	t.Run("WrongKeyWithSDK", func(t *testing.T) {
		opts := &azbatch.ClientOptions{}
		opts.Retry = policy.RetryOptions{MaxRetries: -1}
		c, err := batchclient.New(b.srv.URL, testAccount, base64.StdEncoding.EncodeToString([]byte("other key")), opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetPool(context.Background(), "p1", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 || re.ErrorCode != "AuthenticationFailed" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("AccountNameCaseInsensitive", func(t *testing.T) {
		var got string
		b := setup(t)
		b.ops.poolList = func(account string, _ service.ListParams) (service.ListPage, error) {
			got = account
			return service.ListPage{}, nil
		}
		r := b.request(t, "GET", "/pools?api-version="+apiVersion, nil)
		sharedkey.SignRequest(r, strings.ToUpper(testAccount), testKey)
		resp, body := send(t, r)
		if resp.StatusCode != 200 || got != testAccount {
			t.Fatalf("status %d account %q body %s", resp.StatusCode, got, body)
		}
	})
}

func TestServer_APIVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolList = func(string, service.ListParams) (service.ListPage, error) { return service.ListPage{}, nil }

	resp, body := b.do(t, b.request(t, "GET", "/pools", nil))
	wantError(t, resp, body, 400, "MissingRequiredQueryParameter", "QueryParameterName", "api-version")

	for _, v := range []string{"2024-07-01", "latest", "2024-13-01.20.0", ""} {
		resp, body = b.do(t, b.request(t, "GET", "/pools?api-version="+v, nil))
		wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "api-version", "QueryParameterValue", v)
	}
	resp, body = b.do(t, b.request(t, "GET", "/pools?api-version=2016-02-01.3.0", nil))
	wantError(t, resp, body, 400, "UnsupportedRequestVersion")

	for _, v := range []string{"2018-08-01.7.0", "2020-09-01.12.0", "2022-10-01.16.0", apiVersion} {
		resp, body = b.do(t, b.request(t, "GET", "/pools?api-version="+v, nil))
		if resp.StatusCode != 200 || string(body) != `{"odata.metadata":"`+b.srv.URL+`/$metadata#pools","value":[]}` {
			t.Errorf("api-version %s: status %d body %s", v, resp.StatusCode, body)
		}
	}
}

func TestServer_Bodies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolAdd = func(string, *azbatch.CreatePoolContent) error { return nil }
	post := func(body []byte) (*http.Response, []byte) {
		return b.do(t, b.request(t, "POST", "/pools?api-version="+apiVersion, body))
	}

	t.Run("TooLarge", func(t *testing.T) {
		big := append([]byte(`{"id":"p1","metadata":[{"name":"x","value":"`), bytes.Repeat([]byte("a"), api.MaxBodyBytes)...)
		big = append(big, `"}]}`...)
		resp, body := post(big)
		wantError(t, resp, body, 413, "RequestBodyTooLarge")
	})
	t.Run("TooLargeChunked", func(t *testing.T) {
		r := b.request(t, "POST", "/pools?api-version="+apiVersion, nil)
		r.Body = readCloser{bytes.NewReader(bytes.Repeat([]byte(" "), api.MaxBodyBytes+10))}
		r.ContentLength = -1
		r.Header.Set("Content-Type", "application/json")
		resp, body := b.do(t, r)
		wantError(t, resp, body, 413, "RequestBodyTooLarge")
	})
	t.Run("Malformed", func(t *testing.T) {
		resp, body := post([]byte(`{"id": "p1",`))
		e := wantError(t, resp, body, 400, "InvalidRequestBody")
		if e.value("Reason") == "" {
			t.Errorf("no Reason: %s", body)
		}
	})
	t.Run("WrongType", func(t *testing.T) {
		resp, body := post([]byte(`{"id": 7}`))
		wantError(t, resp, body, 400, "InvalidRequestBody")
	})
	t.Run("NotAnObject", func(t *testing.T) {
		resp, body := post([]byte(`[1,2]`))
		wantError(t, resp, body, 400, "InvalidRequestBody")
	})
	t.Run("Empty", func(t *testing.T) {
		resp, body := post([]byte{})
		wantError(t, resp, body, 400, "InvalidRequestBody")
	})
	t.Run("NotJSON", func(t *testing.T) {
		r := b.request(t, "POST", "/pools?api-version="+apiVersion, []byte(`{"id":"p1"}`))
		r.Header.Set("Content-Type", "text/xml")
		resp, body := b.do(t, r)
		wantError(t, resp, body, 400, "InvalidHeaderValue", "HeaderName", "Content-Type")
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestServer_BadFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.do(t, b.request(t, "GET", "/pools?api-version="+apiVersion+"&$filter=state%20eq", nil))
	e := wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "$filter", "QueryParameterValue", "state eq")
	if e.value("Reason") == "" {
		t.Errorf("no Reason: %s", body)
	}
	resp, body = b.do(t, b.request(t, "GET", "/pools?api-version="+apiVersion+"&maxresults=1001", nil))
	wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "maxresults")
	resp, body = b.do(t, b.request(t, "GET", "/pools?api-version="+apiVersion+"&maxresults=zero", nil))
	wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "maxresults")
}

func TestServer_Routes(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, body := b.do(t, b.request(t, "GET", "/pools/p1/nodes/n1/rdp?api-version="+apiVersion, nil))
	wantError(t, resp, body, 501, "NotImplemented", "Operation", "ComputeNode_GetRemoteDesktop")

	resp, body = b.do(t, b.request(t, "PUT", "/certificates(thumbprintAlgorithm=sha1,thumbprint=abc)?api-version="+apiVersion, []byte(`{}`)))
	wantError(t, resp, body, 405, "UnsupportedHttpVerb")
	resp, body = b.do(t, b.request(t, "GET", "/certificates(thumbprint=abc)?api-version="+apiVersion, nil))
	wantError(t, resp, body, 400, "InvalidUri")

	resp, body = b.do(t, b.request(t, "GET", "/nothing/here?api-version="+apiVersion, nil))
	wantError(t, resp, body, 400, "InvalidUri")

	resp, body = b.do(t, b.request(t, "PUT", "/pools/p1?api-version="+apiVersion, []byte(`{}`)))
	wantError(t, resp, body, 405, "UnsupportedHttpVerb")
	if allow := resp.Header.Get("Allow"); allow != "GET, HEAD, POST, PATCH, DELETE" && allow != "GET, HEAD, PATCH, DELETE" {
		t.Errorf("Allow = %q", allow)
	}
}

func TestServer_PanicIs500(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// JobGet is not implemented by the fake: calling it panics.
	resp, body := b.do(t, b.request(t, "GET", "/jobs/j1?api-version="+apiVersion, nil))
	wantError(t, resp, body, 500, "InternalError")
	if !strings.Contains(b.logs.String(), "panic") {
		t.Errorf("panic not logged: %s", b.logs.String())
	}
}

func TestServer_ClientRequestID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolList = func(string, service.ListParams) (service.ListPage, error) { return service.ListPage{}, nil }
	r := b.request(t, "GET", "/pools?api-version="+apiVersion, nil)
	r.Header["client-request-id"] = []string{"9C4D50EE-2D56-4CD3-8152-34347DC9F2B0"}
	resp, _ := b.do(t, r)
	if resp.Header.Get("client-request-id") != "" {
		t.Errorf("client-request-id echoed without return-client-request-id")
	}
	r = b.request(t, "GET", "/pools?api-version="+apiVersion, nil)
	r.Header["client-request-id"] = []string{"9C4D50EE-2D56-4CD3-8152-34347DC9F2B0"}
	r.Header["return-client-request-id"] = []string{"true"}
	resp, _ = b.do(t, r)
	if got := resp.Header.Get("client-request-id"); got != "9C4D50EE-2D56-4CD3-8152-34347DC9F2B0" {
		t.Errorf("client-request-id = %q", got)
	}
	if a, b2 := resp.Header.Get("request-id"), resp.Header.Get("request-id"); a == "" || a != b2 {
		t.Errorf("request-id = %q", a)
	}
}

func TestServer_HealthAndAgent(t *testing.T) {
	t.Parallel()
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte(r.URL.Path))
	})
	b := setupWith(t, api.Config{AgentHandler: agent})
	resp, body := send(t, b.request(t, "GET", "/healthz", nil))
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	resp, body = send(t, b.request(t, "POST", "/agent/v1/sync", []byte(`{}`)))
	if resp.StatusCode != http.StatusTeapot || string(body) != "/agent/v1/sync" {
		t.Errorf("agent: %d %q", resp.StatusCode, body)
	}
}
