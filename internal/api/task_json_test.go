package api

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestDecodeTaskGroupMatchesAzbatch checks the fast decoder reads an Add
// Task Collection body exactly as azbatch.TaskGroup.UnmarshalJSON does.
func TestDecodeTaskGroupMatchesAzbatch(t *testing.T) {
	body := `{"value":[
	  {"id":"t1","commandLine":"echo hi","displayName":"one","requiredSlots":2,
	   "constraints":{"maxWallClockTime":"PT1H","retentionTime":"P1D","maxTaskRetryCount":3},
	   "environmentSettings":[{"name":"A","value":"1"},{"name":"B"}],
	   "resourceFiles":[{"httpUrl":"http://x/f","filePath":"f","fileMode":"0644"},{"autoStorageContainerName":"c","blobPrefix":"p"}],
	   "outputFiles":[{"filePattern":"*.txt","destination":{"container":{"containerUrl":"http://c","path":"p"}},"uploadOptions":{"uploadCondition":"taskcompletion"}}],
	   "affinityInfo":{"affinityId":"TVM:x"},
	   "userIdentity":{"autoUser":{"scope":"task","elevationLevel":"admin"}},
	   "exitConditions":{"exitCodes":[{"code":3,"exitOptions":{"jobAction":"terminate"}}],"default":{"jobAction":"none"}},
	   "multiInstanceSettings":{"numberOfInstances":3,"coordinationCommandLine":"c"},
	   "dependsOn":{"taskIds":["a","b"],"taskIdRanges":[{"start":1,"end":9}]},
	   "applicationPackageReferences":[{"applicationId":"app","version":"1"}],
	   "authenticationTokenSettings":{"access":["job"]},
	   "containerSettings":{"imageName":"ubuntu"},
	   "unknownProperty":{"ignored":true}},
	  {"id":"t2","commandLine":"true"},
	  {"id":"t3","commandLine":"true","constraints":null,"environmentSettings":null,"resourceFiles":null}
	]}`
	fast, err := decodeTaskGroup([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var slow azbatch.TaskGroup
	if err := json.Unmarshal([]byte(body), &slow); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, slow) {
		a, _ := json.Marshal(fast)
		b, _ := json.Marshal(slow)
		t.Fatalf("decodeTaskGroup:\n%s\nazbatch:\n%s", a, b)
	}
	for _, bad := range []string{`{"value":[{"id":5}]}`, `{"value":[{"resourceFiles":{}}]}`, `{"value":[{"constraints":{"maxTaskRetryCount":"x"}}]}`, `{"value":`} {
		if _, err := decodeTaskGroup([]byte(bad)); err == nil {
			t.Errorf("decodeTaskGroup(%s) succeeded", bad)
		}
	}
}
