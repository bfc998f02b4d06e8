package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/server"
)

// TestPoolJoinToken runs `kiln pool create --metadata kiln.provider=agents`
// and `kiln pool join-token` against a real in-process server: the token is
// created once and shown again, the command line joins the pool, --rotate
// replaces it, and a pool of another provider has none.
func TestPoolJoinToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := base64.StdEncoding.EncodeToString([]byte("join-token-test-key-0123456789abcdef"))
	srv, err := server.Start(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AccountName: "jtacct", AccountKey: key,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	run := func(args ...string) cliResult {
		t.Helper()
		root := &cobra.Command{Use: "kiln", SilenceErrors: true, SilenceUsage: true}
		addClientCommands(root, &globalOptions{getenv: envMap(nil)})
		var stdout, stderr bytes.Buffer
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		root.SetArgs(append([]string{"--url", srv.URL(), "--account-name", "jtacct", "--account-key", key, "--data-dir", t.TempDir()}, args...))
		code := HandleError(&stderr, root.ExecuteContext(ctx))
		return cliResult{stdout.String(), stderr.String(), code}
	}

	if res := run("pool", "create", "--id", "byo", "--target-dedicated-nodes", "2", "--metadata", "kiln.provider=agents", "--metadata", "team=render"); res.code != 0 {
		t.Fatalf("pool create: exit %d, stderr %q", res.code, res.stderr)
	}
	res := run("pool", "join-token", "byo")
	if res.code != 0 {
		t.Fatalf("join-token: exit %d, stderr %q", res.code, res.stderr)
	}
	var tok string
	for _, line := range strings.Split(res.stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "Token:"); ok {
			tok = strings.TrimSpace(v)
		}
	}
	wantCmd := "kiln agent --server " + srv.URL() + " --pool byo --token " + tok
	if !strings.HasPrefix(tok, "kjt_") || !strings.Contains(res.stdout, "Pool:    byo\n") || !strings.Contains(res.stdout, "\n  "+wantCmd+"\n") {
		t.Fatalf("join-token table:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, "loopback") {
		t.Errorf("no loopback note for %s: stderr %q", srv.URL(), res.stderr)
	}

	res = run("pool", "join-token", "byo", "-o", "json")
	var doc poolJoinToken
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &doc) != nil || doc.Token != tok || doc.PoolID != "byo" || doc.Command != wantCmd || doc.AgentURL != srv.URL() {
		t.Fatalf("join-token json: exit %d %q %q", res.code, res.stdout, res.stderr)
	}

	res = run("pool", "join-token", "byo", "--rotate", "-o", "json")
	var rotated poolJoinToken
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &rotated) != nil || rotated.Token == tok || !strings.HasPrefix(rotated.Token, "kjt_") {
		t.Fatalf("join-token --rotate: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
	res = run("pool", "join-token", "byo", "--rotate")
	if res.code != 0 || !strings.Contains(res.stdout, "Removed nodes:  (none)") {
		t.Fatalf("join-token --rotate table: exit %d\n%s", res.code, res.stdout)
	}

	if res := run("pool", "create", "--id", "plain"); res.code != 0 {
		t.Fatalf("pool create plain: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := run("pool", "join-token", "plain"); res.code != 1 || !strings.Contains(res.stderr, "PoolProviderNotAgents") {
		t.Fatalf("join-token of a local pool: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := run("pool", "join-token", "missing"); res.code != 1 || !strings.Contains(res.stderr, "PoolNotFound") {
		t.Fatalf("join-token of a missing pool: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := run("pool", "create", "--id", "bad", "--metadata", "kiln.provider=nope"); res.code != 1 || !strings.Contains(res.stderr, "metadata") {
		t.Fatalf("pool create with an unknown provider: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := run("pool", "create", "--id", "bad", "--metadata", "novalue"); res.code != 1 || !strings.Contains(res.stderr, "NAME=VALUE") {
		t.Fatalf("pool create --metadata novalue: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestAgentJoinCommand(t *testing.T) {
	got := agentJoinCommand(poolJoinToken{AgentURL: "https://h1:8080,https://h2:8080", PoolID: "p 1", Token: "kjt_ab"}, "SHA256:00")
	want := "kiln agent --server https://h1:8080,https://h2:8080 --pool 'p 1' --token kjt_ab --server-fingerprint SHA256:00"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for u, want := range map[string]bool{"http://127.0.0.1:1": true, "https://localhost:2,http://[::1]:3": true, "http://10.0.0.1:1": false, "http://127.0.0.1:1,http://h:2": false, "": false} {
		if loopbackURL(u) != want {
			t.Errorf("loopbackURL(%q) = %v", u, !want)
		}
	}
}
