package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
	"github.com/kilnbatch/kiln/internal/testutil/versitygw"
)

// workflowTarget is where a workflow run keeps its inputs and outputs.
type workflowTarget struct {
	inputs, outputs *container.Client
	// inputRef is the resource file that brings the blobs under prefix into
	// the directory dir of the task.
	inputRef func(prefix, dir string) azbatch.ResourceFile
	// inputBlobURL is a signed URL of one input blob (httpUrl form).
	inputBlobURL func(name string) string
	// outputURL is the outputs container URL with a write SAS.
	outputURL string
}

// runWorkflow is Azure Batch's workflow: upload inputs, create a pool, a
// job and tasks, nodes download the inputs, tasks upload outputs by
// condition, the outputs are downloaded and compared byte for byte.
func runWorkflow(t *testing.T, s *Server, w workflowTarget) {
	// 1. Upload inputs: text files and a binary file in a subdirectory.
	inputs := map[string][]byte{}
	for i := range 4 {
		inputs[fmt.Sprintf("in/file%d.txt", i)] = []byte(strings.Repeat(fmt.Sprintf("line %d of input %d\n", i, i), 100+i))
	}
	shared := make([]byte, 3<<20+17)
	rand.Read(shared)
	inputs["in/sub/shared.bin"] = shared
	inputs["other/ignored.txt"] = []byte("not under the prefix")
	for name, data := range inputs {
		storageUpload(t, w.inputs, name, data)
	}

	// 2. Pool, job and tasks.
	s.CreatePool(t, "wf", 2, 2, nil)
	s.CreateJob(t, "wfjob", "wf", nil)
	outputs := func(id string) []azbatch.OutputFile {
		dest := func(path string) *azbatch.OutputFileDestination {
			return &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to(w.outputURL), Path: to(path)}}
		}
		cond := func(c azbatch.OutputFileUploadCondition) *azbatch.OutputFileUploadConfig {
			return &azbatch.OutputFileUploadConfig{UploadCondition: to(c)}
		}
		return []azbatch.OutputFile{
			{FilePattern: to("out/*"), Destination: dest("results/" + id), UploadOptions: cond(azbatch.OutputFileUploadConditionTaskSuccess)},
			{FilePattern: to("fail.log"), Destination: dest("failures/" + id + ".log"), UploadOptions: cond(azbatch.OutputFileUploadConditionTaskFailure)},
			{FilePattern: to("../std*.txt"), Destination: dest("logs/" + id), UploadOptions: cond(azbatch.OutputFileUploadConditionTaskCompletion)},
		}
	}
	var tasks []azbatch.CreateTaskContent
	for i := range 4 {
		id := fmt.Sprintf("t%d", i)
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:            to(id),
			CommandLine:   to(fmt.Sprintf(`/bin/sh -c 'mkdir -p out && tr a-z A-Z < data/in/file%d.txt > out/upper.txt && cp data/in/sub/shared.bin out/shared.bin && test ! -e data/other && echo ok-%s'`, i, id)),
			ResourceFiles: []azbatch.ResourceFile{w.inputRef("in/", "data")},
			OutputFiles:   outputs(id),
		})
	}
	// One task reads its input through an httpUrl and fails on purpose:
	// only the taskfailure and taskcompletion outputs may be uploaded.
	tasks = append(tasks, azbatch.CreateTaskContent{
		ID:            to("bad"),
		CommandLine:   to(`/bin/sh -c 'mkdir -p out && cp input.txt out/never.txt && cp input.txt fail.log && echo failing >&2 && exit 3'`),
		ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to(w.inputBlobURL("in/file1.txt")), FilePath: to("input.txt")}},
		OutputFiles:   outputs("bad"),
	})
	s.AddTasks(t, "wfjob", tasks)

	// 3-4. Nodes download, tasks run; monitor until all complete.
	counts := s.WaitJobTasks(t, "wfjob", 3*time.Minute)
	if c := counts.TaskCounts; *c.Succeeded != 4 || *c.Failed != 1 {
		for _, task := range s.ListTasks(t, "wfjob", nil) {
			t.Logf("task %s: %s", *task.ID, describeTask(task))
		}
		t.Fatalf("succeeded %d failed %d, want 4 and 1", *c.Succeeded, *c.Failed)
	}
	bad := taskGet(t, s, "wfjob", "bad")
	if ei := bad.ExecutionInfo; *ei.ExitCode != 3 || *ei.Result != azbatch.TaskExecutionResultFailure {
		t.Fatalf("bad task: %s", describeTask(bad))
	}

	// 5-6. Outputs were uploaded by condition; download and compare.
	got := w.outputsAll(t)
	want := map[string][]byte{}
	for i := range 4 {
		id := fmt.Sprintf("t%d", i)
		want["results/"+id+"/upper.txt"] = upper(inputs[fmt.Sprintf("in/file%d.txt", i)])
		want["results/"+id+"/shared.bin"] = shared
		want["logs/"+id+"/stdout.txt"] = []byte("ok-" + id + "\n")
		want["logs/"+id+"/stderr.txt"] = []byte{}
	}
	want["failures/bad.log"] = inputs["in/file1.txt"]
	want["logs/bad/stdout.txt"] = []byte{}
	want["logs/bad/stderr.txt"] = []byte("failing\n")
	for name, data := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("output %s was not uploaded", name)
			continue
		}
		if !bytes.Equal(g, data) {
			t.Errorf("output %s: %d bytes differ from the %d expected", name, len(g), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected output %s (results of a failed task, or failures of a successful one)", name)
		}
	}
}

func (w workflowTarget) outputsAll(t *testing.T) map[string][]byte {
	return storageDownloadAll(t, w.outputs)
}

func describeTask(task azbatch.Task) string {
	ei := task.ExecutionInfo
	if ei == nil {
		return string(*task.State)
	}
	s := fmt.Sprintf("%s exit=%v result=%v", *task.State, deref(ei.ExitCode), deref(ei.Result))
	if fi := ei.FailureInfo; fi != nil {
		s += fmt.Sprintf(" failure=%s/%s: %s", deref(fi.Category), deref(fi.Code), deref(fi.Message))
	}
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// kilnTarget keeps inputs and outputs in the server's own storage: inputs
// through autoStorageContainerName, outputs through a signed container URL.
func kilnTarget(t *testing.T, s *Server) workflowTarget {
	sc := s.storageClient(t)
	for _, name := range []string{"inputs", "outputs"} {
		if _, err := sc.CreateContainer(ctx(t), name, nil); err != nil {
			t.Fatalf("create container %s: %v", name, err)
		}
	}
	return workflowTarget{
		inputs:  sc.ServiceClient().NewContainerClient("inputs"),
		outputs: sc.ServiceClient().NewContainerClient("outputs"),
		inputRef: func(prefix, dir string) azbatch.ResourceFile {
			return azbatch.ResourceFile{AutoStorageContainerName: to("inputs"), BlobPrefix: to(prefix), FilePath: to(dir)}
		},
		inputBlobURL: func(name string) string {
			return storageSAS(t, s.storageBase(), testAccount, testKey, "inputs", name, "r", time.Now().Add(time.Hour))
		},
		outputURL: storageSAS(t, s.storageBase(), testAccount, testKey, "outputs", "", "rwcl", time.Now().Add(time.Hour)),
	}
}

// TestStorageWorkflowEmbedded runs the workflow on the embedded default:
// Kiln storage in a file:// bucket of the data directory.
func TestStorageWorkflowEmbedded(t *testing.T) {
	s := StartServer(t, nil)
	runWorkflow(t, s, kilnTarget(t, s))
}

// TestStorageWorkflowS3 runs the workflow with `--storage s3://...` on a
// real S3 server (versitygw with its posix backend).
func TestStorageWorkflowS3(t *testing.T) {
	endpoint, access, secret, bucket := versitygw.Start(t)
	bucketURL := "s3://" + bucket + "?endpoint=" + url.QueryEscape(endpoint) + "&use_path_style=true&region=us-east-1&disable_https=true"
	none := filepath.Join(t.TempDir(), "none")
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none, "AWS_EC2_METADATA_DISABLED=true"}
	s := StartServer(t, &ServerOpts{Args: []string{"--storage", bucketURL}, Env: env})
	runWorkflow(t, s, kilnTarget(t, s))

	// The blobs really are in the S3 server: open the bucket directly.
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	direct, err := storage.Open(ctx(t), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	acctStorage, err := direct.Account(ctx(t), testAccount) // the account's prefix of the bucket
	if err != nil {
		t.Fatal(err)
	}
	blobs, _, err := acctStorage.ListBlobs(ctx(t), "outputs", "results/", "", 100)
	if err != nil || len(blobs) != 8 {
		t.Fatalf("outputs in the S3 bucket: %d blobs, %v; want 8", len(blobs), err)
	}
}

// TestStorageWorkflowAzurite keeps inputs and outputs in Azure Blob storage
// (Azurite): storageContainerUrl resource files and container-URL output
// files with SAS tokens, as on Azure.
func TestStorageWorkflowAzurite(t *testing.T) {
	az := azurite.Start(t)
	az.CreateContainer(t, "inputs")
	az.CreateContainer(t, "outputs")
	inURL := az.ContainerSAS(t, "inputs", "rl", time.Now().Add(time.Hour))
	outURL := az.ContainerSAS(t, "outputs", "rwcl", time.Now().Add(time.Hour))
	s := StartServer(t, nil)
	runWorkflow(t, s, workflowTarget{
		// The test itself uses the account key; tasks get only the SAS URLs.
		inputs: az.Container(t, "inputs"), outputs: az.Container(t, "outputs"),
		inputRef: func(prefix, dir string) azbatch.ResourceFile {
			return azbatch.ResourceFile{StorageContainerURL: to(inURL), BlobPrefix: to(prefix), FilePath: to(dir)}
		},
		inputBlobURL: func(name string) string {
			return storageSAS(t, az.BlobURL, az.Account, az.Key, "inputs", name, "r", time.Now().Add(time.Hour))
		},
		outputURL: outURL,
	})
}

// TestStorageSignatures: Kiln storage refuses unsigned, forged, expired and
// too weak signatures with 403, and names that leave the bucket with 400.
func TestStorageSignatures(t *testing.T) {
	s := StartServer(t, nil)
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "sig", nil); err != nil {
		t.Fatal(err)
	}
	storageUpload(t, sc.ServiceClient().NewContainerClient("sig"), "a.txt", []byte("secret"))
	base := s.storageBase()

	good := storageSAS(t, base, testAccount, testKey, "sig", "a.txt", "r", time.Now().Add(time.Hour))
	if code, body := storageRaw(t, http.MethodGet, good, nil); code != 200 || body != "secret" {
		t.Fatalf("signed GET: %d %q", code, body)
	}
	cases := map[string]string{
		"unsigned": base + "/sig/a.txt",
		"forged":   strings.Replace(good, "sig=", "sig=AAAA", 1),
		"expired":  storageSAS(t, base, testAccount, testKey, "sig", "a.txt", "r", time.Now().Add(-time.Minute)),
		"otherkey": storageSAS(t, base, testAccount, "b3RoZXIta2V5LW90aGVyLWtleQ==", "sig", "a.txt", "r", time.Now().Add(time.Hour)),
		"otherblob": strings.Replace(storageSAS(t, base, testAccount, testKey, "sig", "b.txt", "r", time.Now().Add(time.Hour)),
			"/sig/b.txt", "/sig/a.txt", 1),
	}
	for name, u := range cases {
		if code, body := storageRaw(t, http.MethodGet, u, nil); code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403 (%s)", name, code, body)
		}
	}
	// A read-only signature cannot write.
	ro := storageSAS(t, base, testAccount, testKey, "sig", "", "rl", time.Now().Add(time.Hour))
	u := strings.Replace(ro, "/sig?", "/sig/new.txt?", 1)
	if code, body := storageRaw(t, http.MethodPut, u, []byte("x")); code != http.StatusForbidden {
		t.Errorf("write with a read SAS: %d %s", code, body)
	}
	// Names that would leave the container are refused, and nothing lands
	// outside the storage directory.
	rw := storageSAS(t, base, testAccount, testKey, "sig", "", "rwcl", time.Now().Add(time.Hour))
	for _, name := range []string{"../escape.txt", "a/../../escape.txt", "%2e%2e/escape.txt", "a/%2E%2E/%2e%2e/escape.txt"} {
		u := strings.Replace(rw, "/sig?", "/sig/"+name+"?", 1)
		code, body := storageRaw(t, http.MethodPut, u, []byte("x"))
		if code < 400 || code >= 500 {
			t.Errorf("PUT %s: status %d, want 4xx (%s)", name, code, body)
		}
	}
	for _, f := range storageFilesUnder(t, s.DataDir) {
		if strings.Contains(f, "escape") {
			t.Errorf("a traversal wrote %s", f)
		}
	}
	// A missing container is a clean 404.
	missing := storageSAS(t, base, testAccount, testKey, "nosuch", "", "rl", time.Now().Add(time.Hour))
	mc, _ := container.NewClientWithNoCredential(missing, nil)
	pager := mc.NewListBlobsFlatPager(nil)
	if _, err := pager.NextPage(ctx(t)); storageCode(err) != "ContainerNotFound" {
		t.Errorf("list of a missing container: %v", err)
	}
}

// TestStorageBadResourceFiles: malformed resource and output files are
// refused at add time with the offending property named; downloads that
// fail end the task with Azure's codes, writing nothing outside the task.
func TestStorageBadResourceFiles(t *testing.T) {
	s := StartServer(t, nil)
	s.CreatePool(t, "bad", 1, 2, nil)
	s.CreateJob(t, "badjob", "bad", nil)
	refused := []struct {
		name string
		task azbatch.CreateTaskContent
		prop string
	}{
		{"malformed url", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to("not a url"), FilePath: to("x")}}}, "resourceFiles[0].httpUrl"},
		{"two forms", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to("http://h/x"), AutoStorageContainerName: to("abc"), FilePath: to("x")}}}, "resourceFiles[0]"},
		{"escaping filePath", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to("http://h/x"), FilePath: to("../../etc/x")}}}, "resourceFiles[0].filePath"},
		{"absolute filePath", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{AutoStorageContainerName: to("abc"), FilePath: to("/tmp/x")}}}, "resourceFiles[0].filePath"},
		{"bad container name", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{AutoStorageContainerName: to("Bad_Name")}}}, "resourceFiles[0].autoStorageContainerName"},
		{"bad fileMode", azbatch.CreateTaskContent{ResourceFiles: []azbatch.ResourceFile{{HTTPURL: to("http://h/x"), FilePath: to("x"), FileMode: to("rwx")}}}, "resourceFiles[0].fileMode"},
		{"escaping pattern", azbatch.CreateTaskContent{OutputFiles: []azbatch.OutputFile{{FilePattern: to("../../x"), Destination: &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to("http://h/c")}}, UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to(azbatch.OutputFileUploadConditionTaskCompletion)}}}}, "outputFiles[0].filePattern"},
		{"malformed container url", azbatch.CreateTaskContent{OutputFiles: []azbatch.OutputFile{{FilePattern: to("x"), Destination: &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to("::")}}, UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to(azbatch.OutputFileUploadConditionTaskCompletion)}}}}, "outputFiles[0].destination.container.containerUrl"},
	}
	for i, c := range refused {
		c.task.ID, c.task.CommandLine = to(fmt.Sprintf("r%d", i)), to("true")
		_, err := s.Client.CreateTask(ctx(t), "badjob", c.task, nil)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		values := jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
		if values["PropertyName"] != c.prop {
			t.Errorf("%s: error values %v, want PropertyName %s", c.name, values, c.prop)
		}
	}

	// Downloads that fail on the node complete the task with Azure's codes.
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "present", nil); err != nil {
		t.Fatal(err)
	}
	failing := map[string]azbatch.ResourceFile{
		"missingblob":  {HTTPURL: to(storageSAS(t, s.storageBase(), testAccount, testKey, "present", "nothing.txt", "r", time.Now().Add(time.Hour))), FilePath: to("x")},
		"forged":       {HTTPURL: to(strings.Replace(storageSAS(t, s.storageBase(), testAccount, testKey, "present", "x", "r", time.Now().Add(time.Hour)), "sig=", "sig=AA", 1)), FilePath: to("x")},
		"nocontainer":  {AutoStorageContainerName: to("no-such-container")},
		"noservercont": {StorageContainerURL: to(storageSAS(t, s.storageBase(), testAccount, testKey, "gone", "", "rl", time.Now().Add(time.Hour)))},
	}
	wantCode := map[string]string{"missingblob": "BlobNotFound", "forged": "BlobAccessDenied", "nocontainer": "BlobNotFound", "noservercont": "BlobNotFound"}
	for id, rf := range failing {
		taskAdd(t, s, "badjob", azbatch.CreateTaskContent{ID: to(id), CommandLine: to("true"), ResourceFiles: []azbatch.ResourceFile{rf}})
	}
	// An output file that cannot be uploaded (the SAS grants no write)
	// fails the task in the fileupload phase; the exit code stays 0.
	readOnly := storageSAS(t, s.storageBase(), testAccount, testKey, "present", "", "rl", time.Now().Add(time.Hour))
	taskAdd(t, s, "badjob", azbatch.CreateTaskContent{ID: to("noupload"), CommandLine: to(`/bin/sh -c 'echo data > result.txt'`),
		OutputFiles: []azbatch.OutputFile{{FilePattern: to("result.txt"),
			Destination:   &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to(readOnly)}},
			UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to(azbatch.OutputFileUploadConditionTaskSuccess)}}}})
	task := taskWaitState(t, s, "badjob", "noupload", azbatch.TaskStateCompleted, time.Minute)
	if ei := task.ExecutionInfo; *ei.ExitCode != 0 || *ei.Result != azbatch.TaskExecutionResultFailure || ei.FailureInfo == nil ||
		*ei.FailureInfo.Code != "FileUploadAccessDenied" || !strings.Contains(*ei.FailureInfo.Message, "result.txt") {
		t.Errorf("task with a read-only output container: %s", describeTask(task))
	}
	if strings.Contains(describeTask(task), "sig=") {
		t.Errorf("a failure message shows the SAS signature: %s", describeTask(task))
	}

	for id := range failing {
		task := taskWaitState(t, s, "badjob", id, azbatch.TaskStateCompleted, time.Minute)
		fi := task.ExecutionInfo.FailureInfo
		if fi == nil || *fi.Category != azbatch.ErrorCategoryUserError || *fi.Code != wantCode[id] || *task.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
			t.Errorf("task %s: %s, want usererror %s", id, describeTask(task), wantCode[id])
		}
	}
}

// TestStorageStartTaskResourceFiles: a start task gets its resource files
// (a Kiln storage container and an httpUrl) before it runs on each node.
func TestStorageStartTaskResourceFiles(t *testing.T) {
	s := StartServer(t, nil)
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "setup", nil); err != nil {
		t.Fatal(err)
	}
	cc := sc.ServiceClient().NewContainerClient("setup")
	storageUpload(t, cc, "tools/install.sh", []byte("#!/bin/sh\necho installed on $AZ_BATCH_NODE_ID\n"))
	storageUpload(t, cc, "config.txt", []byte("setting=1\n"))
	cfgURL := storageSAS(t, s.storageBase(), testAccount, testKey, "setup", "config.txt", "r", time.Now().Add(time.Hour))
	s.CreatePool(t, "stp", 2, 1, func(c *azbatch.CreatePoolContent) {
		c.StartTask = &azbatch.StartTask{
			CommandLine: to(`/bin/sh -c './tools/install.sh && cat conf/config.txt'`),
			ResourceFiles: []azbatch.ResourceFile{
				{AutoStorageContainerName: to("setup"), BlobPrefix: to("tools/"), FileMode: to("0755")},
				{HTTPURL: to(cfgURL), FilePath: to("conf/config.txt")},
			},
			WaitForSuccess: to(true),
		}
	})
	s.WaitNodes(t, "stp", 2, azbatch.NodeStateIdle)
	for _, id := range s.poolNodeIDs(t, "stp") {
		out, err := s.poolReadNodeFile(t, "stp", id, "startup/stdout.txt")
		if err != nil || out != "installed on "+id+"\nsetting=1\n" {
			t.Fatalf("start task output on %s: %q, %v", id, out, err)
		}
	}
}
