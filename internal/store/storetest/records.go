package storetest

import (
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/store"
)

func testAccount(t *testing.T, setup setupFunc) {
	acct := func(name string) store.Account {
		return store.Account{
			Name:         name,
			PrimaryKey:   "cHJpbWFyeQ==",
			SecondaryKey: "c2Vjb25kYXJ5",
			CreationTime: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600)),
		}
	}
	requireAccount := func(t *testing.T, got, want store.Account) {
		t.Helper()
		if got.Name != want.Name || got.PrimaryKey != want.PrimaryKey ||
			got.SecondaryKey != want.SecondaryKey || !got.CreationTime.Equal(want.CreationTime) {
			t.Fatalf("account = %+v, want %+v", got, want)
		}
	}

	t.Run("InsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := acct("Acct1")
		requireNoError(t, b.s.AccountInsert(b.ctx, want))

		got, err := b.s.AccountGet(b.ctx, "Acct1")
		requireNoError(t, err)
		requireAccount(t, got, want)

		// Case-insensitive lookup, case-preserving result.
		got, err = b.s.AccountGet(b.ctx, "ACCT1")
		requireNoError(t, err)
		requireAccount(t, got, want)
	})

	t.Run("ZeroCreationTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := store.Account{Name: "acct1", PrimaryKey: "a", SecondaryKey: "b"}
		requireNoError(t, b.s.AccountInsert(b.ctx, want))
		got, err := b.s.AccountGet(b.ctx, "acct1")
		requireNoError(t, err)
		requireAccount(t, got, want)
		if !got.CreationTime.IsZero() {
			t.Fatalf("creation time = %v, want zero", got.CreationTime)
		}
	})

	t.Run("UpdateKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := acct("Acct1")
		requireNoError(t, b.s.AccountInsert(b.ctx, want))
		want.PrimaryKey, want.SecondaryKey = "bmV3LXByaW1hcnk=", "bmV3LXNlY29uZGFyeQ=="
		requireNoError(t, b.s.AccountUpdate(b.ctx, store.Account{Name: "ACCT1", PrimaryKey: want.PrimaryKey, SecondaryKey: want.SecondaryKey}))
		got, err := b.s.AccountGet(b.ctx, "acct1")
		requireNoError(t, err)
		requireAccount(t, got, want) // keys replaced, name and creation time kept
		requireErrorIs(t, b.s.AccountUpdate(b.ctx, store.Account{Name: "nosuch"}), store.ErrNotFound)
	})

	t.Run("ErrExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.AccountInsert(b.ctx, acct("acct1")))
		requireErrorIs(t, b.s.AccountInsert(b.ctx, acct("acct1")), store.ErrExists)
		requireErrorIs(t, b.s.AccountInsert(b.ctx, acct("ACCT1")), store.ErrExists)

		// The original is untouched.
		got, err := b.s.AccountGet(b.ctx, "acct1")
		requireNoError(t, err)
		requireEqual(t, "name", got.Name, "acct1")
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.s.AccountGet(b.ctx, "missing")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.AccountList(b.ctx)
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		for _, name := range []string{"bravo", "alpha", "charlie"} {
			requireNoError(t, b.s.AccountInsert(b.ctx, acct(name)))
		}
		got, err = b.s.AccountList(b.ctx)
		requireNoError(t, err)
		requireIDs(t, "accounts", got, accountName, "alpha", "bravo", "charlie")
		requireAccount(t, got[0], acct("alpha"))
	})
}

func testPool(t *testing.T, setup setupFunc) {
	t.Run("InsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := pool("acct", "Pool1")
		requireNoError(t, b.s.PoolInsert(b.ctx, want))

		got, err := b.s.PoolGet(b.ctx, "acct", "Pool1")
		requireNoError(t, err)
		requirePool(t, got, want)

		got, err = b.s.PoolGet(b.ctx, "ACCT", "pool1")
		requireNoError(t, err)
		requirePool(t, got, want)
	})

	t.Run("ErrExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		requireErrorIs(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")), store.ErrExists)
		requireErrorIs(t, b.s.PoolInsert(b.ctx, pool("acct", "POOL1")), store.ErrExists)

		got, err := b.s.PoolGet(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requirePool(t, got, pool("acct", "pool1"))
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		_, err := b.s.PoolGet(b.ctx, "acct", "missing")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.PoolGet(b.ctx, "other", "pool1")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.PoolList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		for _, id := range []string{"pool-b", "pool-c", "pool-a"} {
			requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", id)))
		}
		got, err = b.s.PoolList(b.ctx, "acct")
		requireNoError(t, err)
		requireIDs(t, "pools", got, poolID, "pool-a", "pool-b", "pool-c")
		requirePool(t, got[0], pool("acct", "pool-a"))
	})
}

func testNode(t *testing.T, setup setupFunc) {
	t.Run("UpsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := node("acct", "Node1", "pool1")
		b.apply(t, &store.Writes{Nodes: []store.Node{want}})

		got, err := b.s.NodeGet(b.ctx, "acct", "Node1")
		requireNoError(t, err)
		requireNode(t, got, want)

		got, err = b.s.NodeGet(b.ctx, "ACCT", "NODE1")
		requireNoError(t, err)
		requireNode(t, got, want)

		// An upsert replaces the record.
		want.State = "running"
		want.PoolID = "pool2"
		want.Doc = []byte(`{"state":"running"}`)
		b.apply(t, &store.Writes{Nodes: []store.Node{want}})
		got, err = b.s.NodeGet(b.ctx, "acct", "node1")
		requireNoError(t, err)
		requireNode(t, got, want)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.apply(t, &store.Writes{Nodes: []store.Node{node("acct", "node1", "pool1")}})
		_, err := b.s.NodeGet(b.ctx, "acct", "missing")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.NodeGet(b.ctx, "other", "node1")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ListByPool", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.NodeListByPool(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		b.apply(t, &store.Writes{Nodes: []store.Node{
			node("acct", "node-c", "pool1"),
			node("acct", "node-a", "pool1"),
			node("acct", "node-b", "pool2"),
			node("acct", "node-d", "pool1"),
			node("other", "node-e", "pool1"),
		}})
		got, err = b.s.NodeListByPool(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requireIDs(t, "pool1 nodes", got, nodeID, "node-a", "node-c", "node-d")
		requireNode(t, got[0], node("acct", "node-a", "pool1"))

		// Pool ids are case-insensitive too.
		got, err = b.s.NodeListByPool(b.ctx, "acct", "POOL2")
		requireNoError(t, err)
		requireIDs(t, "pool2 nodes", got, nodeID, "node-b")

		// A node that moves pool moves list.
		b.apply(t, &store.Writes{Nodes: []store.Node{node("acct", "node-b", "pool1")}})
		got, err = b.s.NodeListByPool(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requireIDs(t, "pool1 nodes", got, nodeID, "node-a", "node-b", "node-c", "node-d")
	})

	t.Run("ListAll", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.NodeListAll(b.ctx)
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		want := []store.Node{
			node("acct1", "node-a", "pool1"),
			node("acct1", "node-b", "pool2"),
			node("acct2", "node-a", "pool1"),
		}
		b.apply(t, &store.Writes{Nodes: want})
		got, err = b.s.NodeListAll(b.ctx)
		requireNoError(t, err)
		requireEqual(t, "len(nodes)", len(got), len(want))
		for _, w := range want {
			found := false
			for _, g := range got {
				if g.Account == w.Account && g.ID == w.ID {
					requireNode(t, g, w)
					found = true
				}
			}
			if !found {
				t.Fatalf("node %s/%s not listed", w.Account, w.ID)
			}
		}
	})
}

func testJob(t *testing.T, setup setupFunc) {
	t.Run("InsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := job("acct", "Job1")
		want.Priority = -42
		want.State = "disabled"
		requireNoError(t, b.s.JobInsert(b.ctx, want))

		got, err := b.s.JobGet(b.ctx, "acct", "Job1")
		requireNoError(t, err)
		requireJob(t, got, want)

		got, err = b.s.JobGet(b.ctx, "ACCT", "JOB1")
		requireNoError(t, err)
		requireJob(t, got, want)
	})

	t.Run("ErrExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		requireErrorIs(t, b.s.JobInsert(b.ctx, job("acct", "job1")), store.ErrExists)
		requireErrorIs(t, b.s.JobInsert(b.ctx, job("acct", "JOB1")), store.ErrExists)

		got, err := b.s.JobGet(b.ctx, "acct", "job1")
		requireNoError(t, err)
		requireJob(t, got, job("acct", "job1"))
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		_, err := b.s.JobGet(b.ctx, "acct", "missing")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.JobGet(b.ctx, "other", "job1")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.JobList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		for _, id := range []string{"job-2", "job-3", "job-1"} {
			requireNoError(t, b.s.JobInsert(b.ctx, job("acct", id)))
		}
		got, err = b.s.JobList(b.ctx, "acct")
		requireNoError(t, err)
		requireIDs(t, "jobs", got, jobID, "job-1", "job-2", "job-3")
		requireJob(t, got[0], job("acct", "job-1"))
	})
}
