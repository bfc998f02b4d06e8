package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/store"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	ctx := t.Context()

	for _, tc := range []struct {
		db   string
		name string
		want string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "1"},
		{"writer", "foreign_keys", "0"},
		{"writer", "temp_store", "2"},
		{"writer", "busy_timeout", "10000"},
		{"writer", "query_only", "0"},
		{"reader", "journal_mode", "wal"},
		{"reader", "foreign_keys", "0"},
		{"reader", "busy_timeout", "10000"},
		{"reader", "query_only", "1"},
	} {
		db := s.w
		if tc.db == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.name).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", tc.db, tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s PRAGMA %s = %s, want %s", tc.db, tc.name, got, tc.want)
		}
	}

	// Readers cannot write.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO pools (account, id) VALUES ('a', 'b')`); err == nil {
		t.Error("insert through the read pool succeeded")
	}
}

// TestReadsDoNotWaitForWrites holds a write transaction open and reads.
func TestReadsDoNotWaitForWrites(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	ctx := t.Context()
	if _, err := s.TaskInsert(ctx, []store.Task{{Account: "a", JobID: "j", ID: "t1", State: "active"}}); err != nil {
		t.Fatal(err)
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (account, job_id, id, state, node_id, attempt_id, slots)
		VALUES ('a', 'j', 't2', 'active', '', '', 1)`); err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	got, err := s.TaskList(rctx, store.TaskListParams{Account: "a", JobID: "j"})
	if err != nil {
		t.Fatalf("read during a write transaction: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("read %d tasks during a write transaction, want 1 (the committed one)", len(got))
	}
}

// TestQueryPlans checks every read query uses an index, without a full
// scan of tasks or a temporary b-tree for sorting or grouping.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := openInternal(t)
	ctx := t.Context()
	// Statistics as they would be on a populated database make no
	// difference to these plans, but ANALYZE the empty tables anyway.
	if _, err := s.w.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	oneState, oneArgs := taskListStatesQuery(store.TaskListParams{Account: "a", JobID: "j", States: []string{"active"}}, 10)
	twoStates, twoArgs := taskListStatesQuery(store.TaskListParams{Account: "a", JobID: "j", States: []string{"active", "running"}}, 10)
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		want  string // a line the plan must hold
	}{
		{"TaskGet", qTaskGet, []any{"a", "j", "t"}, "USING INDEX tasks_id"},
		{"TaskList", qTaskList, []any{"a", "j", 0, 10}, "USING INDEX tasks_seq"},
		{"TaskListOneState", oneState, oneArgs, "USING INDEX tasks_state"},
		{"TaskListTwoStates", twoStates, twoArgs, "USING INDEX"},
		{"TaskListUnfinished", qTaskListUnfinished, nil, "USING INDEX tasks_unfinished"},
		{"TaskCounts", qTaskCounts, []any{"a", "j"}, "USING PRIMARY KEY"},
		{"TaskStates", qTaskStates, []any{`[["a","j","t"]]`}, "SEARCH t USING INDEX tasks_id"},
		{"JobDeleteTasks", `DELETE FROM tasks WHERE account = ? AND job_id = ?`, []any{"a", "j"}, "USING"},
		{"NodeListByPool", qNodeListByPool, []any{"a", "p"}, "USING INDEX nodes_pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.w.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			t.Logf("plan:\n%s", text)
			if !strings.Contains(text, tc.want) {
				t.Errorf("plan does not hold %q", tc.want)
			}
			for _, bad := range []string{"USE TEMP B-TREE", "SCAN tasks\n"} {
				if strings.Contains(text+"\n", bad) {
					t.Errorf("plan holds %q", bad)
				}
			}
		})
	}
}

// TestOpenPath opens databases whose paths need escaping in a file: URI.
func TestOpenPath(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"with space.db", "q?mark#hash%25.db", "ünï.db"} {
		path := filepath.Join(t.TempDir(), "dir x", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.PoolInsert(t.Context(), store.Pool{Account: "a", ID: "p"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := s.PoolGet(t.Context(), "a", "p"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s: database not at its path: %v", name, err)
		}
	}
}
