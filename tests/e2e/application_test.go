package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// appZip builds a package: bin/hello.sh (executable) printing msg.
func appZip(t testing.TB, msg string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bin/hello.sh", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("#!/bin/sh\necho " + msg + "\n"))
	w, _ = zw.Create("README.txt")
	w.Write([]byte("package " + msg))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appRequest sends a signed Kiln management request.
func (s *Server) appRequest(t testing.TB, method, path, contentType string, body []byte) poolRawResponse {
	t.Helper()
	req := s.poolRawRequest(t, method, path+"?api-version=2024-07-01.20.0", body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	poolSign(t, req, "")
	return poolDo(t, req)
}

// appCreate creates an application with versions (zip per version) and a
// default version.
func (s *Server) appCreate(t testing.TB, id, defaultVersion string, versions map[string][]byte) {
	t.Helper()
	if r := s.appRequest(t, http.MethodPut, "/kiln/applications/"+id, "application/json", []byte(`{"displayName":"`+id+` app"}`)); r.Status != http.StatusCreated {
		t.Fatalf("create application %s: %d %s", id, r.Status, r.Body)
	}
	for v, z := range versions {
		if r := s.appRequest(t, http.MethodPut, "/kiln/applications/"+id+"/versions/"+v, "application/zip", z); r.Status != http.StatusCreated {
			t.Fatalf("upload %s %s: %d %s", id, v, r.Status, r.Body)
		}
	}
	if defaultVersion != "" {
		if r := s.appRequest(t, http.MethodPut, "/kiln/applications/"+id, "application/json", []byte(`{"defaultVersion":"`+defaultVersion+`"}`)); r.Status != http.StatusOK {
			t.Fatalf("set default version of %s: %d %s", id, r.Status, r.Body)
		}
	}
}

// TestApplicationPackages: packages uploaded once, listed by the data-plane
// API, installed on pool nodes when they join and before tasks that need
// them, once per node and version, with Azure's environment variables.
func TestApplicationPackages(t *testing.T) {
	s := StartServer(t, nil)
	s.appCreate(t, "hello", "1.0", map[string][]byte{"1.0": appZip(t, "hello-1.0"), "2.0": appZip(t, "hello-2.0")})
	s.appCreate(t, "my-tool", "", map[string][]byte{"3.1": appZip(t, "tool-3.1")})

	// The data plane lists them as Azure does.
	pager := s.Client.NewListApplicationsPager(nil)
	var ids []string
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Value {
			ids = append(ids, *a.ID)
		}
	}
	if strings.Join(ids, ",") != "hello,my-tool" {
		t.Fatalf("applications: %v", ids)
	}
	app, err := s.Client.GetApplication(ctx(t), "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *app.DisplayName != "hello app" || len(app.Versions) != 2 || app.Versions[0] != "1.0" || app.Versions[1] != "2.0" {
		t.Fatalf("application: %+v", app)
	}
	_, err = s.Client.GetApplication(ctx(t), "nosuch", nil)
	jobAzureError(t, err, http.StatusNotFound, "ApplicationNotFound")

	// A pool naming a missing package is refused.
	bad := poolContent("badapps", 1, 1)
	bad.ApplicationPackageReferences = []azbatch.ApplicationPackageReference{{ApplicationID: to("nosuch")}}
	_, err = s.Client.CreatePool(ctx(t), bad, nil)
	jobAzureError(t, err, http.StatusConflict, "InvalidApplicationPackageReferences")

	// The pool's package (default version) is installed before the start
	// task, which runs it.
	s.CreatePool(t, "apps", 1, 4, func(c *azbatch.CreatePoolContent) {
		c.ApplicationPackageReferences = []azbatch.ApplicationPackageReference{{ApplicationID: to("hello")}}
		c.StartTask = &azbatch.StartTask{CommandLine: to(`/bin/sh -c '"$AZ_BATCH_APP_PACKAGE_hello/bin/hello.sh"'`), WaitForSuccess: to(true)}
	})
	s.WaitNodes(t, "apps", 1, azbatch.NodeStateIdle)
	nodeID := s.poolNodeIDs(t, "apps")[0]
	out, err := s.poolReadNodeFile(t, "apps", nodeID, "startup/stdout.txt")
	if err != nil || out != "hello-1.0\n" {
		t.Fatalf("start task output %q, %v", out, err)
	}

	// Tasks see the pool's package and their own; four tasks share one
	// installation of my-tool 3.1.
	s.CreateJob(t, "appjob", "apps", nil)
	var tasks []azbatch.CreateTaskContent
	for _, id := range []string{"a", "b", "c", "d"} {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(id), CommandLine: to(`/bin/sh -c '"$AZ_BATCH_APP_PACKAGE_my_tool_3_1/bin/hello.sh" && "$AZ_BATCH_APP_PACKAGE_hello/bin/hello.sh" && env'`),
			ApplicationPackageReferences: []azbatch.ApplicationPackageReference{{ApplicationID: to("my-tool"), Version: to("3.1")}}})
	}
	tasks = append(tasks,
		azbatch.CreateTaskContent{ID: to("nodefault"), CommandLine: to("true"), ApplicationPackageReferences: []azbatch.ApplicationPackageReference{{ApplicationID: to("my-tool")}}},
		azbatch.CreateTaskContent{ID: to("noversion"), CommandLine: to("true"), ApplicationPackageReferences: []azbatch.ApplicationPackageReference{{ApplicationID: to("hello"), Version: to("9.9")}}},
	)
	s.AddTasks(t, "appjob", tasks)
	s.WaitJobTasks(t, "appjob", 2*time.Minute)
	for _, id := range []string{"a", "b", "c", "d"} {
		task := taskGet(t, s, "appjob", id)
		if *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("task %s: %s", id, describeTask(task))
		}
		out := taskMustReadFile(t, s, "appjob", id, "stdout.txt")
		if !strings.HasPrefix(out, "tool-3.1\nhello-1.0\n") {
			t.Fatalf("task %s output: %q", id, out)
		}
		env := taskEnvOf(out)
		if env["AZ_BATCH_APP_PACKAGE_hello_1_0"] == "" || env["AZ_BATCH_APP_PACKAGE_hello"] != env["AZ_BATCH_APP_PACKAGE_hello_1_0"] {
			t.Fatalf("task %s: hello variables %q %q", id, env["AZ_BATCH_APP_PACKAGE_hello"], env["AZ_BATCH_APP_PACKAGE_hello_1_0"])
		}
		if _, ok := env["AZ_BATCH_APP_PACKAGE_my_tool"]; ok {
			t.Fatalf("task %s: my-tool has no default version but AZ_BATCH_APP_PACKAGE_my_tool is set", id)
		}
	}
	for _, id := range []string{"nodefault", "noversion"} {
		task := taskGet(t, s, "appjob", id)
		fi := task.ExecutionInfo.FailureInfo
		if fi == nil || *fi.Code != "ApplicationPackageError" || *fi.Category != azbatch.ErrorCategoryUserError {
			t.Fatalf("task %s: %s, want ApplicationPackageError", id, describeTask(task))
		}
	}
	// One directory per package version on the node.
	installed, _ := filepath.Glob(filepath.Join(taskNodeRoot(s, nodeID), "applications", "*"))
	var names []string
	for _, d := range installed {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			names = append(names, filepath.Base(d))
		}
	}
	if len(names) != 2 {
		t.Fatalf("installed packages on the node: %v, want hello 1.0 and my-tool 3.1", names)
	}

	// A version uploaded again reaches the node that has the old copy.
	if r := s.appRequest(t, http.MethodPut, "/kiln/applications/my-tool/versions/3.1", "application/zip", appZip(t, "tool-3.1-fixed")); r.Status != http.StatusCreated {
		t.Fatalf("upload my-tool 3.1 again: %d %s", r.Status, r.Body)
	}
	taskAdd(t, s, "appjob", azbatch.CreateTaskContent{ID: to("again"), CommandLine: to(`/bin/sh -c '"$AZ_BATCH_APP_PACKAGE_my_tool_3_1/bin/hello.sh"'`),
		ApplicationPackageReferences: []azbatch.ApplicationPackageReference{{ApplicationID: to("my-tool"), Version: to("3.1")}}})
	again := taskWaitState(t, s, "appjob", "again", azbatch.TaskStateCompleted, time.Minute)
	if out := taskMustReadFile(t, s, "appjob", "again", "stdout.txt"); out != "tool-3.1-fixed\n" {
		t.Fatalf("after a new upload of my-tool 3.1 the task ran %q (%s)", out, describeTask(again))
	}

	// Management errors: unknown application, updates of existing versions
	// when not allowed.
	if r := s.appRequest(t, http.MethodPut, "/kiln/applications/nosuch/versions/1.0", "application/zip", appZip(t, "x")); r.Status != http.StatusNotFound {
		t.Fatalf("upload to a missing application: %d %s", r.Status, r.Body)
	}
	if r := s.appRequest(t, http.MethodPut, "/kiln/applications/hello", "application/json", []byte(`{"allowUpdates":false}`)); r.Status != http.StatusOK {
		t.Fatalf("allowUpdates false: %d %s", r.Status, r.Body)
	}
	r := s.appRequest(t, http.MethodPut, "/kiln/applications/hello/versions/1.0", "application/zip", appZip(t, "again"))
	var e struct{ Code string }
	json.Unmarshal(r.Body, &e)
	if r.Status != http.StatusConflict || e.Code != "ApplicationPackageUpdatesNotAllowed" {
		t.Fatalf("replace a version without allowUpdates: %d %s", r.Status, r.Body)
	}
}
