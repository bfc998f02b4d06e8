package agent_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

func TestRun_OutputFiles(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t)
	az.CreateContainer(t, "out")
	hour := time.Now().Add(time.Hour)
	write := az.ContainerSAS(t, "out", "cw", hour)
	b := setup(t, nil)
	s := b.server

	t.Run("UploadConditions", func(t *testing.T) {
		// Each task writes result.txt and asks for it under all three
		// conditions, in a virtual directory named after the task.
		outputs := func(prefix string) []protocol.OutputFile {
			var ofs []protocol.OutputFile
			for _, cond := range []string{protocol.UploadOnSuccess, protocol.UploadOnFailure, protocol.UploadOnCompletion} {
				ofs = append(ofs, protocol.OutputFile{FilePattern: "result.txt", ContainerURL: write,
					Path: prefix + "/" + cond + ".txt", UploadCondition: cond})
			}
			return ofs
		}
		ok := task("of-ok", `/bin/sh -c 'echo ok > result.txt'`)
		bad := task("of-bad", `/bin/sh -c 'echo bad > result.txt; exit 3'`)
		slow := task("of-slow", `/bin/sh -c 'echo slow > result.txt; exec sleep 100'`)
		slow.MaxWallClock = protocol.Duration(300 * time.Millisecond)
		killed := task("of-killed", `/bin/sh -c 'echo killed > result.txt; exec sleep 100'`)
		for _, as := range []*protocol.Assignment{&ok, &bad, &slow, &killed} {
			as.OutputFiles = outputs(strings.TrimPrefix(as.AttemptID, "of-"))
			s.assign(*as)
		}
		s.waitEvent("of-killed", protocol.EventStarted)
		s.send(func(n *protocol.SyncResponse) { n.Kill = []string{"of-killed"} })

		want := map[string]struct {
			exit  int
			blobs []string
		}{
			"ok":     {0, []string{"ok/taskcompletion.txt", "ok/tasksuccess.txt"}},
			"bad":    {3, []string{"bad/taskcompletion.txt", "bad/taskfailure.txt"}},
			"slow":   {137, []string{"slow/taskcompletion.txt", "slow/taskfailure.txt"}},
			"killed": {137, nil},
		}
		for name, w := range want {
			c := s.waitEvent("of-"+name, protocol.EventCompleted)
			if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != w.exit {
				t.Errorf("%s: completed = %+v, failure %+v; want exit code %d", name, c, c.Failure, w.exit)
			}
			if got := listBlobs(t, az, "out", name+"/"); !slices.Equal(got, w.blobs) {
				t.Errorf("%s: uploaded %v, want %v", name, got, w.blobs)
			}
			for _, blob := range w.blobs {
				if data, _ := getBlob(t, az, "out", blob); string(data) != name+"\n" {
					t.Errorf("%s: %s holds %q", name, blob, data)
				}
			}
		}
		if c := s.waitEvent("of-slow", protocol.EventCompleted); !c.TimedOut {
			t.Errorf("of-slow did not time out: %+v", c)
		}
		if c := s.waitEvent("of-killed", protocol.EventCompleted); !c.Killed {
			t.Errorf("of-killed was not killed: %+v", c)
		}
		// Azure's upload logs, only where an upload was attempted.
		if log := readFile(t, filepath.Join(b.taskDir(ok), "fileuploadout.txt")); !strings.Contains(log, "wd/result.txt") {
			t.Errorf("fileuploadout.txt = %q", log)
		}
		if _, err := os.Stat(filepath.Join(b.taskDir(killed), "fileuploadout.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a killed task has an upload log: %v", err)
		}
	})

	t.Run("PatternsAndBlobNames", func(t *testing.T) {
		outside := filepath.Join(b.parent, "secret.txt")
		if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		as := task("of-pat", `/bin/sh -c '`+
			`mkdir -p out/sub/deep nested/dir && echo a > out/a.txt && echo b > out/sub/b.txt && `+
			`echo c > out/sub/deep/c.txt && echo h > out/.hidden.txt && echo x > out/x.log && `+
			`echo "{}" > result.json && echo r > nested/dir/r.bin && ln -s `+outside+` out/secret.txt && `+
			`echo to-stdout && echo to-stderr >&2'`)
		of := func(pattern, path string) protocol.OutputFile {
			return protocol.OutputFile{FilePattern: pattern, ContainerURL: write, Path: path, UploadCondition: protocol.UploadOnCompletion}
		}
		as.OutputFiles = []protocol.OutputFile{
			// Azure's own example: the task's logs, one level up.
			of("../std*.txt", "p/logs/task1"),
			of("out/**/*.txt", "p/results"),
			of("out/*.log", ""),
			of("result.json", "p/final/r.json"),
			of("nested/dir/r.bin", ""),
			of("$AZ_BATCH_TASK_DIR/stdout.txt", "p/abs/stdout.txt"),
			of("${AZ_BATCH_TASK_WORKING_DIR}/out/[ab].txt", "p/class/"),
			of("./out/s?b/*.txt", "/p/question"),
			of("nomatch/*.txt", "p/none"),
		}
		s.assign(as)
		c := s.waitEvent("of-pat", protocol.EventCompleted)
		if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != 0 {
			t.Fatalf("completed = %+v, failure %+v", c, c.Failure)
		}
		want := []string{
			"p/abs/stdout.txt",
			"p/class/a.txt",
			"p/final/r.json",
			"p/logs/task1/stderr.txt",
			"p/logs/task1/stdout.txt",
			"p/question/sub/b.txt",
			"p/results/a.txt",
			"p/results/sub/b.txt",
			"p/results/sub/deep/c.txt",
		}
		if got := listBlobs(t, az, "out", "p/"); !slices.Equal(got, want) {
			t.Errorf("uploaded\n%q\nwant\n%q", got, want)
		}
		for _, name := range []string{"x.log", "r.bin"} {
			if got := listBlobs(t, az, "out", name); !slices.Equal(got, []string{name}) {
				t.Errorf("%s: uploaded %v, want it at the container's root", name, got)
			}
		}
		if data, _ := getBlob(t, az, "out", "p/logs/task1/stdout.txt"); string(data) != "to-stdout\n" {
			t.Errorf("stdout.txt blob = %q", data)
		}
		if data, _ := getBlob(t, az, "out", "p/results/sub/deep/c.txt"); string(data) != "c\n" {
			t.Errorf("c.txt blob = %q", data)
		}
	})

	t.Run("UploadHeaders", func(t *testing.T) {
		as := task("of-headers", `/bin/sh -c 'echo "{}" > result.json'`)
		as.OutputFiles = []protocol.OutputFile{{
			FilePattern: "result.json", ContainerURL: write, Path: "h/result.json", UploadCondition: protocol.UploadOnSuccess,
			UploadHeaders: map[string]string{
				"Content-Type":                  "application/json",
				"content-language":              "en",
				"x-ms-blob-content-disposition": "attachment",
				"Cache-Control":                 "no-cache",
				"x-ms-meta-Origin":              "kiln",
				"X-Not-A-Blob-Header":           "ignored",
			},
		}}
		s.assign(as)
		if c := s.waitEvent("of-headers", protocol.EventCompleted); c.Failure != nil {
			t.Fatalf("failure %+v", c.Failure)
		}
		_, props := getBlob(t, az, "out", "h/result.json")
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		if str(props.ContentType) != "application/json" || str(props.ContentLanguage) != "en" ||
			str(props.ContentDisposition) != "attachment" || str(props.CacheControl) != "no-cache" {
			t.Errorf("blob properties: type %q, language %q, disposition %q, cache %q", str(props.ContentType),
				str(props.ContentLanguage), str(props.ContentDisposition), str(props.CacheControl))
		}
		var origin string
		for k, v := range props.Metadata {
			if strings.EqualFold(k, "origin") {
				origin = str(v)
			}
		}
		if origin != "kiln" {
			t.Errorf("metadata = %v, want Origin=kiln", props.Metadata)
		}
		if log := readFile(t, filepath.Join(b.taskDir(as), "fileuploaderr.txt")); !strings.Contains(log, "X-Not-A-Blob-Header") {
			t.Errorf("fileuploaderr.txt does not mention the ignored header: %q", log)
		}
	})

	t.Run("Failures", func(t *testing.T) {
		readOnly := az.ContainerSAS(t, "out", "rl", hour)
		cases := []struct {
			id, pattern, container, code string
			mentions                     string
		}{
			{"of-readonly", "result.txt", readOnly, agent.CodeFileUploadAccessDenied, "wd/result.txt"},
			{"of-nocontainer", "result.txt", az.ContainerSAS(t, "nosuchcontainer", "cw", hour), agent.CodeFileUploadContainerNotFound, "wd/result.txt"},
			{"of-missing", "missing.txt", write, agent.CodeFileUploadMiscError, "missing.txt"},
			{"of-up2", "../../x.txt", write, agent.CodeFileUploadMiscError, "../../x.txt"},
			{"of-updown", "out/../../../x.txt", write, agent.CodeFileUploadMiscError, "out/../../../x.txt"},
			{"of-abs", "/etc/passwd", write, agent.CodeFileUploadMiscError, "/etc/passwd"},
			{"of-badclass", "out/[ab.txt", write, agent.CodeFileUploadMiscError, "[ab.txt"},
			{"of-link", "link.txt", write, agent.CodeFileUploadMiscError, "link.txt"},
		}
		outside := filepath.Join(b.parent, "secret2.txt")
		if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			as := task(tc.id, `/bin/sh -c 'echo r > result.txt; ln -s `+outside+` link.txt; exit 5'`)
			as.OutputFiles = []protocol.OutputFile{
				{FilePattern: tc.pattern, ContainerURL: tc.container, Path: "f/" + tc.id, UploadCondition: protocol.UploadOnCompletion},
				// Uploaded all the same: one failure does not stop the others.
				{FilePattern: "result.txt", ContainerURL: write, Path: "f/" + tc.id + "-after", UploadCondition: protocol.UploadOnFailure},
			}
			s.assign(as)
		}
		for _, tc := range cases {
			c := s.waitEvent(tc.id, protocol.EventCompleted)
			checkFailure(t, c, tc.code, protocol.PhaseFileUpload, tc.mentions)
			if c.ExitCode == nil || *c.ExitCode != 5 {
				t.Errorf("%s: exit code %v, want the process's 5", tc.id, deref(c.ExitCode))
			}
			if got := listBlobs(t, az, "out", "f/"+tc.id); !slices.Equal(got, []string{"f/" + tc.id + "-after"}) {
				t.Errorf("%s: uploaded %v, want only the second output file", tc.id, got)
			}
			errLog := readFile(t, filepath.Join(b.taskDir(task(tc.id, "")), "fileuploaderr.txt"))
			if !strings.Contains(errLog, tc.mentions) || strings.Contains(errLog, "sig=") {
				t.Errorf("%s: fileuploaderr.txt = %q", tc.id, errLog)
			}
		}
	})
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
