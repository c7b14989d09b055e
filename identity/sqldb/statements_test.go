package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

var probeColumns = sqldb.Cols("k:text", "n:int8")

func probeRows(keys ...string) [][]any {
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k, int64(i)}
	}
	return rows
}

func probeCount(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow("SELECT count(*) FROM probe").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// insertProbe runs InsertColumns in a transaction of its own and commits it unless the
// insert fails; then, as the consent writer does, it rolls the whole transaction back.
func insertProbe(t *testing.T, db *sqldb.DB, st *sqldb.Statements, rows [][]any, suffix string, scan func(*sql.Rows) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.InsertColumns(ctx, tx, "probe", probeColumns, rows, suffix, scan); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// InsertColumns is what the consent writer's batches are made of. On SQLite its multi-row
// statements say OR FAIL (statements.go): a failed statement's earlier rows are not undone
// by the statement, only by the transaction's rollback. Nothing of a failed batch may stay.
func TestInsertColumns(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		if err := db.Write.Exec("CREATE TABLE probe (k text PRIMARY KEY, n bigint NOT NULL)").Error; err != nil {
			t.Fatal(err)
		}
		st := sqldb.NewStatements(db.SQL(), db.Dialect)
		t.Cleanup(st.Close)

		// 70 rows: on SQLite the shapes 64 + 4 + 1 + 1.
		var keys []string
		for i := range 70 {
			keys = append(keys, fmt.Sprintf("k%02d", i))
		}
		if err := insertProbe(t, db, st, probeRows(keys...), "", nil); err != nil {
			t.Fatal(err)
		}
		if n := probeCount(t, db); n != 70 {
			t.Fatalf("after inserting 70 rows the table holds %d", n)
		}

		// A conflict in the middle of a statement: an error naming the table, and after the
		// rollback neither the rows before the conflict nor those after it are stored.
		err := insertProbe(t, db, st, probeRows("new1", "new2", "k05", "new3"), "", nil)
		if err == nil || !strings.Contains(err.Error(), "insert into probe") || !sqldb.IsUniqueViolation(err) {
			t.Fatalf("a duplicate key: want a unique violation naming the table, have %v", err)
		}
		if n := probeCount(t, db); n != 70 {
			t.Fatalf("after a failed insert the table holds %d rows, want the 70 committed before", n)
		}
		var stray int
		if err := db.SQL().QueryRow("SELECT count(*) FROM probe WHERE k LIKE 'new%'").Scan(&stray); err != nil || stray != 0 {
			t.Fatalf("rows of the failed statement were stored: %d (%v)", stray, err)
		}

		// ON CONFLICT DO NOTHING RETURNING (the idempotency keys): only the new rows return.
		var got []string
		err = insertProbe(t, db, st, probeRows("k01", "x1", "k02", "x2"), " ON CONFLICT (k) DO NOTHING RETURNING k",
			func(r *sql.Rows) error {
				var k string
				if err := r.Scan(&k); err != nil {
					return err
				}
				got = append(got, k)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "x1,x2" {
			t.Fatalf("RETURNING gave %v, want the two new keys", got)
		}
		if n := probeCount(t, db); n != 72 {
			t.Fatalf("the table holds %d rows, want 72", n)
		}
	})
}
