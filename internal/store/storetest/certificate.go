package storetest

import (
	"bytes"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func certificate(account, thumbprint string) store.Certificate {
	return store.Certificate{Account: account, ThumbprintAlgorithm: "sha1", Thumbprint: thumbprint, Doc: doc("certificate", account, thumbprint)}
}

func requireCertificates(t *testing.T, got []store.Certificate, want ...store.Certificate) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("certificates = %+v, want %+v", got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Account != w.Account || g.ThumbprintAlgorithm != w.ThumbprintAlgorithm || g.Thumbprint != w.Thumbprint || !bytes.Equal(g.Doc, w.Doc) {
			t.Fatalf("certificates[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func testCertificates(t *testing.T, setup setupFunc) {
	list := func(t *testing.T, b *testBundle) []store.Certificate {
		t.Helper()
		got, err := b.s.CertificateList(b.ctx)
		requireNoError(t, err)
		return got
	}
	t.Run("UpsertListDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireCertificates(t, list(t, b))

		b.apply(t, &store.Writes{Certificates: []store.Certificate{certificate("b", "aa"), certificate("a", "cc"), certificate("a", "bb")}})
		requireCertificates(t, list(t, b), certificate("a", "bb"), certificate("a", "cc"), certificate("b", "aa"))

		// An upsert replaces the document; keys match whatever their case.
		changed := store.Certificate{Account: "A", ThumbprintAlgorithm: "SHA1", Thumbprint: "BB", Doc: []byte(`{"state":"deleting"}`)}
		b.apply(t, &store.Writes{Certificates: []store.Certificate{changed}})
		got := list(t, b)
		if len(got) != 3 || !bytes.Equal(got[0].Doc, changed.Doc) {
			t.Fatalf("after upsert: %+v", got)
		}

		// Deletes come before upserts, and a missing one is no error.
		b.apply(t, &store.Writes{
			DeleteCertificates: []store.Certificate{{Account: "A", ThumbprintAlgorithm: "sha1", Thumbprint: "Bb"}, {Account: "z", ThumbprintAlgorithm: "sha1", Thumbprint: "00"}},
		})
		requireCertificates(t, list(t, b), certificate("a", "cc"), certificate("b", "aa"))
		if (&store.Writes{DeleteCertificates: []store.Certificate{certificate("a", "cc")}}).Empty() {
			t.Fatal("Writes with a certificate delete reports Empty")
		}
	})

	t.Run("InTransactionWithOtherWrites", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		b.apply(t, &store.Writes{
			Pools:        []store.Pool{pool("acct", "pool1")},
			Certificates: []store.Certificate{certificate("acct", "ab")},
		})
		requireCertificates(t, list(t, b), certificate("acct", "ab"))
	})
}
