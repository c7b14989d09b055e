package sqldb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(context.Background(), "", dir, Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Write.Exec("CREATE TABLE pages (id integer PRIMARY KEY, body blob NOT NULL)").Error; err != nil {
		t.Fatal(err)
	}
	return db, filepath.Join(dir, "lupa.db")
}

// insertPages commits txs transactions of rows rows each, every row about one page.
func insertPages(t *testing.T, db *DB, txs, rows int, afterEach func()) {
	t.Helper()
	body := strings.Repeat("x", 3500)
	for i := 0; i < txs; i++ {
		tx := db.Write.Begin()
		for j := 0; j < rows; j++ {
			if err := tx.Exec("INSERT INTO pages (body) VALUES (?)", body).Error; err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit().Error; err != nil {
			t.Fatal(err)
		}
		if afterEach != nil {
			afterEach()
		}
	}
}

// Commits reach the database file itself without the writer checkpointing: a copy of the
// file alone, without its -wal, soon holds every committed row. With SQLite's default the
// rows would stay in the WAL until the writer's next automatic checkpoint, far away here.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	db, path := openTestSQLite(t)
	insertPages(t, db, 40, 10, nil)

	deadline := time.Now().Add(5 * time.Second)
	var got int64
	var lastErr error
	for time.Now().Before(deadline) {
		got, lastErr = rowsInFileAlone(t, path)
		if lastErr == nil && got == 400 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("database file alone holds %d of 400 committed rows (last error: %v)", got, lastErr)
}

// rowsInFileAlone copies the database file, without its WAL, and counts the rows in it.
func rowsInFileAlone(t *testing.T, path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		return 0, err
	}
	c, err := Open(context.Background(), "sqlite:"+cp, "", Options{MaxConns: 1})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var n int64
	err = c.Read.Raw("SELECT count(*) FROM pages").Scan(&n).Error
	return n, err
}

// Under commits that never pause, the WAL still starts again from its beginning: the
// file stays near the writer's backstop of walAutoCheckpoint pages instead of growing with
// every page ever written.
func TestSQLiteWALStaysBoundedUnderSustainedWrites(t *testing.T) {
	db, path := openTestSQLite(t)
	var pageSize int64
	if err := db.Read.Raw("PRAGMA page_size").Scan(&pageSize).Error; err != nil {
		t.Fatal(err)
	}
	const txs, rows = 400, 25 // 10,000 pages, 2.5 times the backstop
	var largest int64
	insertPages(t, db, txs, rows, func() {
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > largest {
			largest = fi.Size()
		}
	})
	frame := pageSize + 24
	// The backstop may be skipped while the background holds the checkpoint lock, so a few
	// commits can land past it; a quarter of it is plenty of room for those.
	limit := walAutoCheckpoint * 5 / 4 * frame
	if largest > limit {
		t.Fatalf("WAL grew to %d pages under sustained writes; want at most %d", largest/frame, limit/frame)
	}
	if largest < 2*rows*frame {
		t.Fatalf("WAL never held more than %d pages: the test wrote nothing?", largest/frame)
	}
}
