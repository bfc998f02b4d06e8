package agent

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// TestLoadNodeID: a joining agent makes up a node id in Azure's shape once
// and keeps it in its root directory; a damaged file gets a new one.
func TestLoadNodeID(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	id, err := loadNodeID(root, true)
	if err != nil || !nodeIDShape.MatchString(id) || !strings.HasSuffix(id, "_d") {
		t.Fatalf("first id %q: %v", id, err)
	}
	if again, err := loadNodeID(root, true); err != nil || again != id {
		t.Fatalf("second load %q (want %q): %v", again, id, err)
	}
	if err := os.WriteFile(filepath.Join(root, NodeIDFile), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	low, err := loadNodeID(root, false)
	if err != nil || low == id || !strings.HasSuffix(low, "_p") {
		t.Fatalf("id after a damaged file %q: %v", low, err)
	}
}

// TestJoinedAnswers: a standby answer keeps the id it carries and waits its
// retryAfter; an agent that was a node goes back to standby instead; an
// admission keeps the id.
func TestJoinedAnswers(t *testing.T) {
	root := t.TempDir()
	a := &agent{cfg: Config{Join: true, NodeID: "tvmps_00000000000000000000000000000000_d"}, rootDir: root}
	a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	given := "tvmps_11111111111111111111111111111111_d"
	err := a.joined(&protocol.RegisterResponse{NodeID: given, Standby: true, RetryAfter: protocol.Duration(3 * time.Second), Message: "full"})
	wait, ok := a.standbyWait(err)
	if !ok || wait != 3*time.Second || a.cfg.NodeID != given {
		t.Fatalf("standby: %v %v %v, id %s", err, wait, ok, a.cfg.NodeID)
	}
	if b, _ := os.ReadFile(filepath.Join(root, NodeIDFile)); strings.TrimSpace(string(b)) != given {
		t.Fatalf("kept id %q, want %q", b, given)
	}
	if err := a.joined(&protocol.RegisterResponse{NodeID: given, NodeToken: "t"}); err != nil {
		t.Fatalf("admission: %v", err)
	}
	a.token = "t"
	if err := a.joined(&protocol.RegisterResponse{NodeID: given, Standby: true}); !errors.Is(err, errBackToStandby) {
		t.Fatalf("standby of an agent that was a node: %v", err)
	}
}
