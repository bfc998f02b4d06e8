package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/service"
)

const (
	nodeSecret = "node-secret"
	taskDir    = "workitems/job1/job-1/task1"
)

// setupFiles starts a real agent file server over a temporary node root
// holding one task directory, and points TaskFiles and NodeFiles at it.
func setupFiles(t *testing.T) (*testBundle, string) {
	t.Helper()
	b := setup(t)
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(taskDir+"/stdout.txt", "hello from stdout\n")
	write(taskDir+"/stderr.txt", "")
	write(taskDir+"/wd/sub dir/out.txt", "0123456789")
	write(taskDir+"/wd/a.bin", "\x00\x01")
	fs, err := fileserver.New(root, func() string { return nodeSecret })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	fsrv := httptest.NewServer(fs)
	t.Cleanup(fsrv.Close)
	b.ops.taskFiles = func(account, jobID, taskID string) (service.FileTarget, error) {
		if account != testAccount || jobID != "job1" || taskID != "task1" {
			t.Errorf("TaskFiles(%q, %q, %q)", account, jobID, taskID)
		}
		return service.FileTarget{ServerURL: fsrv.URL, Secret: nodeSecret, Dir: taskDir}, nil
	}
	b.ops.nodeFiles = func(account, poolID, nodeID string) (service.FileTarget, error) {
		return service.FileTarget{ServerURL: fsrv.URL, Secret: nodeSecret}, nil
	}
	return b, root
}

func TestFiles_GetWithSDK(t *testing.T) {
	t.Parallel()
	b, _ := setupFiles(t)
	ctx := context.Background()

	resp, err := b.client.GetTaskFile(ctx, "job1", "task1", "wd/sub dir/out.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(data) != "0123456789" {
		t.Fatalf("content %q, %v", data, err)
	}
	wantURL := b.srv.URL + "/jobs/job1/tasks/task1/files/wd%2Fsub%20dir%2Fout.txt"
	if resp.ContentLength == nil || *resp.ContentLength != 10 ||
		resp.OCPBatchFileIsDirectory == nil || *resp.OCPBatchFileIsDirectory ||
		resp.OCPBatchFileURL == nil || *resp.OCPBatchFileURL != wantURL ||
		resp.OCPCreationTime == nil || resp.LastModified == nil ||
		resp.ContentType == nil || *resp.ContentType != "text/plain" ||
		resp.OCPBatchFileMode == nil || *resp.OCPBatchFileMode != "0100644" {
		t.Errorf("headers: len %v dir %v url %v created %v modified %v type %v mode %v",
			resp.ContentLength, resp.OCPBatchFileIsDirectory, resp.OCPBatchFileURL, resp.OCPCreationTime,
			resp.LastModified, resp.ContentType, resp.OCPBatchFileMode)
	}

	// ocp-range answers 200 (the SDK accepts nothing else) with the range.
	resp, err = b.client.GetTaskFile(ctx, "job1", "task1", "wd/sub dir/out.txt", &azbatch.GetTaskFileOptions{OCPRange: ptr("bytes=2-4")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(data) != "234" || *resp.ContentLength != 3 {
		t.Errorf("range content %q length %v", data, *resp.ContentLength)
	}

	// The standard Range header answers 206.
	r := b.request(t, "GET", "/jobs/job1/tasks/task1/files/wd%2Fsub%20dir%2Fout.txt?api-version="+apiVersion, nil)
	r.Header.Set("Range", "bytes=8-")
	raw, body := b.do(t, r)
	if raw.StatusCode != http.StatusPartialContent || string(body) != "89" || raw.Header.Get("Content-Range") != "bytes 8-9/10" {
		t.Errorf("Range: %d %q %v", raw.StatusCode, body, raw.Header)
	}

	// Unescaped slashes in the path work too.
	raw, body = b.do(t, b.request(t, "GET", "/jobs/job1/tasks/task1/files/wd/sub%20dir/out.txt?api-version="+apiVersion, nil))
	if raw.StatusCode != 200 || string(body) != "0123456789" {
		t.Errorf("unescaped path: %d %q", raw.StatusCode, body)
	}

	props, err := b.client.GetTaskFileProperties(ctx, "job1", "task1", "wd", nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.OCPBatchFileIsDirectory == nil || !*props.OCPBatchFileIsDirectory {
		t.Errorf("wd is not a directory: %+v", props)
	}
	props, err = b.client.GetTaskFileProperties(ctx, "job1", "task1", "stdout.txt", nil)
	if err != nil || *props.ContentLength != 18 || *props.OCPBatchFileIsDirectory {
		t.Errorf("stdout.txt properties %+v, %v", props, err)
	}
}

func TestFiles_Errors(t *testing.T) {
	t.Parallel()
	b, _ := setupFiles(t)

	_, err := b.client.GetTaskFile(context.Background(), "job1", "task1", "nope.txt", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "FileNotFound" {
		t.Fatalf("missing file: %v", err)
	}
	resp, body := b.do(t, b.request(t, "GET", "/jobs/job1/tasks/task1/files/..%2F..%2Fjob-2?api-version="+apiVersion, nil))
	wantError(t, resp, body, 400, "InvalidInput")
	resp, body = b.do(t, b.request(t, "GET", "/jobs/job1/tasks/task1/files/wd?api-version="+apiVersion, nil))
	wantError(t, resp, body, 400, "InvalidInput")
	resp, body = b.do(t, b.request(t, "HEAD", "/jobs/job1/tasks/task1/files/nope?api-version="+apiVersion, nil))
	if resp.StatusCode != 404 || len(body) != 0 {
		t.Errorf("HEAD missing: %d %q", resp.StatusCode, body)
	}
	r := b.request(t, "GET", "/jobs/job1/tasks/task1/files/stdout.txt?api-version="+apiVersion, nil)
	r.Header.Set("ocp-range", "bytes=100-200")
	resp, body = b.do(t, r)
	wantError(t, resp, body, 416, "InvalidRange")

	// The node's file server is gone.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	b.ops.taskFiles = func(string, string, string) (service.FileTarget, error) {
		return service.FileTarget{ServerURL: dead.URL, Secret: nodeSecret, Dir: taskDir}, nil
	}
	resp, body = b.do(t, b.request(t, "GET", "/jobs/job1/tasks/task1/files/stdout.txt?api-version="+apiVersion, nil))
	wantError(t, resp, body, 409, "OperationNotValidOnNode")
}

func TestFiles_ListWithSDK(t *testing.T) {
	t.Parallel()
	b, _ := setupFiles(t)
	ctx := context.Background()

	list := func(opts *azbatch.ListTaskFilesOptions) ([]azbatch.NodeFile, int) {
		t.Helper()
		pager := b.client.NewListTaskFilesPager("job1", "task1", opts)
		var out []azbatch.NodeFile
		pages := 0
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			out = append(out, page.Value...)
		}
		return out, pages
	}
	names := func(files []azbatch.NodeFile) []string {
		var out []string
		for _, f := range files {
			out = append(out, *f.Name)
		}
		slices.Sort(out)
		return out
	}

	files, _ := list(nil)
	if got := strings.Join(names(files), ","); got != "stderr.txt,stdout.txt,wd" {
		t.Errorf("top level: %s", got)
	}
	files, pages := list(&azbatch.ListTaskFilesOptions{Recursive: ptr(true), Filter: ptr("startswith(name,'wd/')"), MaxResults: ptr(int32(2))})
	if got := strings.Join(names(files), ","); got != "wd/a.bin,wd/sub dir,wd/sub dir/out.txt" || pages != 2 {
		t.Errorf("recursive wd/ in %d pages: %s", pages, got)
	}
	for _, f := range files {
		if *f.Name == "wd/sub dir/out.txt" {
			if *f.IsDirectory || *f.Properties.ContentLength != 10 || *f.Properties.ContentType != "text/plain" ||
				*f.URL != b.srv.URL+"/jobs/job1/tasks/task1/files/wd%2Fsub%20dir%2Fout.txt" || f.Properties.LastModified == nil {
				t.Errorf("out.txt = %+v %+v", f, f.Properties)
			}
		}
		if *f.Name == "wd/sub dir" && !*f.IsDirectory {
			t.Errorf("sub dir is not a directory")
		}
	}
	files, _ = list(&azbatch.ListTaskFilesOptions{Recursive: ptr(true), Filter: ptr("properties/contentLength gt 5 and isDirectory eq false")})
	if got := strings.Join(names(files), ","); got != "stdout.txt,wd/sub dir/out.txt" {
		t.Errorf("contentLength gt 5: %s", got)
	}

	// Older api-versions get contentLength as a number, as their spec says.
	_, body := b.do(t, b.request(t, "GET", "/jobs/job1/tasks/task1/files?api-version=2022-10-01.16.0&$filter=name%20eq%20'stdout.txt'", nil))
	var page struct {
		Metadata string `json:"odata.metadata"`
		Value    []struct {
			Properties struct {
				ContentLength json.Number `json:"contentLength"`
			} `json:"properties"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if page.Metadata != b.srv.URL+"/$metadata#files" || len(page.Value) != 1 || !strings.Contains(string(body), `"contentLength":18`) {
		t.Errorf("old api-version list: %s", body)
	}

	// Node files are relative to the node root.
	npager := b.client.NewListNodeFilesPager("pool1", "node1", nil)
	npage, err := npager.NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(npage.Value) != 1 || *npage.Value[0].Name != "workitems" || *npage.Value[0].URL != b.srv.URL+"/pools/pool1/nodes/node1/files/workitems" {
		t.Errorf("node files: %+v", npage.Value)
	}
	nresp, err := b.client.GetNodeFile(ctx, "pool1", "node1", taskDir+"/stdout.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(nresp.Body)
	nresp.Body.Close()
	if string(data) != "hello from stdout\n" {
		t.Errorf("node file content %q", data)
	}
}

func TestFiles_Delete(t *testing.T) {
	t.Parallel()
	b, root := setupFiles(t)
	ctx := context.Background()

	_, err := b.client.DeleteTaskFile(ctx, "job1", "task1", "wd", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 || re.ErrorCode != "OperationInvalidForCurrentState" {
		t.Fatalf("delete non-empty dir: %v", err)
	}
	if _, err := b.client.DeleteTaskFile(ctx, "job1", "task1", "wd/a.bin", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.DeleteTaskFile(ctx, "job1", "task1", "wd", &azbatch.DeleteTaskFileOptions{Recursive: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, taskDir, "wd")); !os.IsNotExist(err) {
		t.Errorf("wd still there: %v", err)
	}
	resp, body := b.do(t, b.request(t, "DELETE", "/jobs/job1/tasks/task1/files/%2E?api-version="+apiVersion+"&recursive=true", nil))
	wantError(t, resp, body, 400, "InvalidInput")
	if _, err := os.Stat(filepath.Join(root, taskDir, "stdout.txt")); err != nil {
		t.Errorf("task directory damaged: %v", err)
	}
}
