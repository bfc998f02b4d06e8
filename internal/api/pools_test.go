package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

var lastModified = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func poolObject(id string) service.Object {
	return service.Object{
		Doc:          []byte(fmt.Sprintf(`{"id":%q,"state":"active","vmSize":"standard_d2s_v3","targetDedicatedNodes":2}`, id)),
		ETag:         "0x8DC" + strings.ToUpper(id),
		LastModified: lastModified,
	}
}

func TestPool_AddWithSDK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got *azbatch.CreatePoolContent
	var gotAccount string
	b.ops.poolAdd = func(account string, c *azbatch.CreatePoolContent) error {
		gotAccount, got = account, c
		return nil
	}
	resp, err := b.client.CreatePool(context.Background(), azbatch.CreatePoolContent{
		ID:     ptr("pool 1"),
		VMSize: ptr("standard_d2s_v3"),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			NodeAgentSKUID: ptr("batch.node.ubuntu 22.04"),
			ImageReference: &azbatch.ImageReference{Publisher: ptr("canonical")},
		},
		TargetDedicatedNodes: ptr(int32(2)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gotAccount != testAccount || got == nil || *got.ID != "pool 1" || *got.TargetDedicatedNodes != 2 ||
		*got.VirtualMachineConfiguration.NodeAgentSKUID != "batch.node.ubuntu 22.04" {
		t.Fatalf("service got account %q, content %+v", gotAccount, got)
	}
	if resp.DataServiceID == nil || *resp.DataServiceID != b.srv.URL+"/pools/pool%201" {
		t.Errorf("DataServiceId = %v", resp.DataServiceID)
	}
	if resp.RequestID == nil || len(*resp.RequestID) != 36 {
		t.Errorf("request-id = %v", resp.RequestID)
	}
}

func TestPool_AddAnswers201WithLocation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolAdd = func(string, *azbatch.CreatePoolContent) error { return nil }
	resp, body := b.do(t, b.request(t, "POST", "/pools?api-version="+apiVersion, []byte(`{"id":"p1","vmSize":"x"}`)))
	if resp.StatusCode != http.StatusCreated || len(body) != 0 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); loc != b.srv.URL+"/pools/p1" {
		t.Errorf("Location = %q", loc)
	}
	if resp.Header.Get("DataServiceVersion") != "3.0" || resp.Header.Get("request-id") == "" {
		t.Errorf("headers %v", resp.Header)
	}
}

func TestPool_GetWithSDK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolGet = func(account, id string, cond service.Conditions) (service.Object, error) {
		if id != "p1" {
			return service.Object{}, batch.ErrPoolNotFound
		}
		return poolObject(id), nil
	}
	resp, err := b.client.GetPool(context.Background(), "p1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *resp.ID != "p1" || *resp.State != azbatch.PoolStateActive || *resp.TargetDedicatedNodes != 2 {
		t.Errorf("pool = %+v", resp.Pool)
	}
	if resp.ETag == nil || *resp.ETag != "0x8DCP1" {
		t.Errorf("ETag = %v", resp.ETag)
	}
	if resp.LastModified == nil || !resp.LastModified.Equal(lastModified) {
		t.Errorf("Last-Modified = %v", resp.LastModified)
	}

	// The raw answer carries odata.metadata first, then the document.
	r, body := b.do(t, b.request(t, "GET", "/pools/p1?api-version="+apiVersion, nil))
	want := `{"odata.metadata":"` + b.srv.URL + `/$metadata#pools/@Element","id":"p1","state":"active","vmSize":"standard_d2s_v3","targetDedicatedNodes":2}`
	if string(body) != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json;odata=minimalmetadata" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestPool_GetSelect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolGet = func(string, string, service.Conditions) (service.Object, error) { return poolObject("p1"), nil }
	_, body := b.do(t, b.request(t, "GET", "/pools/p1?api-version="+apiVersion+"&$select=id,targetDedicatedNodes&$expand=stats", nil))
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m["id"] != "p1" || m["targetDedicatedNodes"] != 2.0 || m["odata.metadata"] == nil {
		t.Errorf("selected = %v", m)
	}

	resp, body := b.do(t, b.request(t, "GET", "/pools/p1?api-version="+apiVersion+"&$select=id,,x", nil))
	wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "$select")
}

func TestPool_GetConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got service.Conditions
	b.ops.poolGet = func(_, _ string, cond service.Conditions) (service.Object, error) {
		got = cond
		return service.Object{}, &batch.Error{Code: "ConditionNotMet", Status: http.StatusNotModified, Message: "not modified"}
	}
	r := b.request(t, "GET", "/pools/p1?api-version="+apiVersion, nil)
	r.Header.Set("If-None-Match", "0x8DCP1")
	r.Header.Set("If-Modified-Since", lastModified.Format(http.TimeFormat))
	resp, body := b.do(t, r)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if got.IfNoneMatch != "0x8DCP1" || !got.IfModifiedSince.Equal(lastModified) {
		t.Errorf("conditions = %+v", got)
	}

	r = b.request(t, "GET", "/pools/p1?api-version="+apiVersion, nil)
	r.Header.Set("If-Modified-Since", "yesterday")
	resp, body = b.do(t, r)
	wantError(t, resp, body, 400, "InvalidHeaderValue", "HeaderName", "If-Modified-Since")
}

func TestPool_ErrorMappingWithSDK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolGet = func(string, string, service.Conditions) (service.Object, error) {
		return service.Object{}, batch.ErrPoolNotFound.With("id", "nope")
	}
	_, err := b.client.GetPool(context.Background(), "nope", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "PoolNotFound" || re.StatusCode != 404 {
		t.Fatalf("err = %v", err)
	}
	resp, body := b.do(t, b.request(t, "GET", "/pools/nope?api-version="+apiVersion, nil))
	e := wantError(t, resp, body, 404, "PoolNotFound", "id", "nope")
	if !strings.HasPrefix(e.Message.Value, "The specified pool does not exist.\nRequestId:") {
		t.Errorf("message = %q", e.Message.Value)
	}
}

func TestPool_Exists(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolGet = func(_, id string, _ service.Conditions) (service.Object, error) {
		if id == "p1" {
			return poolObject(id), nil
		}
		return service.Object{}, batch.ErrPoolNotFound
	}
	resp, body := b.do(t, b.request(t, "HEAD", "/pools/p1?api-version="+apiVersion, nil))
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("ETag") != "0x8DCP1" {
		t.Fatalf("status %d body %q headers %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = b.do(t, b.request(t, "HEAD", "/pools/p2?api-version="+apiVersion, nil))
	if resp.StatusCode != 404 || len(body) != 0 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	ex, err := b.client.PoolExists(context.Background(), "p1", nil)
	if err != nil || ex.ETag == nil {
		t.Fatalf("PoolExists = %+v, %v", ex, err)
	}
	if _, err := b.client.PoolExists(context.Background(), "p2", nil); err != nil {
		t.Fatalf("PoolExists(missing) = %v", err)
	}
}

func TestPool_ListPagingWithSDK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls []service.ListParams
	b.ops.poolList = func(account string, p service.ListParams) (service.ListPage, error) {
		calls = append(calls, p)
		switch p.Cursor {
		case "":
			return service.ListPage{Items: []service.Object{poolObject("a"), poolObject("b")}, Next: "after b/+="}, nil
		case "after b/+=":
			return service.ListPage{Items: []service.Object{poolObject("c")}}, nil
		}
		return service.ListPage{}, batch.InvalidQuery("$skiptoken", p.Cursor, "")
	}
	pager := b.client.NewListPoolsPager(&azbatch.ListPoolsOptions{
		Filter:      ptr("startswith(id,'a') or state eq 'active'"),
		MaxResults:  ptr(int32(2)),
		SelectParam: []string{"id", "state"},
	})
	var ids []string
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, p := range page.Value {
			ids = append(ids, *p.ID)
			if p.VMSize != nil {
				t.Errorf("$select ignored: %+v", p)
			}
		}
	}
	if pages != 2 || strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("pages %d ids %v", pages, ids)
	}
	if len(calls) != 2 || calls[0].Limit != 2 || calls[1].Limit != 2 || calls[0].Filter == nil || calls[1].Filter == nil ||
		calls[1].Filter.Source() != "startswith(id,'a') or state eq 'active'" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestPool_ListNextLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolList = func(string, service.ListParams) (service.ListPage, error) {
		return service.ListPage{Items: []service.Object{poolObject("a")}, Next: "n 2"}, nil
	}
	r := b.request(t, "GET", "/pools?api-version="+apiVersion+"&maxresults=1&%24skiptoken=old&timeout=30", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	resp, body := b.do(t, r)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var page struct {
		Metadata string            `json:"odata.metadata"`
		Value    []json.RawMessage `json:"value"`
		Next     string            `json:"odata.nextLink"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(b.srv.URL, "http://")
	if page.Metadata != "https://"+host+"/$metadata#pools" || len(page.Value) != 1 {
		t.Errorf("page = %s", body)
	}
	want := "https://" + host + "/pools?api-version=" + apiVersion + "&maxresults=1&timeout=30&$skiptoken=n+2"
	if page.Next != want {
		t.Errorf("nextLink = %q, want %q", page.Next, want)
	}
}

func TestPool_Patch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got service.Conditions
	b.ops.poolPatch = func(_, id string, c *azbatch.UpdatePoolContent, cond service.Conditions) (service.Object, error) {
		got = cond
		if c.StartTask == nil || *c.StartTask.CommandLine != "echo hi" {
			t.Errorf("content = %+v", c)
		}
		return poolObject(id), nil
	}
	resp, err := b.client.UpdatePool(context.Background(), "p1", azbatch.UpdatePoolContent{
		StartTask: &azbatch.StartTask{CommandLine: ptr("echo hi")},
	}, &azbatch.UpdatePoolOptions{IfMatch: ptr(azcore.ETag("0x1"))})
	if err != nil {
		t.Fatal(err)
	}
	if got.IfMatch != "0x1" || resp.ETag == nil || *resp.ETag != "0x8DCP1" {
		t.Errorf("cond %+v resp %+v", got, resp)
	}
}

func TestPool_NodeCountsAndImages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ops.poolNodeCounts = func(_ string, p service.ListParams) ([]azbatch.PoolNodeCounts, error) {
		var out []azbatch.PoolNodeCounts
		for i := range 12 {
			out = append(out, azbatch.PoolNodeCounts{PoolID: ptr(fmt.Sprintf("p%02d", i)),
				Dedicated: &azbatch.NodeCounts{Idle: ptr(int32(i))}})
		}
		return out, nil
	}
	pager := b.client.NewListPoolNodeCountsPager(nil)
	n, pages := 0, 0
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		n += len(page.Value)
	}
	if n != 12 || pages != 2 {
		t.Errorf("%d counts in %d pages", n, pages)
	}
	resp, body := b.do(t, b.request(t, "GET", "/nodecounts?api-version="+apiVersion+"&maxresults=11", nil))
	wantError(t, resp, body, 400, "InvalidQueryParameterValue", "QueryParameterName", "maxresults")

	b.ops.supportedImages = func() []azbatch.SupportedImage {
		return []azbatch.SupportedImage{
			{NodeAgentSKUID: ptr("batch.node.ubuntu 22.04"), OSType: ptr(azbatch.OSTypeLinux)},
			{NodeAgentSKUID: ptr("batch.node.windows amd64"), OSType: ptr(azbatch.OSTypeWindows)},
		}
	}
	ipager := b.client.NewListSupportedImagesPager(&azbatch.ListSupportedImagesOptions{Filter: ptr("osType eq 'linux'")})
	page, err := ipager.NextPage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 1 || *page.Value[0].NodeAgentSKUID != "batch.node.ubuntu 22.04" || ipager.More() {
		t.Errorf("images = %+v", page.Value)
	}
}
