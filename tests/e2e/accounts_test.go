package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/kilnbatch/kiln/internal/testutil/postgres"
	"github.com/kilnbatch/kiln/sharedkey"
)

// Several accounts on one server: account B, with its own valid key, tries
// every operation of the API on account A's objects and must neither see
// nor change them.

// acct is an account the test signs requests as.
type acct struct {
	name, key string
}

// acctDo sends a request signed as a.name with key (a.key when "").
func (s *Server) acctDo(t testing.TB, a acct, key, method, path string, body []byte) poolRawResponse {
	t.Helper()
	if key == "" {
		key = a.key
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req := s.poolRawRequest(t, method, path+sep+"api-version="+poolAPIVersion, body)
	if body != nil && strings.Contains(path, "/versions/") {
		req.Header.Set("Content-Type", "application/zip")
	}
	k, err := sharedkey.DecodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sharedkey.SignRequest(req, a.name, k)
	return poolDo(t, req)
}

// acctMust sends a request and fails the test unless the answer is want.
func (s *Server) acctMust(t testing.TB, a acct, want int, method, path string, body []byte) poolRawResponse {
	t.Helper()
	r := s.acctDo(t, a, "", method, path, body)
	if r.Status != want {
		t.Fatalf("%s %s as %s: %d %s, want %d", method, path, a.name, r.Status, r.Body, want)
	}
	return r
}

// isoClass is what account B must get from an operation on A's objects.
type isoClass int

const (
	isoNotFound      isoClass = iota // 404 with a *NotFound code: B has no such object
	isoList                          // 200, and nothing of A's in the answer
	isoCreate                        // 201: B creates its own object with A's id
	isoAdmin                         // 403: account management is the admin's only
	isoSelf                          // 200 about B itself (its keys), nothing of A's
	isoUnimplemented                 // 501 whoever asks
)

// isoOp is one route of the API with what B must get and a valid body.
type isoOp struct {
	method, path string
	class        isoClass
	body         string
}

// isoOps lists every route of the server: every operation of the Azure
// Batch spec (testdata/batch-operations.txt) and every route internal/api
// registers (Kiln's own under /kiln and older api-versions' ones);
// TestAccountsIsolation fails when either has a route this table lacks.
// Creates come last: B's objects then take A's ids, which lists must not
// have shown before.
var isoOps = []isoOp{
	// Account-level reads.
	{"GET", "/supportedimages", isoList, ""},
	{"GET", "/nodecounts", isoList, ""},
	{"GET", "/poolusagemetrics", isoList, ""},
	{"GET", "/lifetimejobstats", isoList, ""},
	{"GET", "/lifetimepoolstats", isoList, ""},

	// Pools and autoscale.
	{"GET", "/pools", isoList, ""},
	{"GET", "/pools/{poolId}", isoNotFound, ""},
	{"HEAD", "/pools/{poolId}", isoNotFound, ""},
	{"DELETE", "/pools/{poolId}", isoNotFound, ""},
	{"PATCH", "/pools/{poolId}", isoNotFound, `{"metadata":[{"name":"b","value":"b"}]}`},
	{"POST", "/pools/{poolId}/updateproperties", isoNotFound, `{"certificateReferences":[],"applicationPackageReferences":[],"metadata":[]}`},
	{"POST", "/pools/{poolId}/resize", isoNotFound, `{"targetDedicatedNodes":0}`},
	{"POST", "/pools/{poolId}/stopresize", isoNotFound, ""},
	{"POST", "/pools/{poolId}/removenodes", isoNotFound, `{"nodeList":["{nodeId}"]}`},
	{"POST", "/pools/{poolId}/enableautoscale", isoNotFound, `{"autoScaleFormula":"$TargetDedicatedNodes=0;","autoScaleEvaluationInterval":"PT5M"}`},
	{"POST", "/pools/{poolId}/disableautoscale", isoNotFound, ""},
	{"POST", "/pools/{poolId}/evaluateautoscale", isoNotFound, `{"autoScaleFormula":"$TargetDedicatedNodes=0;"}`},
	{"POST", "/pools/{poolId}/upgradeos", isoUnimplemented, `{"targetOSVersion":"x"}`},

	// Compute nodes.
	{"GET", "/pools/{poolId}/nodes", isoNotFound, ""},
	{"GET", "/pools/{poolId}/nodes/{nodeId}", isoNotFound, ""},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/reboot", isoNotFound, `{}`},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/reimage", isoNotFound, `{}`},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/disablescheduling", isoNotFound, `{}`},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/enablescheduling", isoNotFound, ""},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/start", isoNotFound, ""},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/deallocate", isoNotFound, `{}`},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/remoteloginsettings", isoNotFound, ""},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/rdp", isoUnimplemented, ""},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/uploadbatchservicelogs", isoNotFound, `{"containerUrl":"https://example.invalid/logs?sig=x","startTime":"2020-01-01T00:00:00Z"}`},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/extensions", isoNotFound, ""},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/extensions/{extensionName}", isoNotFound, ""},
	{"POST", "/pools/{poolId}/nodes/{nodeId}/users", isoNotFound, `{"name":"isobuser","password":"Pa55word!"}`},
	{"PUT", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", isoNotFound, `{"password":"Pa55word!2"}`},
	{"DELETE", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", isoNotFound, ""},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/files", isoNotFound, ""},
	{"GET", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", isoNotFound, ""},
	{"HEAD", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", isoNotFound, ""},
	{"DELETE", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", isoNotFound, ""},

	// Certificates.
	{"GET", "/certificates", isoList, ""},
	{"GET", "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})", isoNotFound, ""},
	{"DELETE", "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})", isoNotFound, ""},
	{"POST", "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})/canceldelete", isoNotFound, ""},

	// Jobs.
	{"GET", "/jobs", isoList, ""},
	{"GET", "/jobs/{jobId}", isoNotFound, ""},
	{"DELETE", "/jobs/{jobId}", isoNotFound, ""},
	{"PATCH", "/jobs/{jobId}", isoNotFound, `{"priority":7}`},
	{"PUT", "/jobs/{jobId}", isoNotFound, `{"poolInfo":{"poolId":"{poolId}"}}`},
	{"POST", "/jobs/{jobId}/disable", isoNotFound, `{"disableTasks":"requeue"}`},
	{"POST", "/jobs/{jobId}/enable", isoNotFound, ""},
	{"POST", "/jobs/{jobId}/terminate", isoNotFound, `{}`},
	{"GET", "/jobs/{jobId}/taskcounts", isoNotFound, ""},
	{"GET", "/jobs/{jobId}/jobpreparationandreleasetaskstatus", isoNotFound, ""},

	// Job schedules.
	{"GET", "/jobschedules", isoList, ""},
	{"GET", "/jobschedules/{jobScheduleId}", isoNotFound, ""},
	{"HEAD", "/jobschedules/{jobScheduleId}", isoNotFound, ""},
	{"DELETE", "/jobschedules/{jobScheduleId}", isoNotFound, ""},
	{"PATCH", "/jobschedules/{jobScheduleId}", isoNotFound, `{"metadata":[{"name":"b","value":"b"}]}`},
	{"PUT", "/jobschedules/{jobScheduleId}", isoNotFound, `{"schedule":{"doNotRunUntil":"2099-01-01T00:00:00Z"},"jobSpecification":{"poolInfo":{"poolId":"{poolId}"}}}`},
	{"POST", "/jobschedules/{jobScheduleId}/disable", isoNotFound, ""},
	{"POST", "/jobschedules/{jobScheduleId}/enable", isoNotFound, ""},
	{"POST", "/jobschedules/{jobScheduleId}/terminate", isoNotFound, ""},
	{"GET", "/jobschedules/{jobScheduleId}/jobs", isoNotFound, ""},

	// Tasks and their files.
	{"POST", "/jobs/{jobId}/tasks", isoNotFound, `{"id":"isobtask","commandLine":"/bin/true"}`},
	{"POST", "/jobs/{jobId}/addtaskcollection", isoNotFound, `{"value":[{"id":"isobtask","commandLine":"/bin/true"}]}`},
	{"GET", "/jobs/{jobId}/tasks", isoNotFound, ""},
	{"GET", "/jobs/{jobId}/tasks/{taskId}", isoNotFound, ""},
	{"PUT", "/jobs/{jobId}/tasks/{taskId}", isoNotFound, `{"constraints":{"maxTaskRetryCount":3}}`},
	{"DELETE", "/jobs/{jobId}/tasks/{taskId}", isoNotFound, ""},
	{"POST", "/jobs/{jobId}/tasks/{taskId}/terminate", isoNotFound, ""},
	{"POST", "/jobs/{jobId}/tasks/{taskId}/reactivate", isoNotFound, ""},
	{"GET", "/jobs/{jobId}/tasks/{taskId}/subtasksinfo", isoNotFound, ""},
	{"GET", "/jobs/{jobId}/tasks/{taskId}/files", isoNotFound, ""},
	{"GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", isoNotFound, ""},
	{"HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", isoNotFound, ""},
	{"DELETE", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", isoNotFound, ""},

	// Applications and their management (Kiln's own).
	{"GET", "/applications", isoList, ""},
	{"GET", "/applications/{applicationId}", isoNotFound, ""},
	{"PUT", "/kiln/applications/{applicationId}/versions/{version}", isoNotFound, "zip"},
	{"DELETE", "/kiln/applications/{applicationId}/versions/{version}", isoNotFound, ""},
	{"DELETE", "/kiln/applications/{applicationId}", isoNotFound, ""},

	// Kiln's own pool routes.
	{"POST", "/kiln/pools/{poolId}/preempt", isoNotFound, `{}`},
	{"GET", "/kiln/pools/{poolId}/joinToken", isoNotFound, ""},
	{"POST", "/kiln/pools/{poolId}/joinToken/rotate", isoNotFound, ""},
	{"GET", "/kiln/pools/{poolId}/standbyAgents", isoNotFound, ""},

	// Kiln's account routes: B's own keys; management is the admin's.
	{"GET", "/kiln/account/keys", isoSelf, ""},
	{"POST", "/kiln/account/keys/regenerate", isoSelf, `{"keyName":"secondary"}`},
	{"POST", "/kiln/accounts", isoAdmin, `{"name":"isoc"}`},
	{"GET", "/kiln/accounts", isoAdmin, ""},
	{"GET", "/kiln/accounts/{accountName}", isoAdmin, ""},
	{"DELETE", "/kiln/accounts/{accountName}", isoAdmin, ""},

	// Creates, last: B's namespace is its own, so A's ids are free in it.
	{"POST", "/pools", isoCreate, `{"id":"{poolId}","vmSize":"standard_d2s_v3","targetDedicatedNodes":0,` +
		`"virtualMachineConfiguration":{"imageReference":{"publisher":"kiln","offer":"local","sku":"host","version":"latest"},"nodeAgentSKUId":"batch.node.kiln.local"}}`},
	{"POST", "/jobs", isoCreate, `{"id":"{jobId}","poolInfo":{"poolId":"{poolId}"}}`},
	{"POST", "/jobschedules", isoCreate, `{"id":"{jobScheduleId}","schedule":{"doNotRunUntil":"2099-01-01T00:00:00Z"},"jobSpecification":{"poolInfo":{"poolId":"{poolId}"}}}`},
	{"POST", "/certificates", isoCreate, "cert"},
	{"PUT", "/kiln/applications/{applicationId}", isoCreate, `{"displayName":"B's"}`},
}

// isoRouteRE finds the routes internal/api registers: h("METHOD /path", ...)
// and the notImplemented map's "METHOD /path": entries.
var isoRouteRE = regexp.MustCompile(`"(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^"]*)"`)

// isoKnownRoutes returns every route of the spec and of internal/api, as
// "METHOD /path" with {filePath} for file paths.
func isoKnownRoutes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	f, err := os.Open("testdata/batch-operations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		out[fs[0]+" "+fs[1]] = "spec " + fs[2]
	}
	files, err := filepath.Glob("../../internal/api/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("internal/api sources: %v", err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range isoRouteRE.FindAllStringSubmatch(string(b), -1) {
			p := strings.ReplaceAll(m[2], "{filePath...}", "{filePath}")
			k := m[1] + " " + p
			if k == "GET /healthz" {
				continue // served without authentication, about nothing
			}
			if k == "GET /metrics" {
				// The operator's endpoint, not an account's: no Shared
				// Key, every account's ids, guarded by --metrics-token
				// (docs/metrics.md); tests/e2e/metrics_test.go covers it.
				continue
			}
			if _, ok := out[k]; !ok {
				out[k] = "internal/api " + filepath.Base(name)
			}
		}
	}
	return out
}

// TestAccountsIsolation creates accounts A and B on one server, gives A a
// pool (one node), a job with a completed task, a job schedule, a
// certificate, an application and a storage container; then B, with its
// own valid key, sends every operation of the API at A's objects and gets
// Azure's not-found (or 403), sees none of them in its lists, cannot sign
// as A, cannot reach A's storage; and A's objects are unchanged.
func TestAccountsIsolation(t *testing.T) {
	// The table covers every route.
	known := isoKnownRoutes(t)
	inTable := map[string]bool{}
	for _, op := range isoOps {
		inTable[op.method+" "+op.path] = true
	}
	var missing []string
	for r, from := range known {
		if !inTable[r] {
			missing = append(missing, r+" ("+from+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("routes missing from isoOps (add each with what another account must get):\n%s", strings.Join(missing, "\n"))
	}

	accountsIsolation(t, StartServer(t, nil))
}

// TestAccountsIsolationPostgres is TestAccountsIsolation on a server whose
// record is PostgreSQL (accounts created and deleted there).
func TestAccountsIsolationPostgres(t *testing.T) {
	kv := map[string]string{}
	for _, f := range strings.Fields(postgres.Start(t)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", kv["user"], kv["port"], kv["dbname"])
	accountsIsolation(t, StartServer(t, &ServerOpts{Args: []string{"--store", dsn}}))
}

func accountsIsolation(t *testing.T, s *Server) {
	admin := acct{testAccount, testKey}

	// Account management by the admin.
	r := s.acctMust(t, admin, http.StatusCreated, "POST", "/kiln/accounts", []byte(`{"name":"isoa"}`))
	var created struct{ AccountName, Primary, Secondary string }
	if err := json.Unmarshal(r.Body, &created); err != nil || created.AccountName != "isoa" || created.Primary == "" || created.Secondary == "" {
		t.Fatalf("create account: %s %v", r.Body, err)
	}
	a := acct{"isoa", created.Primary}
	bKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("isolation-b-key!"), 4))
	s.acctMust(t, admin, http.StatusCreated, "POST", "/kiln/accounts", []byte(`{"name":"isob","key":"`+bKey+`"}`))
	b := acct{"isob", bKey}
	for _, bad := range []string{"ab", "Upper1", "with-dash", strings.Repeat("x", 25)} {
		r := s.acctDo(t, admin, "", "POST", "/kiln/accounts", []byte(`{"name":"`+bad+`"}`))
		if r.Status != http.StatusBadRequest || r.poolError(t).Code != "InvalidPropertyValue" {
			t.Errorf("account name %q: %d %s, want 400 InvalidPropertyValue", bad, r.Status, r.Body)
		}
	}
	if r := s.acctDo(t, admin, "", "POST", "/kiln/accounts", []byte(`{"name":"isob"}`)); r.Status != http.StatusConflict || r.poolError(t).Code != "AccountAlreadyExists" {
		t.Errorf("duplicate account: %d %s", r.Status, r.Body)
	}
	r = s.acctMust(t, admin, http.StatusOK, "GET", "/kiln/accounts", nil)
	for _, n := range []string{`"isoa"`, `"isob"`, `"` + testAccount + `"`} {
		if !bytes.Contains(r.Body, []byte(n)) {
			t.Errorf("account list lacks %s: %s", n, r.Body)
		}
	}
	if bytes.Contains(r.Body, []byte(a.key)) {
		t.Error("the account list shows keys")
	}
	if r := s.acctMust(t, admin, http.StatusOK, "GET", "/kiln/accounts/isob", nil); !bytes.Contains(r.Body, []byte(bKey)) {
		t.Errorf("account show: %s", r.Body)
	}

	// A's objects.
	// Node users may be real users of this machine: a name of this run.
	userName := fmt.Sprintf("isoau%d", time.Now().UnixNano()%1000000)
	ids := map[string]string{
		"{poolId}": "isoapool", "{jobId}": "isoajob", "{taskId}": "isoatask", "{jobScheduleId}": "isoasched",
		"{applicationId}": "isoaapp", "{version}": "1.0", "{filePath}": "stdout.txt", "{userName}": userName,
		"{extensionName}": "isoaext", "{thumbprintAlgorithm}": "sha1", "{accountName}": "isoa",
	}
	s.acctMust(t, a, http.StatusCreated, "POST", "/pools", []byte(`{"id":"isoapool","vmSize":"standard_d2s_v3","targetDedicatedNodes":1,`+
		`"virtualMachineConfiguration":{"imageReference":{"publisher":"kiln","offer":"local","sku":"host","version":"latest"},"nodeAgentSKUId":"batch.node.kiln.local"}}`))
	var nodeID string
	eventually(t, 60*time.Second, "A's node idle", func() error {
		r := s.acctDo(t, a, "", "GET", "/pools/isoapool/nodes", nil)
		var l struct {
			Value []struct{ ID, State string }
		}
		if err := json.Unmarshal(r.Body, &l); err != nil || len(l.Value) != 1 || l.Value[0].State != "idle" {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		nodeID = l.Value[0].ID
		return nil
	})
	ids["{nodeId}"] = nodeID
	s.acctMust(t, a, http.StatusCreated, "POST", "/pools/isoapool/nodes/"+nodeID+"/users", []byte(`{"name":"`+userName+`","password":"Pa55word!"}`))
	t.Cleanup(func() { s.acctDo(t, a, "", "DELETE", "/pools/isoapool/nodes/"+nodeID+"/users/"+userName, nil) })
	s.acctMust(t, a, http.StatusCreated, "POST", "/jobs", []byte(`{"id":"isoajob","poolInfo":{"poolId":"isoapool"}}`))
	s.acctMust(t, a, http.StatusCreated, "POST", "/jobs/isoajob/tasks", []byte(`{"id":"isoatask","commandLine":"/bin/sh -c 'echo isoa-output'"}`))
	eventually(t, 60*time.Second, "A's task completed", func() error {
		r := s.acctDo(t, a, "", "GET", "/jobs/isoajob/tasks/isoatask", nil)
		if !bytes.Contains(r.Body, []byte(`"state":"completed"`)) {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	s.acctMust(t, a, http.StatusCreated, "POST", "/jobschedules", []byte(`{"id":"isoasched","schedule":{"doNotRunUntil":"2099-01-01T00:00:00Z"},"jobSpecification":{"poolInfo":{"poolId":"isoapool"}}}`))
	der, tp := certSelfSigned(t, "isoa")
	ids["{thumbprint}"] = tp
	certBody := func(der []byte, tp string) []byte {
		return []byte(`{"thumbprint":"` + tp + `","thumbprintAlgorithm":"sha1","certificateFormat":"cer","data":"` + base64.StdEncoding.EncodeToString(der) + `"}`)
	}
	s.acctMust(t, a, http.StatusCreated, "POST", "/certificates", certBody(der, tp))
	s.acctMust(t, a, http.StatusCreated, "PUT", "/kiln/applications/isoaapp", []byte(`{"displayName":"A's"}`))
	s.acctMust(t, a, http.StatusCreated, "PUT", "/kiln/applications/isoaapp/versions/1.0", appZip(t, "isoa"))
	aStorage := storageAccountClient(t, s, a)
	if _, err := aStorage.CreateContainer(ctx(t), "isoacontainer", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := aStorage.UploadBuffer(ctx(t), "isoacontainer", "isoa-blob.txt", []byte("isoa data"), nil); err != nil {
		t.Fatal(err)
	}

	// What A sees of its own objects, to compare after B's attempts.
	snapshotPaths := []string{"/pools/isoapool", "/pools/isoapool/nodes/" + nodeID, "/jobs/isoajob", "/jobs/isoajob/tasks/isoatask",
		"/jobschedules/isoasched", "/certificates(thumbprintAlgorithm=sha1,thumbprint=" + tp + ")", "/applications/isoaapp",
		"/jobs/isoajob/tasks/isoatask/files/stdout.txt"}
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, p := range snapshotPaths {
			r := s.acctMust(t, a, http.StatusOK, "GET", p, nil)
			out[p] = isoStable(r)
		}
		return out
	}
	before := snapshot()
	markers := []string{"isoapool", "isoajob", "isoatask", "isoasched", "isoaapp", userName, nodeID, tp, strings.ToUpper(tp), "isoa-output", a.key}

	// B's pools cannot use A's application packages or certificates.
	poolWith := func(id, extra string) []byte {
		return []byte(`{"id":"` + id + `","vmSize":"standard_d2s_v3","targetDedicatedNodes":0,` + extra +
			`"virtualMachineConfiguration":{"imageReference":{"publisher":"kiln","offer":"local","sku":"host","version":"latest"},"nodeAgentSKUId":"batch.node.kiln.local"}}`)
	}
	for what, extra := range map[string]string{
		"A's application": `"applicationPackageReferences":[{"applicationId":"isoaapp","version":"1.0"}],`,
		"A's certificate": `"certificateReferences":[{"thumbprint":"` + tp + `","thumbprintAlgorithm":"sha1"}],`,
	} {
		if r := s.acctDo(t, b, "", "POST", "/pools", poolWith("isobrefs", extra)); r.Status < 400 || r.Status >= 500 {
			t.Errorf("B's pool referencing %s: %d %s, want a 4xx", what, r.Status, r.Body)
			s.acctDo(t, b, "", "DELETE", "/pools/isobrefs", nil)
		}
	}

	subst := func(s string) string {
		for k, v := range ids {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	for _, op := range isoOps {
		path := subst(op.path)
		var body []byte
		switch op.body {
		case "":
		case "zip":
			body = appZip(t, "isob")
		case "cert":
			body = certBody(der, tp)
		default:
			body = []byte(subst(op.body))
		}
		what := op.method + " " + op.path
		// B's key cannot sign as A.
		if r := s.acctDo(t, acct{a.name, b.key}, "", op.method, path, body); r.Status != http.StatusForbidden ||
			op.method != "HEAD" && r.poolError(t).Code != "AuthenticationFailed" {
			t.Errorf("%s signed as A with B's key: %d %s, want 403 AuthenticationFailed", what, r.Status, r.Body)
		}
		r := s.acctDo(t, b, "", op.method, path, body)
		leak := ""
		for _, m := range markers {
			// An error may name what B asked for; nothing else of A's.
			asked := strings.Contains(strings.ToLower(path), strings.ToLower(m)) || bytes.Contains(body, []byte(m))
			if m != "" && !asked && bytes.Contains(r.Body, []byte(m)) {
				leak = m
			}
		}
		switch op.class {
		case isoNotFound:
			if r.Status != http.StatusNotFound {
				t.Errorf("%s as B: %d %s, want 404", what, r.Status, r.Body)
			} else if op.method != "HEAD" {
				if code := r.poolError(t).Code; !strings.HasSuffix(code, "NotFound") {
					t.Errorf("%s as B: code %s, want a *NotFound code", what, code)
				}
			}
		case isoList, isoSelf:
			if r.Status != http.StatusOK {
				t.Errorf("%s as B: %d %s, want 200", what, r.Status, r.Body)
			}
		case isoCreate:
			if r.Status != http.StatusCreated {
				t.Errorf("%s as B (its own object with A's id): %d %s, want 201", what, r.Status, r.Body)
			}
		case isoAdmin:
			if r.Status != http.StatusForbidden || r.poolError(t).Code != "AuthorizationFailure" {
				t.Errorf("%s as B: %d %s, want 403 AuthorizationFailure", what, r.Status, r.Body)
			}
		case isoUnimplemented:
			if r.Status != http.StatusNotImplemented {
				t.Errorf("%s as B: %d %s, want 501", what, r.Status, r.Body)
			}
		}
		if leak != "" && op.class != isoCreate {
			t.Errorf("%s as B: the answer shows A's %q: %s", what, leak, r.Body)
		}
	}

	// Now B has a pool, job and schedule with A's ids: A's nodes, tasks and
	// node users are still out of reach through them.
	for _, op := range isoOps {
		if op.class != isoNotFound || !strings.Contains(op.path, "{nodeId}") && !strings.Contains(op.path, "{taskId}") {
			continue
		}
		path, body := subst(op.path), []byte(nil)
		if op.body != "" {
			body = []byte(subst(op.body))
		}
		r := s.acctDo(t, b, "", op.method, path, body)
		if r.Status != http.StatusNotFound {
			t.Errorf("%s as B through B's own %s: %d %s, want 404", op.method, path, r.Status, r.Body)
		} else if op.method != "HEAD" && !strings.HasSuffix(r.poolError(t).Code, "NotFound") {
			t.Errorf("%s as B through B's own %s: %s, want a *NotFound code", op.method, path, r.Body)
		}
	}

	// A's objects are as they were, and B's lifetime statistics count
	// nothing of A's.
	after := snapshot()
	for _, p := range snapshotPaths {
		if before[p] != after[p] {
			t.Errorf("A's %s changed while B tried:\nbefore %s\nafter  %s", p, before[p], after[p])
		}
	}
	r = s.acctMust(t, b, http.StatusOK, "GET", "/lifetimejobstats", nil)
	if bytes.Contains(r.Body, []byte(`"numSucceededTasks":1`)) {
		t.Errorf("B's statistics count A's task: %s", r.Body)
	}
	r = s.acctMust(t, a, http.StatusOK, "GET", "/pools/isoapool/nodes/"+nodeID, nil)
	if bytes.Contains(r.Body, []byte("isobuser")) {
		t.Errorf("B added a user to A's node: %s", r.Body)
	}

	// Storage: B's SAS cannot read or list A's storage, B's listing does
	// not show A's containers, and A's container is not at B's address.
	isoStorage(t, s, a, b)

	// A task of B naming A's container (autoStorageContainerName) gets a URL
	// the server signed for B's storage, where there is no such container:
	// its resource files fail and nothing of A's reaches B's node.
	s.acctMust(t, b, http.StatusCreated, "POST", "/pools", []byte(strings.Replace(string(poolWith("isobpool", "")), `"targetDedicatedNodes":0`, `"targetDedicatedNodes":1`, 1)))
	s.acctMust(t, b, http.StatusCreated, "POST", "/jobs", []byte(`{"id":"isobjob","poolInfo":{"poolId":"isobpool"}}`))
	s.acctMust(t, b, http.StatusCreated, "POST", "/jobs/isobjob/tasks",
		[]byte(`{"id":"steal","commandLine":"/bin/cat in/isoa-blob.txt","resourceFiles":[{"autoStorageContainerName":"isoacontainer","filePath":"in"}]}`))
	eventually(t, 60*time.Second, "B's task completed", func() error {
		r := s.acctDo(t, b, "", "GET", "/jobs/isobjob/tasks/steal", nil)
		if !bytes.Contains(r.Body, []byte(`"state":"completed"`)) {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	if r := s.acctMust(t, b, http.StatusOK, "GET", "/jobs/isobjob/tasks/steal", nil); !bytes.Contains(r.Body, []byte(`"result":"failure"`)) ||
		bytes.Contains(r.Body, []byte("isoa data")) {
		t.Errorf("B's task reading A's container did not fail: %s", r.Body)
	}
	if r := s.acctDo(t, b, "", "GET", "/jobs/isobjob/tasks/steal/files/stdout.txt", nil); bytes.Contains(r.Body, []byte("isoa data")) {
		t.Errorf("B's task read A's blob: %s", r.Body)
	}

	// A's key still works for A, and the admin can delete B once empty.
	s.acctMust(t, a, http.StatusOK, "GET", "/pools/isoapool", nil)
	if r := s.acctDo(t, admin, "", "DELETE", "/kiln/accounts/isob", nil); r.Status != http.StatusConflict || r.poolError(t).Code != "AccountNotEmpty" {
		t.Errorf("delete an account with pools: %d %s, want 409 AccountNotEmpty", r.Status, r.Body)
	}
	if r := s.acctDo(t, admin, "", "DELETE", "/kiln/accounts/"+testAccount, nil); r.Status != http.StatusConflict {
		t.Errorf("delete the admin account: %d %s, want 409", r.Status, r.Body)
	}
	for _, p := range []string{"/jobschedules/isoasched", "/jobs/isoajob", "/certificates(thumbprintAlgorithm=sha1,thumbprint=" + tp + ")", "/pools/isoapool", "/jobs/isobjob", "/pools/isobpool"} {
		s.acctMust(t, b, http.StatusAccepted, "DELETE", p, nil)
	}
	eventually(t, 60*time.Second, "B's objects deleted", func() error {
		if r := s.acctDo(t, admin, "", "DELETE", "/kiln/accounts/isob", nil); r.Status != http.StatusOK {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	if r := s.acctDo(t, b, "", "GET", "/pools", nil); r.Status != http.StatusForbidden {
		t.Errorf("a deleted account's key: %d %s, want 403", r.Status, r.Body)
	}
	// A is untouched by B's deletion.
	s.acctMust(t, a, http.StatusOK, "GET", "/pools/isoapool", nil)
	if _, err := aStorage.DownloadStream(ctx(t), "isoacontainer", "isoa-blob.txt", nil); err != nil {
		t.Errorf("A's blob after B's deletion: %v", err)
	}
}

// isoStable is what must not change of an object: its ETag when it has
// one, else its body without the fields that move by themselves.
func isoStable(r poolRawResponse) string {
	if e := r.Header.Get("ETag"); e != "" {
		return "etag " + e
	}
	var m map[string]any
	if json.Unmarshal(r.Body, &m) != nil {
		return string(r.Body)
	}
	for _, k := range []string{"odata.metadata", "lastBootTime", "nodeAgentInfo", "allocationTime", "stateTransitionTime"} {
		delete(m, k)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// storageAccountClient is an azblob client for an account's storage with
// an account SAS signed by its key.
func storageAccountClient(t testing.TB, s *Server, a acct) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientWithNoCredential(isoServiceSAS(t, s.URL+"/storage/"+a.name, a.name, a.key), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// isoServiceSAS is base/?<account SAS of account signed with key>.
func isoServiceSAS(t testing.TB, base, account, key string) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return base + "/?" + q.Encode()
}

func isoStorage(t *testing.T, s *Server, a, b acct) {
	t.Helper()
	aBase, bBase := s.URL+"/storage/"+a.name, s.URL+"/storage/"+b.name
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("x-ms-error-code") + " " + string(body)
	}
	// B's own storage works, and lists none of A's containers.
	bc := storageAccountClient(t, s, b)
	if _, err := bc.CreateContainer(ctx(t), "isobcontainer", nil); err != nil {
		t.Fatal(err)
	}
	pager := bc.NewListContainersPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.ContainerItems {
			// kiln-applications holds B's own application (created above).
			if *c.Name != "isobcontainer" && *c.Name != "kiln-applications" {
				t.Errorf("B's storage lists container %s", *c.Name)
			}
		}
	}
	// B's SAS (its own account, its key) on A's address: refused.
	for _, u := range []string{
		storageSAS(t, aBase, b.name, b.key, "isoacontainer", "isoa-blob.txt", "r", time.Now().Add(time.Hour)),
		storageSAS(t, aBase, b.name, b.key, "isoacontainer", "", "rl", time.Now().Add(time.Hour)) + "&restype=container&comp=list",
		strings.Replace(isoServiceSAS(t, aBase, b.name, b.key), "/?", "/?comp=list&", 1),
		// Signed as A with B's key.
		storageSAS(t, aBase, a.name, b.key, "isoacontainer", "isoa-blob.txt", "r", time.Now().Add(time.Hour)),
		strings.Replace(isoServiceSAS(t, aBase, a.name, b.key), "/?", "/?comp=list&", 1),
	} {
		if st, body := get(u); st != http.StatusForbidden || !strings.HasPrefix(body, "AuthenticationFailed") {
			t.Errorf("B's SAS on A's storage %s: %d %s, want 403 AuthenticationFailed", u, st, body)
		}
	}
	// A's container name at B's address: B has no such container.
	u := storageSAS(t, bBase, b.name, b.key, "isoacontainer", "isoa-blob.txt", "r", time.Now().Add(time.Hour))
	if st, body := get(u); st != http.StatusNotFound {
		t.Errorf("A's blob at B's address: %d %s, want 404", st, body)
	}
	// B's SAS cannot write into A's container either.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut,
		storageSAS(t, aBase, b.name, b.key, "isoacontainer", "b.txt", "cw", time.Now().Add(time.Hour)), strings.NewReader("b"))
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("B writes into A's container: %d, want 403", resp.StatusCode)
	}
	// An unknown account's storage is refused the same way.
	if st, body := get(strings.Replace(isoServiceSAS(t, s.URL+"/storage/nosuchacct", "nosuchacct", b.key), "/?", "/?comp=list&", 1)); st != http.StatusForbidden {
		t.Errorf("unknown account's storage: %d %s, want 403", st, body)
	}
}

// TestAccountsCLI drives `kiln account create|list|show|delete` as the
// admin (the server's credentials.json), then uses the new account's key
// for its own pool list and storage, and checks that the new account
// cannot manage accounts.
func TestAccountsCLI(t *testing.T) {
	s := StartServer(t, nil)
	kiln := func(env []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(kilnBin, args...)
		cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(env []string, args ...string) string {
		t.Helper()
		out, err := kiln(env, args...)
		if err != nil {
			t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var created struct{ AccountName, Primary, Secondary string }
	if err := json.Unmarshal([]byte(must(nil, "account", "create", "clia", "-o", "json")), &created); err != nil ||
		created.AccountName != "clia" || created.Primary == "" || created.Secondary == "" {
		t.Fatalf("create: %+v %v", created, err)
	}
	if out := must(nil, "account", "list"); !strings.Contains(out, "clia") || !strings.Contains(out, testAccount) {
		t.Fatalf("list: %s", out)
	}
	if out := must(nil, "account", "show", "clia"); !strings.Contains(out, created.Primary) {
		t.Fatalf("show: %s", out)
	}
	if out, err := kiln(nil, "account", "create", "Bad-Name"); err == nil || !strings.Contains(out, "InvalidPropertyValue") {
		t.Fatalf("bad name: %v %s", err, out)
	}

	// The new account works with its own key, in its own storage.
	asA := []string{"KILN_URL=" + s.URL, "KILN_ACCOUNT_NAME=clia", "KILN_ACCOUNT_KEY=" + created.Primary}
	if out := must(asA, "pool", "list"); strings.Contains(out, "Error") {
		t.Fatalf("pool list as clia: %s", out)
	}
	must(asA, "storage", "container", "create", "clibox")
	if out := must(nil, "storage", "container", "list"); strings.Contains(out, "clibox") {
		t.Fatalf("the admin's storage lists clia's container: %s", out)
	}
	if out, err := kiln(asA, "account", "list"); err == nil || !strings.Contains(out, "AuthorizationFailure") {
		t.Fatalf("account list as clia: %v %s", err, out)
	}

	must(nil, "account", "delete", "clia")
	if out, err := kiln(asA, "pool", "list"); err == nil {
		t.Fatalf("a deleted account's key still works: %s", out)
	}
	if out := must(nil, "account", "list"); strings.Contains(out, "clia") {
		t.Fatalf("list after delete: %s", out)
	}
}
