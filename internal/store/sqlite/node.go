package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// NodeGet returns the node id of account.
func (s *Store) NodeGet(ctx context.Context, account, id string) (store.Node, error) {
	n, err := scanNode(s.rs.nodeGet.QueryRowContext(ctx, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return n, notFound("node", account, id)
	}
	if err != nil {
		return n, fmt.Errorf("sqlite: node get: %w", err)
	}
	return n, nil
}

// NodeListByPool returns the nodes of one pool, ordered by id.
func (s *Store) NodeListByPool(ctx context.Context, account, poolID string) ([]store.Node, error) {
	rows, err := s.rs.nodeListByPool.QueryContext(ctx, account, poolID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: node list: %w", err)
	}
	return collect(rows, scanNode)
}

// NodeListAll returns every node of every account, ordered by account and id.
func (s *Store) NodeListAll(ctx context.Context) ([]store.Node, error) {
	rows, err := s.rs.nodeListAll.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: node list: %w", err)
	}
	return collect(rows, scanNode)
}

func scanNode(r scanner) (store.Node, error) {
	var n store.Node
	err := r.Scan(&n.Account, &n.ID, &n.PoolID, &n.State, &n.Doc)
	return n, err
}
