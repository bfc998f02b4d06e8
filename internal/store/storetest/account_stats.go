package storetest

import (
	"bytes"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func accountStats(account, kind string) store.AccountStats {
	return store.AccountStats{Account: account, Kind: kind, Doc: doc("stats", account, kind)}
}

func requireAccountStats(t *testing.T, got []store.AccountStats, want ...store.AccountStats) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("account stats = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Account != want[i].Account || got[i].Kind != want[i].Kind || !bytes.Equal(got[i].Doc, want[i].Doc) {
			t.Fatalf("account stats[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testAccountStats(t *testing.T, setup setupFunc) {
	t.Run("UpsertList", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		list := func() []store.AccountStats {
			t.Helper()
			got, err := b.s.AccountStatsList(b.ctx)
			requireNoError(t, err)
			return got
		}
		requireAccountStats(t, list())

		b.apply(t, &store.Writes{AccountStats: []store.AccountStats{accountStats("b", "jobs"), accountStats("a", "pools"), accountStats("a", "jobs")}})
		requireAccountStats(t, list(), accountStats("a", "jobs"), accountStats("a", "pools"), accountStats("b", "jobs"))

		// An upsert replaces the document; the account matches whatever
		// its case.
		changed := store.AccountStats{Account: "A", Kind: "jobs", Doc: []byte(`{"changed":true}`)}
		b.apply(t, &store.Writes{AccountStats: []store.AccountStats{changed}})
		got := list()
		if len(got) != 3 || !bytes.Equal(got[0].Doc, changed.Doc) || got[0].Kind != "jobs" {
			t.Fatalf("after upsert: %+v", got)
		}
		requireAccountStats(t, got[1:], accountStats("a", "pools"), accountStats("b", "jobs"))
	})

	t.Run("InTransactionWithOtherWrites", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		b.apply(t, &store.Writes{
			Jobs:         []store.Job{job("acct", "job1")},
			AccountStats: []store.AccountStats{accountStats("acct", "jobs")},
		})
		got, err := b.s.AccountStatsList(b.ctx)
		requireNoError(t, err)
		requireAccountStats(t, got, accountStats("acct", "jobs"))
		if (&store.Writes{AccountStats: got}).Empty() {
			t.Fatal("Writes with account stats reports Empty")
		}
	})
}
