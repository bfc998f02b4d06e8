package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestTranscodeExample runs examples/transcode/run.sh, the Azure Batch
// ffmpeg tutorial with the kiln CLI, against a real server: videos uploaded
// to Kiln storage, an application package, a pool whose start task checks
// for ffmpeg, one task per video with resource and output files, and the
// outputs downloaded. Every input must come back as a smaller 320x180 video.
func TestTranscodeExample(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install ffmpeg (apt-get install ffmpeg)", tool)
		}
	}
	s := StartServer(t, nil)
	work := t.TempDir()

	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, "bash", "../../examples/transcode/run.sh")
	cmd.Env = append(os.Environ(),
		"KILN="+kilnBin, "KILN_DATA_DIR="+s.DataDir, "WORK_DIR="+work,
		"KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=",
		// The script's defaults, whatever the caller's environment says.
		"POOL_ID=transcode-pool", "JOB_ID=transcode-job", "INPUT_CONTAINER=videos", "OUTPUT_CONTAINER=transcoded",
		"APP_ID=transcoder", "APP_VERSION=1.0", "NODES=2", "SLOTS=2", "VIDEO_SECONDS=3", "NODE_WAIT=60", "TIMEOUT=2m")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh failed after %v: %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
	}
	t.Logf("run.sh took %v", time.Since(start).Round(time.Millisecond))

	inputs, _ := filepath.Glob(filepath.Join(work, "videos", "*.mp4"))
	if len(inputs) < 3 {
		t.Fatalf("run.sh generated %d videos, want at least 3:\n%s", len(inputs), out)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".mp4")
		outPath := filepath.Join(work, "output", name+"_small.mp4")
		ost, err := os.Stat(outPath)
		if err != nil {
			t.Errorf("%s has no transcoded output: %v", name, err)
			continue
		}
		ist, _ := os.Stat(in)
		if ost.Size() >= ist.Size() {
			t.Errorf("%s: output of %d bytes is not smaller than the input's %d", name, ost.Size(), ist.Size())
		}
		probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
			"-show_entries", "stream=width,height", "-of", "csv=s=x:p=0", outPath).CombinedOutput()
		if err != nil || strings.TrimSpace(string(probe)) != "320x180" {
			t.Errorf("%s: ffprobe says %q (%v), want 320x180", name, probe, err)
		}
	}

	// One task per video, each succeeded and uploaded its output file.
	tasks := s.ListTasks(t, "transcode-job", nil)
	if len(tasks) != len(inputs) {
		t.Fatalf("%d tasks for %d videos", len(tasks), len(inputs))
	}
	for _, task := range tasks {
		if task.ExecutionInfo == nil || task.ExecutionInfo.Result == nil || *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			b, _ := json.Marshal(task.ExecutionInfo)
			t.Errorf("task %s did not succeed: state %v, executionInfo %s", *task.ID, *task.State, b)
		}
	}
	if t.Failed() {
		t.Logf("run.sh output:\n%s", out)
	}
}
