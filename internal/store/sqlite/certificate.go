package sqlite

import (
	"context"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

const (
	certCols   = `account, thumbprint_algorithm, thumbprint, doc`
	certList   = `SELECT ` + certCols + ` FROM certificates ORDER BY account, thumbprint_algorithm, thumbprint`
	certUpsert = `INSERT INTO certificates (` + certCols + `) VALUES (?, ?, ?, ?)
		ON CONFLICT (account, thumbprint_algorithm, thumbprint) DO UPDATE SET doc = excluded.doc`
	certDelete = `DELETE FROM certificates WHERE account = ? AND thumbprint_algorithm = ? AND thumbprint = ?`
)

// CertificateList returns every account's certificates, ordered by
// account, thumbprint algorithm and thumbprint.
func (s *Store) CertificateList(ctx context.Context) ([]store.Certificate, error) {
	rows, err := s.r.QueryContext(ctx, certList)
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificate list: %w", err)
	}
	return collect(rows, func(r scanner) (store.Certificate, error) {
		var c store.Certificate
		err := r.Scan(&c.Account, &c.ThumbprintAlgorithm, &c.Thumbprint, &c.Doc)
		return c, err
	})
}

// applyCertificates runs w's certificate deletes and upserts in the
// transaction of Apply (they touch no other table).
func applyCertificates(ex *execer, w *store.Writes) {
	if ex.err != nil {
		return
	}
	run := func(what, q string, args ...any) {
		if ex.err != nil {
			return
		}
		if _, err := ex.tx.ExecContext(ex.ctx, q, args...); err != nil {
			ex.err = fmt.Errorf("sqlite: %s: %w", what, err)
		}
	}
	for _, c := range w.DeleteCertificates {
		run("certificate delete", certDelete, c.Account, c.ThumbprintAlgorithm, c.Thumbprint)
	}
	for _, c := range w.Certificates {
		run("certificate upsert", certUpsert, c.Account, c.ThumbprintAlgorithm, c.Thumbprint, c.Doc)
	}
}
