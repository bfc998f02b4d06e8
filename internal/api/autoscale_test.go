package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

// autoScaleOps answers the autoscale calls.
type autoScaleOps struct {
	fakeOps
	enabled *azbatch.EnablePoolAutoScaleContent
}

func (o *autoScaleOps) PoolEnableAutoScale(_ context.Context, account, poolID string, c *azbatch.EnablePoolAutoScaleContent, _ service.Conditions) (service.Object, error) {
	o.enabled = c
	return service.Object{ETag: "0x8D1", LastModified: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, nil
}

func (o *autoScaleOps) PoolDisableAutoScale(_ context.Context, account, poolID string) (service.Object, error) {
	return service.Object{ETag: "0x8D2"}, nil
}

func (o *autoScaleOps) PoolEvaluateAutoScale(_ context.Context, account, poolID string, c *azbatch.EvaluatePoolAutoScaleContent) (azbatch.AutoScaleRun, error) {
	if poolID == "plain" {
		return azbatch.AutoScaleRun{}, batch.Conflict("AutoScalingNotEnabled", "not enabled")
	}
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return azbatch.AutoScaleRun{Timestamp: &ts, Results: ptr("$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue")}, nil
}

func TestAutoScaleRoutes(t *testing.T) {
	t.Parallel()
	ops := &autoScaleOps{}
	b := setupWithOps(t, ops)

	resp, body := b.do(t, b.request(t, "POST", "/pools/p1/enableautoscale?api-version="+apiVersion, []byte(`{"autoScaleFormula":"$TargetDedicatedNodes=1;","autoScaleEvaluationInterval":"PT5M"}`)))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != "0x8D1" || resp.Header.Get("DataServiceId") == "" || len(body) != 0 {
		t.Fatalf("enable: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if ops.enabled == nil || *ops.enabled.AutoScaleFormula != "$TargetDedicatedNodes=1;" || *ops.enabled.AutoScaleEvaluationInterval != "PT5M" {
		t.Fatalf("enable body: %+v", ops.enabled)
	}

	resp, _ = b.do(t, b.request(t, "POST", "/pools/p1/disableautoscale?api-version="+apiVersion, nil))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != "0x8D2" {
		t.Fatalf("disable: %d", resp.StatusCode)
	}

	resp, body = b.do(t, b.request(t, "POST", "/pools/p1/evaluateautoscale?api-version="+apiVersion, []byte(`{"autoScaleFormula":"$TargetDedicatedNodes=1;"}`)))
	var run map[string]any
	if err := json.Unmarshal(body, &run); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("evaluate: %d %s", resp.StatusCode, body)
	}
	if run["odata.metadata"] != b.srv.URL+"/$metadata#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun" ||
		run["timestamp"] != "2025-01-02T03:04:05Z" || run["results"] == nil {
		t.Fatalf("evaluate body: %s", body)
	}

	resp, body = b.do(t, b.request(t, "POST", "/pools/plain/evaluateautoscale?api-version="+apiVersion, []byte(`{"autoScaleFormula":"$TargetDedicatedNodes=1;"}`)))
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("evaluate on a plain pool: %d %s", resp.StatusCode, body)
	}
}
