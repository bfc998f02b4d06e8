package service

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

func fullTask() *azbatch.Task {
	now := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	return &azbatch.Task{
		ID: ptr("t1"), URL: ptr("http://x/jobs/j/tasks/t1"), ETag: ptr(azcore.ETag("0x1")), DisplayName: ptr("T"),
		CreationTime: &now, LastModified: &now, StateTransitionTime: &now, PreviousStateTransitionTime: &now,
		State: ptr(azbatch.TaskStateCompleted), PreviousState: ptr(azbatch.TaskStateRunning),
		CommandLine: ptr("/bin/sh -c 'echo hi'"), RequiredSlots: ptr(int32(2)),
		Constraints:         &azbatch.TaskConstraints{MaxTaskRetryCount: ptr(int32(3)), MaxWallClockTime: ptr("PT1H"), RetentionTime: ptr("P7D")},
		EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: ptr("A"), Value: ptr("1")}, {Name: ptr("B")}},
		ResourceFiles:       []azbatch.ResourceFile{{HTTPURL: ptr("http://x/f"), FilePath: ptr("f"), FileMode: ptr("0644")}},
		OutputFiles:         []azbatch.OutputFile{{FilePattern: ptr("*.txt"), Destination: &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: ptr("http://c"), Path: ptr("p")}}, UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: ptr(azbatch.OutputFileUploadConditionTaskCompletion)}}},
		AffinityInfo:        &azbatch.AffinityInfo{AffinityID: ptr("TVM:x")},
		ExitConditions:      &azbatch.ExitConditions{Default: &azbatch.ExitOptions{JobAction: ptr(azbatch.JobActionNone)}},
		UserIdentity:        &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{Scope: ptr(azbatch.AutoUserScopePool), ElevationLevel: ptr(azbatch.ElevationLevelAdmin)}},
		NodeInfo:            &azbatch.NodeInfo{AffinityID: ptr("a"), NodeID: ptr("n"), NodeURL: ptr("u"), PoolID: ptr("p"), TaskRootDirectory: ptr("d"), TaskRootDirectoryURL: ptr("du")},
		ExecutionInfo: &azbatch.TaskExecutionInfo{
			StartTime: &now, EndTime: &now, ExitCode: ptr(int32(3)), RetryCount: ptr(int32(1)), RequeueCount: ptr(int32(2)),
			LastRetryTime: &now, LastRequeueTime: &now, Result: ptr(azbatch.TaskExecutionResultFailure),
			FailureInfo: &azbatch.TaskFailureInfo{Category: ptr(azbatch.ErrorCategoryUserError), Code: ptr("FailureExitCode"), Message: ptr("m"),
				Details: []azbatch.NameValuePair{{Name: ptr("Message"), Value: ptr("v")}}},
		},
	}
}

// TestEncodeTaskMatchesAzbatch checks the fast encoder writes the same JSON
// as the SDK's generated one, for a minimal and a fully populated task.
func TestEncodeTaskMatchesAzbatch(t *testing.T) {
	for name, task := range map[string]*azbatch.Task{
		"Minimal": {ID: ptr("t"), CommandLine: ptr("true"), State: ptr(azbatch.TaskStateActive)},
		"Full":    fullTask(),
	} {
		t.Run(name, func(t *testing.T) {
			fast, err := encodeTask(task)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := task.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var a, b map[string]any
			if err := json.Unmarshal(fast, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(slow, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("encodeTask:\n%s\nazbatch:\n%s", fast, slow)
			}
			var back azbatch.Task
			if err := back.UnmarshalJSON(fast); err != nil {
				t.Fatalf("azbatch cannot read it back: %v", err)
			}
		})
	}
}

func BenchmarkEncodeTask(b *testing.B) {
	task := fullTask()
	b.Run("Fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeTask(task); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Azbatch", func(b *testing.B) {
		for b.Loop() {
			if _, err := task.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeTaskMatchesAzbatch checks decodeTask reads what encodeTask
// writes exactly as azbatch.Task.UnmarshalJSON does.
func TestDecodeTaskMatchesAzbatch(t *testing.T) {
	for name, task := range map[string]*azbatch.Task{
		"Minimal": {ID: ptr("t"), CommandLine: ptr("true"), State: ptr(azbatch.TaskStateActive)},
		"Full":    fullTask(),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := encodeTask(task)
			if err != nil {
				t.Fatal(err)
			}
			fast, err := decodeTask(b)
			if err != nil {
				t.Fatal(err)
			}
			var slow azbatch.Task
			if err := slow.UnmarshalJSON(b); err != nil {
				t.Fatal(err)
			}
			fb, _ := fast.MarshalJSON()
			sb, _ := slow.MarshalJSON()
			if !reflect.DeepEqual(fast, &slow) && string(fb) != string(sb) {
				t.Fatalf("decodeTask:\n%s\nazbatch:\n%s", fb, sb)
			}
		})
	}
	if _, err := decodeTask([]byte(`{"id":5}`)); err == nil {
		t.Fatal("decodeTask accepted a number id")
	}
}
