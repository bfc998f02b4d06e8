package batchclient_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kilnbatch/kiln/batchclient"
)

// TestNewSeveralEndpoints: with the first of two endpoints down, requests
// reach the second, signed as usual.
func TestNewSeveralEndpoints(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" || r.URL.Path != "/jobs/j1" {
			http.Error(w, "unsigned or wrong path", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"j1"}`))
	}))
	defer live.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	c, err := batchclient.New(deadURL+","+live.URL, testAccount, testKeyB64, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.GetJob(t.Context(), "j1", nil)
	if err != nil {
		t.Fatalf("GetJob with the first endpoint down: %v", err)
	}
	if *j.ID != "j1" {
		t.Fatalf("job %q", *j.ID)
	}
	if _, err := batchclient.New(deadURL+",ftp://x", testAccount, testKeyB64, nil); err == nil {
		t.Fatal("an ftp:// endpoint in the list was accepted")
	}
}
