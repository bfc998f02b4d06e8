package agent

import (
	"strings"
	"testing"

	"github.com/kilnbatch/kiln/internal/agent/outglob"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Unit tests of the naming rules: output file patterns and blob names,
// application package variables and directories, blob and zip entry names.

func TestTaskPattern(t *testing.T) {
	t.Parallel()
	const dir = "/node/workitems/j/job-1/t"
	vars := map[string]string{"AZ_BATCH_TASK_DIR": dir, "AZ_BATCH_TASK_WORKING_DIR": dir + "/wd", "SUB": "out"}
	ok := map[string]string{
		"result.txt":                      "wd/result.txt",
		"./out/*.txt":                     "wd/out/*.txt",
		"**/*.txt":                        "wd/**/*.txt",
		"../std*.txt":                     "std*.txt",
		"./../stdout.txt":                 "stdout.txt",
		"../wd/x":                         "wd/x",
		dir + "/stdout.txt":               "stdout.txt",
		dir + "/wd/../std*.txt":           "std*.txt",
		"$AZ_BATCH_TASK_DIR/stderr.txt":   "stderr.txt",
		"${AZ_BATCH_TASK_WORKING_DIR}/*":  "wd/*",
		"$SUB/a.txt":                      "wd/out/a.txt",
		"abc[*]":                          "wd/abc[*]",
		"a..b":                            "wd/a..b",
		"../":                             "",
		dir + "/../t/wd/result.txt":       "wd/result.txt",
		dir + "/wd/sub/../../stdout.txt":  "stdout.txt",
		"./././../fileuploaderr.txt":      "fileuploaderr.txt",
		"$AZ_BATCH_TASK_DIR/wd/**/*.json": "wd/**/*.json",
	}
	for in, want := range ok {
		got, err := taskPattern(in, dir, vars)
		if err != nil || got != want {
			t.Errorf("taskPattern(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "../../x", "../a/../b", "out/../../x", "a/../b", "/etc/passwd", dir, dir + "/..", dir + "x/y", "$NOTHING", "$UNSET/a.txt"} {
		if got, err := taskPattern(in, dir, vars); err == nil {
			t.Errorf("taskPattern(%q) = %q, want an error", in, got)
		}
	}
}

func TestBlobName(t *testing.T) {
	t.Parallel()
	cases := []struct{ pattern, match, path, want string }{
		{"wd/result.txt", "wd/result.txt", "", "result.txt"},
		{"wd/out/result.txt", "wd/out/result.txt", "", "result.txt"},
		{"wd/out/result.txt", "wd/out/result.txt", "task1/output.txt", "task1/output.txt"},
		{"std*.txt", "stdout.txt", "mytask", "mytask/stdout.txt"},
		{"std*.txt", "stderr.txt", "mytask/", "mytask/stderr.txt"},
		{"std*.txt", "stderr.txt", "", "stderr.txt"},
		{"wd/**/*.txt", "wd/a/b/c.txt", "out", "out/a/b/c.txt"},
		{"wd/logs/*.log", "wd/logs/x.log", "/v/d", "v/d/x.log"},
		{"wd/*/x.bin", "wd/a/x.bin", "p", "p/a/x.bin"},
	}
	for _, tc := range cases {
		p, err := outglob.Compile(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := blobName(p, tc.match, tc.path); got != tc.want {
			t.Errorf("blobName(%q, %q, %q) = %q, want %q", tc.pattern, tc.match, tc.path, got, tc.want)
		}
	}
}

func TestAppPackageNames(t *testing.T) {
	t.Parallel()
	vars := map[[2]string]string{
		{"blender", "2.7"}:                   "AZ_BATCH_APP_PACKAGE_blender_2_7",
		{"blender", ""}:                      "AZ_BATCH_APP_PACKAGE_blender",
		{"Agent-linux-x64", "1.1.46.0"}:      "AZ_BATCH_APP_PACKAGE_Agent_linux_x64_1_1_46_0",
		{"FOO", "1"}:                         "AZ_BATCH_APP_PACKAGE_FOO_1",
		{"my#app", "v1-beta.2"}:              "AZ_BATCH_APP_PACKAGE_my_app_v1_beta_2",
		{"with space/slash", "1"}:            "AZ_BATCH_APP_PACKAGE_with_space_slash_1",
		{"under_score", "1_0"}:               "AZ_BATCH_APP_PACKAGE_under_score_1_0",
		{"Ünïcode", "1"}:                     "AZ_BATCH_APP_PACKAGE___n__code_1",
		{"litware", "1.1001.2b"}:             "AZ_BATCH_APP_PACKAGE_litware_1_1001_2b",
		{"PersistOutputsTask", "1.0"}:        "AZ_BATCH_APP_PACKAGE_PersistOutputsTask_1_0",
		{"ffmpeg", "4.3.1"}:                  "AZ_BATCH_APP_PACKAGE_ffmpeg_4_3_1",
		{"app.with.dots", "2024.07.01.20.0"}: "AZ_BATCH_APP_PACKAGE_app_with_dots_2024_07_01_20_0",
	}
	for in, want := range vars {
		if got := appPackageVar(in[0], in[1]); got != want {
			t.Errorf("appPackageVar(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}

	a := packageDir(protocol.Package{ApplicationID: "ab", Version: "1"})
	b := packageDir(protocol.Package{ApplicationID: "a", Version: "b1"})
	if !strings.HasPrefix(a, "applications/ab1.") || !strings.HasPrefix(b, "applications/ab1.") || a == b {
		t.Errorf("package directories %q and %q: want applications/ab1.<hash>, different hashes", a, b)
	}
	// Never a hidden name: those are the agent's temporary files.
	odd := packageDir(protocol.Package{ApplicationID: "../x/y", Version: "1"})
	if strings.Count(odd, "/") != 1 || !strings.HasPrefix(odd, "applications/_.._x_y1.") {
		t.Errorf("packageDir of a strange id = %q", odd)
	}
}

func TestZipEntryName(t *testing.T) {
	t.Parallel()
	ok := map[string]string{
		"a.txt": "a.txt", "dir/": "dir", "dir/b": "dir/b", "./c": "c", "./": ".", `win\path.txt`: "win/path.txt",
		"a//b": "a/b", "..a/b..": "..a/b..",
	}
	for in, want := range ok {
		if got, err := zipEntryName(in); err != nil || got != want {
			t.Errorf("zipEntryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"../x", "a/../../x", "a/../b", `..\x`, `a\..\..\x`, "/etc/passwd", `\x`, "..", "x\x00y"} {
		if got, err := zipEntryName(in); err == nil {
			t.Errorf("zipEntryName(%q) = %q, want an error", in, got)
		}
	}
}

func TestBlobLocalName(t *testing.T) {
	t.Parallel()
	ok := map[[2]string]string{
		{".", "a.txt"}:      "a.txt",
		{".", "d/e/f.txt"}:  "d/e/f.txt",
		{"in", "d/f"}:       "in/d/f",
		{".", "a//b"}:       "a/b",
		{".", "..x/y.."}:    "..x/y..",
		{".", `back\slash`}: `back\slash`,
	}
	for in, want := range ok {
		if got, _, err := blobLocalName(in[0], in[1]); err != nil || got != want {
			t.Errorf("blobLocalName(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	if got, isDir, err := blobLocalName("in", "marker/"); err != nil || !isDir || got != "in/marker" {
		t.Errorf("directory marker: %q, %v, %v", got, isDir, err)
	}
	for _, name := range []string{"../x", "a/../../x", "a/./b", "./a", "/abs", "a/..", "../"} {
		if got, _, err := blobLocalName(".", name); err == nil {
			t.Errorf("blobLocalName(%q) = %q, want an error", name, got)
		}
	}
}
