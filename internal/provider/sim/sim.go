// Package sim is a node provider for load tests. It starts no process: Start
// writes the node's spec as JSON to <Dir>/<nodeId>.json and Stop removes the
// file. A harness (`kiln bench`) watches the directory and runs one simulated
// agent (package internal/agent/simagent) per spec, so that one process can
// stand in for a thousand nodes that speak the real agent protocol.
//
// `kiln server --provider sim` selects it; the directory is
// <data-dir>/sim-nodes (DirName).
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kilnbatch/kiln/internal/provider"
)

// DirName is the directory, inside the server's data directory, where
// `kiln server --provider sim` writes node specs.
const DirName = "sim-nodes"

// Spec is what a simulated agent needs to join: the content of a spec file.
type Spec struct {
	Account   string `json:"account"`
	PoolID    string `json:"poolId"`
	NodeID    string `json:"nodeId"`
	Token     string `json:"token"`
	ServerURL string `json:"serverUrl"`
	Dedicated bool   `json:"dedicated"`
}

// Provider writes and removes node spec files.
type Provider struct{ dir string }

var _ provider.Provider = (*Provider)(nil)

// New returns a provider writing specs to dir (created if missing).
func New(dir string) (*Provider, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim provider: %w", err)
	}
	return &Provider{dir: dir}, nil
}

// Dir is the directory holding the spec files.
func (p *Provider) Dir() string { return p.dir }

func (p *Provider) Name() string { return "sim" }

// SpecPath is the spec file of a node in dir.
func SpecPath(dir, nodeID string) string { return filepath.Join(dir, nodeID+".json") }

// Start writes the node's spec file (atomically: a watcher never sees it
// half written). The file holds the node's join token, so it is private.
func (p *Provider) Start(_ context.Context, n provider.NodeSpec) error {
	if n.NodeID == "" || strings.ContainsAny(n.NodeID, `/\`) || strings.HasPrefix(n.NodeID, ".") {
		return fmt.Errorf("sim provider: invalid node id %q", n.NodeID)
	}
	b, err := json.Marshal(Spec{
		Account: n.Account, PoolID: n.PoolID, NodeID: n.NodeID,
		Token: n.Token, ServerURL: n.ServerURL, Dedicated: n.Dedicated,
	})
	if err != nil {
		return err
	}
	// The temporary name starts with a dot and does not end in .json, so
	// that watchers skip it.
	tmp := filepath.Join(p.dir, "."+n.NodeID+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sim provider: %w", err)
	}
	if err := os.Rename(tmp, SpecPath(p.dir, n.NodeID)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sim provider: %w", err)
	}
	return nil
}

// Stop removes the node's spec file; a missing file is not an error.
func (p *Provider) Stop(_ context.Context, n provider.NodeSpec) error {
	if err := os.Remove(SpecPath(p.dir, n.NodeID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sim provider: %w", err)
	}
	return nil
}

// Images lists the one image simulated nodes "run".
func (p *Provider) Images() []provider.Image {
	return []provider.Image{{
		NodeAgentSKUID: "batch.node.kiln.sim",
		Publisher:      "kiln",
		Offer:          "sim",
		SKU:            "sim",
		Version:        "latest",
		OSType:         "linux",
	}}
}

// ReadSpecs returns the specs of every node whose file is in dir, by node
// id. Files that vanish or are unreadable while it reads are skipped.
func ReadSpecs(dir string) (map[string]Spec, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Spec, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !IsSpecFile(name) {
			continue
		}
		s, err := ReadSpec(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		out[s.NodeID] = s
	}
	return out, nil
}

// IsSpecFile reports whether a file name in the directory is a spec file
// (not a temporary one).
func IsSpecFile(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json")
}

// ReadSpec reads one spec file.
func ReadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return Spec{}, fmt.Errorf("sim spec %s: %w", path, err)
	}
	if s.NodeID == "" {
		return Spec{}, fmt.Errorf("sim spec %s: no nodeId", path)
	}
	return s, nil
}
