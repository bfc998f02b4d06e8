package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/provider/sim"
)

func TestStartStop(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "sim-nodes")
	p, err := sim.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "sim" || len(p.Images()) != 1 || p.Dir() != dir {
		t.Errorf("name %q, images %v, dir %q", p.Name(), p.Images(), p.Dir())
	}
	n1 := provider.NodeSpec{Account: "acct", PoolID: "pool1", NodeID: "tvmps_1", Dedicated: true, Token: "secret1", ServerURL: "http://127.0.0.1:8080"}
	n2 := provider.NodeSpec{Account: "acct", PoolID: "pool1", NodeID: "tvmps_2", Token: "secret2", ServerURL: "http://127.0.0.1:8080"}
	for _, n := range []provider.NodeSpec{n1, n2} {
		if err := p.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file and a stray file are not specs.
	_ = os.WriteFile(filepath.Join(dir, ".tvmps_3.tmp"), []byte("{"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)

	specs, err := sim.ReadSpecs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Spec{Account: "acct", PoolID: "pool1", NodeID: "tvmps_1", Token: "secret1", ServerURL: "http://127.0.0.1:8080", Dedicated: true}
	if len(specs) != 2 || specs["tvmps_1"] != want || specs["tvmps_2"].Dedicated {
		t.Fatalf("specs %+v", specs)
	}
	fi, err := os.Stat(sim.SpecPath(dir, "tvmps_1"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("spec file mode %v, %v: it holds the join token", fi.Mode(), err)
	}

	if err := p.Stop(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, n1); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	specs, _ = sim.ReadSpecs(dir)
	if _, ok := specs["tvmps_1"]; ok || len(specs) != 1 {
		t.Errorf("after Stop: %+v", specs)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := p.Start(ctx, provider.NodeSpec{NodeID: bad}); err == nil {
			t.Errorf("Start(%q) succeeded", bad)
		}
	}
	if _, err := sim.ReadSpec(filepath.Join(dir, ".tvmps_3.tmp")); err == nil {
		t.Error("ReadSpec of a broken file succeeded")
	}
}
