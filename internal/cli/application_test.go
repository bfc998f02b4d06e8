package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/sharedkey"
)

// fakeKiln serves the application routes the way the Kiln server is to:
// every request must pass sharedkey's Verifier with the key of account
// "acct" (the one runCLI and runApp use), and carry the api-version.
type fakeKiln struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	apps     map[string]*fakeApp
	requests []fakeRequest
}

type fakeApp struct {
	ID             string   `json:"id"`
	DisplayName    string   `json:"displayName"`
	DefaultVersion string   `json:"defaultVersion,omitempty"`
	AllowUpdates   bool     `json:"allowUpdates"`
	Versions       []string `json:"versions"`
}

// fakeRequest is a request as the server received it.
type fakeRequest struct {
	method, path, contentType string
	contentLength             int64
	body                      []byte // JSON bodies
	sum                       [32]byte
	size                      int64
}

func newFakeKiln(t *testing.T) *fakeKiln {
	f := &fakeKiln{t: t, apps: map[string]*fakeApp{}}
	v := &sharedkey.Verifier{Keys: func(account string) ([][]byte, bool) {
		return [][]byte{[]byte("secret")}, account == "acct"
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kiln/applications/{app}", f.putApp)
	mux.HandleFunc("DELETE /kiln/applications/{app}", f.deleteApp)
	mux.HandleFunc("PUT /kiln/applications/{app}/versions/{version}", f.putVersion)
	mux.HandleFunc("DELETE /kiln/applications/{app}/versions/{version}", f.deleteVersion)
	mux.HandleFunc("GET /applications", f.listApps)
	mux.HandleFunc("GET /applications/{app}", f.getApp)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Verify(r); err != nil {
			var be *batch.Error
			errors.As(err, &be)
			replyError(w, be.Status, be.Code, be.Message, be.Values[0].Key, be.Values[0].Value)
			return
		}
		if got := r.URL.Query().Get("api-version"); got != kilnAPIVersion && got != "2024-07-01.20.0" {
			t.Errorf("%s %s: api-version %q", r.Method, r.URL.Path, got)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// record reads the body (hashing it) and logs the request.
func (f *fakeKiln) record(r *http.Request) fakeRequest {
	h := sha256.New()
	var js bytes.Buffer
	out := io.Writer(h)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		out = io.MultiWriter(h, &js)
	}
	n, _ := io.Copy(out, r.Body)
	req := fakeRequest{method: r.Method, path: r.URL.EscapedPath(), contentType: r.Header.Get("Content-Type"),
		contentLength: r.ContentLength, body: js.Bytes(), size: n}
	copy(req.sum[:], h.Sum(nil))
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	return req
}

func (f *fakeKiln) log() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeKiln) putApp(w http.ResponseWriter, r *http.Request) {
	req := f.record(r)
	var body struct {
		DisplayName    *string `json:"displayName"`
		DefaultVersion *string `json:"defaultVersion"`
		AllowUpdates   *bool   `json:"allowUpdates"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		replyError(w, 400, "InvalidRequestBody", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("app")
	app, exists := f.apps[id]
	if !exists {
		app = &fakeApp{ID: id, DisplayName: id, AllowUpdates: true, Versions: []string{}}
	}
	if body.DefaultVersion != nil && *body.DefaultVersion != "" && !slices.Contains(app.Versions, *body.DefaultVersion) {
		replyError(w, 409, "ApplicationPackageNotFound", "The default version must be an existing package.", "version", *body.DefaultVersion)
		return
	}
	if body.DisplayName != nil {
		app.DisplayName = *body.DisplayName
	}
	if body.DefaultVersion != nil {
		app.DefaultVersion = *body.DefaultVersion
	}
	if body.AllowUpdates != nil {
		app.AllowUpdates = *body.AllowUpdates
	}
	f.apps[id] = app
	status := 200
	if !exists {
		status = 201
	}
	b, _ := json.Marshal(app)
	reply(w, status, string(b))
}

func (f *fakeKiln) deleteApp(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.apps[r.PathValue("app")]; !ok {
		replyError(w, 404, "ApplicationNotFound", "The specified application does not exist.")
		return
	}
	delete(f.apps, r.PathValue("app"))
	w.WriteHeader(200)
}

func (f *fakeKiln) putVersion(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[r.PathValue("app")]
	if !ok {
		replyError(w, 404, "ApplicationNotFound", "The specified application does not exist.")
		return
	}
	app.Versions = append(app.Versions, r.PathValue("version"))
	reply(w, 201, fmt.Sprintf(`{"id": %q, "state": "active", "format": "zip", "lastActivationTime": "2025-06-01T12:00:00Z"}`, r.PathValue("version")))
}

func (f *fakeKiln) deleteVersion(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	app, ok := f.apps[r.PathValue("app")]
	if !ok || !slices.Contains(app.Versions, r.PathValue("version")) {
		replyError(w, 404, "ApplicationPackageNotFound", "The specified application package does not exist.")
		return
	}
	app.Versions = slices.DeleteFunc(app.Versions, func(v string) bool { return v == r.PathValue("version") })
	w.WriteHeader(200)
}

func (f *fakeKiln) listApps(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range f.apps {
			if !yield(id) {
				return
			}
		}
	}) {
		a := f.apps[id]
		b, _ := json.Marshal(map[string]any{"id": a.ID, "displayName": a.DisplayName, "versions": a.Versions})
		out = append(out, string(b))
	}
	reply(w, 200, `{"value": [`+strings.Join(out, ",")+`]}`)
}

func (f *fakeKiln) getApp(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[r.PathValue("app")]
	if !ok {
		replyError(w, 404, "ApplicationNotFound", "The specified application does not exist.")
		return
	}
	b, _ := json.Marshal(map[string]any{"id": a.ID, "displayName": a.DisplayName, "versions": a.Versions})
	reply(w, 200, string(b))
}

// runApp executes `kiln <args>` with the application commands, as account
// "acct" with key "secret" (or key, when given with --account-key first in
// args); tty forces the progress bar.
func runApp(t *testing.T, url, stdin string, tty bool, args ...string) cliResult {
	t.Helper()
	root := &cobra.Command{Use: "kiln", SilenceErrors: true, SilenceUsage: true}
	o := &globalOptions{getenv: envMap(nil)}
	addClientCommands(root, o)
	root.AddCommand((&applicationOptions{g: o, isTerminal: func(io.Writer) bool { return tty }}).command())
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--url", url, "--account-name", "acct", "--account-key", base64.StdEncoding.EncodeToString([]byte("secret")), "--data-dir", t.TempDir()}, args...))
	code := HandleError(&stderr, root.ExecuteContext(context.Background()))
	return cliResult{stdout.String(), stderr.String(), code}
}

func TestApplication_CreateSetDelete(t *testing.T) {
	t.Parallel()
	f := newFakeKiln(t)

	res := runApp(t, f.URL, "", false, "application", "create", "blender", "--display-name", "Blender 4")
	if res.code != 0 {
		t.Fatalf("create: exit %d, stderr %q", res.code, res.stderr)
	}
	want := "ID:             blender\nDisplay name:   Blender 4\nAllow updates:  true\n"
	if res.stdout != want {
		t.Errorf("create: stdout %q, want %q", res.stdout, want)
	}
	req := f.log()[0]
	if req.method != "PUT" || req.path != "/kiln/applications/blender" || req.contentType != "application/json; charset=utf-8" ||
		string(req.body) != `{"displayName":"Blender 4","allowUpdates":true}` || req.contentLength != int64(len(req.body)) {
		t.Errorf("create request %+v (body %s)", req, req.body)
	}

	// set sends only what was given; -o json prints the server's answer.
	f.mu.Lock()
	f.apps["blender"].Versions = []string{"1.0"}
	f.mu.Unlock()
	res = runApp(t, f.URL, "", false, "application", "set", "blender", "--default-version", "1.0", "--allow-updates=false", "-o", "json")
	if res.code != 0 {
		t.Fatalf("set: exit %d, stderr %q", res.code, res.stderr)
	}
	if req := f.log()[1]; string(req.body) != `{"defaultVersion":"1.0","allowUpdates":false}` {
		t.Errorf("set body %s", req.body)
	}
	var app map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &app); err != nil || app["defaultVersion"] != "1.0" || app["allowUpdates"] != false || app["displayName"] != "Blender 4" {
		t.Errorf("set json %q: %v", res.stdout, err)
	}

	res = runApp(t, f.URL, "", false, "application", "set", "blender")
	if res.code != 1 || !strings.Contains(res.stderr, "nothing to set") {
		t.Errorf("set without flags: exit %d, stderr %q", res.code, res.stderr)
	}
	// Server errors print as Batch errors do.
	res = runApp(t, f.URL, "", false, "application", "set", "blender", "--default-version", "9.9")
	if res.code != 1 || res.stderr != "ERROR: ApplicationPackageNotFound: The default version must be an existing package.\n  version: 9.9\n" {
		t.Errorf("set bad version: exit %d, stderr %q", res.code, res.stderr)
	}

	res = runApp(t, f.URL, "", false, "application", "delete", "blender")
	if res.code != 1 || !strings.Contains(res.stderr, "--yes") {
		t.Errorf("delete unconfirmed: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runApp(t, f.URL, "y\n", false, "application", "delete", "blender")
	if res.code != 0 || res.stdout != "Deleted application blender.\n" {
		t.Errorf("delete: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runApp(t, f.URL, "", false, "application", "delete", "blender", "--yes")
	if res.code != 1 || res.stderr != "ERROR: ApplicationNotFound: The specified application does not exist.\n" {
		t.Errorf("delete missing: exit %d, stderr %q", res.code, res.stderr)
	}
	if got := f.log(); len(got) != 5 || got[4].method != "DELETE" || got[4].path != "/kiln/applications/blender" {
		t.Errorf("requests %+v", got)
	}
}

func TestApplication_PackageUpload(t *testing.T) {
	t.Parallel()
	f := newFakeKiln(t)
	dir := t.TempDir()
	zip := append([]byte("PK\x03\x04"), randomBytes(3<<20)...)
	zipPath := filepath.Join(dir, "app.zip")
	writeFile(t, zipPath, zip)

	if res := runApp(t, f.URL, "", false, "application", "create", "my app"); res.code != 0 {
		t.Fatalf("create: exit %d, stderr %q", res.code, res.stderr)
	}
	res := runApp(t, f.URL, "", true, "application", "package", "upload", "my app", "1.0+b/2", zipPath, "--default")
	if res.code != 0 {
		t.Fatalf("upload: exit %d, stderr %q", res.code, res.stderr)
	}
	log := f.log()
	up := log[1]
	if up.method != "PUT" || up.path != "/kiln/applications/my%20app/versions/1.0+b%2F2" || up.contentType != "application/zip" ||
		up.contentLength != int64(len(zip)) || up.size != int64(len(zip)) || up.sum != sha256.Sum256(zip) {
		t.Errorf("upload request %+v", up)
	}
	if def := log[2]; def.method != "PUT" || def.path != "/kiln/applications/my%20app" || string(def.body) != `{"defaultVersion":"1.0+b/2"}` {
		t.Errorf("default request %+v (body %s)", def, def.body)
	}
	for _, want := range []string{"Application:      my app\n", "Version:          1.0+b/2\n", "State:            active\n", "Format:           zip\n",
		"Size:             3.0 MiB\n", "Last activation:  2025-06-01T12:00:00Z\n", "Default version:  yes\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("upload stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "\r[") || !strings.Contains(res.stderr, "] 100%  3.0 MiB/3.0 MiB") || strings.Contains(res.stderr, "files") {
		t.Errorf("upload progress %q", res.stderr)
	}

	// JSON: the version as the server answered; no bar without a terminal.
	res = runApp(t, f.URL, "", false, "application", "package", "upload", "my app", "2.0", zipPath, "-o", "json")
	var pkg applicationPackage
	if err := json.Unmarshal([]byte(res.stdout), &pkg); err != nil || pkg.ID != "2.0" || pkg.State != "active" || res.stderr != "" {
		t.Errorf("upload json: %q, stderr %q, %v", res.stdout, res.stderr, err)
	}

	res = runApp(t, f.URL, "", false, "application", "show", "my app")
	if res.code != 0 || res.stdout != "ID:            my app\nDisplay name:  my app\nVersions:      1.0+b/2, 2.0\n" {
		t.Errorf("show: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	// Not a zip, or no file: refused before anything is sent.
	n := len(f.log())
	notZip := filepath.Join(dir, "app.tar.gz")
	writeFile(t, notZip, []byte("\x1f\x8b\x08\x00 not a zip"))
	res = runApp(t, f.URL, "", false, "application", "package", "upload", "my app", "3.0", notZip)
	if res.code != 1 || !strings.Contains(res.stderr, "is not a zip file") {
		t.Errorf("not a zip: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runApp(t, f.URL, "", false, "application", "package", "upload", "my app", "3.0", filepath.Join(dir, "missing.zip"))
	if res.code != 1 || !strings.Contains(res.stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", res.code, res.stderr)
	}
	if len(f.log()) != n {
		t.Errorf("requests sent for refused uploads: %+v", f.log()[n:])
	}
	res = runApp(t, f.URL, "", false, "application", "package", "upload", "nope", "1.0", zipPath)
	if res.code != 1 || res.stderr != "ERROR: ApplicationNotFound: The specified application does not exist.\n" {
		t.Errorf("unknown application: exit %d, stderr %q", res.code, res.stderr)
	}

	res = runApp(t, f.URL, "", false, "application", "package", "delete", "my app", "2.0", "--yes")
	if res.code != 0 || res.stdout != "Deleted version 2.0 of application my app.\n" {
		t.Errorf("package delete: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runApp(t, f.URL, "", false, "application", "package", "delete", "my app", "2.0", "--yes")
	if res.code != 1 || !strings.HasPrefix(res.stderr, "ERROR: ApplicationPackageNotFound: ") {
		t.Errorf("package delete again: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestApplication_List(t *testing.T) {
	t.Parallel()
	f := newFakeKiln(t)
	f.mu.Lock()
	f.apps["a"] = &fakeApp{ID: "a", DisplayName: "App A", Versions: []string{"1", "2"}}
	f.apps["b"] = &fakeApp{ID: "b", DisplayName: "B", Versions: []string{}}
	f.mu.Unlock()

	res := runApp(t, f.URL, "", false, "application", "list")
	want := "ID  DISPLAY NAME  VERSIONS\na   App A         1, 2\nb   B\n"
	if res.code != 0 || res.stdout != want {
		t.Errorf("list: exit %d, stdout %q, want %q; stderr %q", res.code, res.stdout, want, res.stderr)
	}
	res = runApp(t, f.URL, "", false, "application", "list", "-o", "json")
	var apps []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &apps); err != nil || len(apps) != 2 || apps[0]["id"] != "a" {
		t.Errorf("list json %q: %v", res.stdout, err)
	}
	res = runApp(t, f.URL, "", false, "application", "show", "zz")
	if res.code != 1 || res.stderr != "ERROR: ApplicationNotFound: The specified application does not exist.\n" {
		t.Errorf("show missing: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestApplication_SignatureAndReachability(t *testing.T) {
	t.Parallel()
	f := newFakeKiln(t)
	// A wrong key: the verifier refuses, and the CLI says why.
	res := runApp(t, f.URL, "", false, "--account-key", base64.StdEncoding.EncodeToString([]byte("wrong")), "application", "create", "x")
	if res.code != 1 || !strings.HasPrefix(res.stderr, "ERROR: AuthenticationFailed: Server failed to authenticate the request.") {
		t.Errorf("wrong key: exit %d, stderr %q", res.code, res.stderr)
	}
	if len(f.log()) != 0 {
		t.Errorf("a request with a wrong key got through: %+v", f.log())
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res = runApp(t, url, "", false, "application", "create", "x")
	if res.code != 1 || !strings.Contains(res.stderr, "cannot reach Kiln server at "+url) {
		t.Errorf("server down: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestOpenZip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, data := range map[string]string{"empty.zip": "PK\x05\x06" + strings.Repeat("\x00", 18), "short.zip": "PK", "none.zip": ""} {
		writeFile(t, filepath.Join(dir, name), []byte(data))
	}
	f, size, err := openZip(filepath.Join(dir, "empty.zip"))
	if err != nil || size != 22 {
		t.Fatalf("empty archive: %d, %v", size, err)
	}
	if b, _ := io.ReadAll(f); len(b) != 22 {
		t.Errorf("read %d bytes after the check, want all 22", len(b))
	}
	f.Close()
	for _, name := range []string{"short.zip", "none.zip"} {
		if _, _, err := openZip(filepath.Join(dir, name)); err == nil || !strings.Contains(err.Error(), "is not a zip file") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := openZip(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.zip")); err != nil {
		t.Fatal(err)
	}
}

// The storage and application commands are in the real command tree.
func TestNewRoot_StorageAndApplication(t *testing.T) {
	t.Parallel()
	root := NewRoot()
	for _, path := range []string{
		"storage container create", "storage container list", "storage container delete",
		"storage upload", "storage download", "storage list", "storage url", "storage delete",
		"application create", "application set", "application delete", "application list", "application show",
		"application package upload", "application package delete",
	} {
		cmd, rest, err := root.Find(strings.Fields(path))
		if err != nil || len(rest) != 0 || cmd.CommandPath() != "kiln "+path || cmd.RunE == nil {
			t.Errorf("%s: found %q, rest %v, err %v", path, cmd.CommandPath(), rest, err)
		}
	}
	storage, _, _ := root.Find([]string{"storage"})
	if f := storage.PersistentFlags().Lookup("storage-url"); f == nil || !f.Hidden {
		t.Error("no hidden --storage-url")
	}
}
