package failover_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/failover"
)

func TestSplit(t *testing.T) {
	got := failover.Split(" http://a:1/, ,https://b:2 ")
	if len(got) != 2 || got[0] != "http://a:1" || got[1] != "https://b:2" {
		t.Fatalf("Split = %q", got)
	}
	if failover.First("http://a:1,http://b:2") != "http://a:1" || failover.IsList("http://a:1") || !failover.IsList("http://a:1,http://b:2") {
		t.Fatal("First or IsList wrong")
	}
}

// TestFailover: with the first server down, a request (with a body) goes
// to the second, which stays the current one; when it goes down too and the
// first is back, requests go back to the first.
func TestFailover(t *testing.T) {
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, name+":"+r.URL.Path+":"+string(b))
		})
	}
	a := httptest.NewServer(handler("a"))
	b := httptest.NewServer(handler("b"))
	defer b.Close()
	aURL := a.URL
	a.Close() // the first server is down

	tr, err := failover.New([]string{aURL, b.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var switches []string
	tr.OnSwitch = func(from, to string) { switches = append(switches, from+"->"+to) }
	hc := &http.Client{Transport: tr}
	post := func(body string) (string, error) {
		resp, err := hc.Post(aURL+"/agent/v1/x", "text/plain", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return string(got), err
	}
	for _, body := range []string{"one", "two"} {
		got, err := post(body)
		if err != nil {
			t.Fatalf("post %s: %v", body, err)
		}
		if want := "b:/agent/v1/x:" + body; got != want {
			t.Fatalf("post %s answered %q, want %q", body, got, want)
		}
	}
	if tr.Current() != b.URL || len(switches) != 1 {
		t.Fatalf("current = %s, switches %q; want %s after one switch", tr.Current(), switches, b.URL)
	}

	// Requests to other hosts are not redirected.
	c := httptest.NewServer(handler("c"))
	defer c.Close()
	resp, err := hc.Get(c.URL + "/file")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "c:/file:" {
		t.Fatalf("other host answered %q", got)
	}

	// Both down: the error is the transport's.
	b.Close()
	if _, err := post("three"); err == nil {
		t.Fatal("post with every server down succeeded")
	}
}

// TestCancelKeepsServer: a request its caller cancels (agents cancel their
// long polls) leaves the current server as it is.
func TestCancelKeepsServer(t *testing.T) {
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then the server notices the client going
		<-r.Context().Done()
	})
	a := httptest.NewServer(block)
	defer a.Close()
	b := httptest.NewServer(block)
	defer b.Close()
	tr, err := failover.New([]string{a.URL, b.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/agent/v1/sync", strings.NewReader("{}"))
		if _, err := (&http.Client{Transport: tr}).Do(req); err == nil {
			t.Fatal("a cancelled request succeeded")
		}
		cancel()
		if tr.Current() != a.URL {
			t.Fatalf("current server after a cancelled request = %s, want %s", tr.Current(), a.URL)
		}
	}
}
