package sqldb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// An SQLite file is opened exactly where its path says, even when the path holds characters
// that mean something in a URI ('?', '#', '%'): a data directory such as /srv/lupa#2 must
// not quietly become /srv/lupa, shared with another instance.
func TestSQLitePathWithURICharacters(t *testing.T) {
	for _, name := range []string{"shop#2", "what?x=1", "50%25off", "a b"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			db, err := Open(context.Background(), "", dir, Options{MaxConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Write.Exec("CREATE TABLE marker (id integer PRIMARY KEY)").Error; err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.Read.Raw("SELECT count(*) FROM marker").Scan(&n).Error; err != nil {
				t.Fatalf("the read pool opened another file: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "lupa.db")); err != nil {
				t.Fatalf("no database file in the data directory: %v", err)
			}
			entries, _ := os.ReadDir(filepath.Dir(dir))
			if len(entries) != 1 {
				t.Fatalf("files beside the data directory: %v", entries)
			}
		})
	}
}
