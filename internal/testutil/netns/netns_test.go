package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostReachesRootAndCut: a process in a host reaches a server in the
// root namespace over the link, not after Cut, and again after Restore.
func TestHostReachesRootAndCut(t *testing.T) {
	a, b := New(t), New(t)
	if a.IP == b.IP || a.Name == b.Name {
		t.Fatalf("hosts share an address or name: %+v %+v", a, b)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	port := ln.Addr().(*net.TCPAddr).Port

	fetch := func(h *Host) (string, error) {
		// bash's /dev/tcp: no HTTP client needs to be installed.
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`, h.RootIP, port)
		out, err := h.Command("timeout", "3", "bash", "-c", script).CombinedOutput()
		body := string(out)
		if i := strings.Index(body, "\r\n\r\n"); i >= 0 {
			body = body[i+4:]
		}
		return strings.TrimSpace(body), err
	}
	for _, h := range []*Host{a, b} {
		got, err := fetch(h)
		if err != nil {
			t.Fatalf("%s: %v: %s", h.Name, err, got)
		}
		if got != h.IP {
			t.Fatalf("%s: server saw %q, want the host's own address %s", h.Name, got, h.IP)
		}
	}
	// The root namespace reaches a host's address too (as the server
	// reaches an agent's file server).
	if out, err := a.Command("ip", "-brief", "addr").CombinedOutput(); err != nil || !strings.Contains(string(out), a.IP) {
		t.Fatalf("namespace addresses: %v: %s", err, out)
	}
	if err := a.Cut(); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch(a); err == nil {
		t.Fatalf("reached the server over a cut link: %q", got)
	}
	if got, err := fetch(b); err != nil {
		t.Fatalf("cutting one host cut another: %v: %s", err, got)
	}
	if err := a.Restore(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := fetch(a)
		if err == nil && got == a.IP {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored link still down: %v %s", err, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
