// Package sqldbtest gives tests a fresh, migrated database of each dialect: an SQLite file in
// a temporary directory, and a new database on the PostgreSQL server named by
// LUPA_TEST_POSTGRES_URL (the test command starts a throwaway server and sets it).
//
// Without that variable the PostgreSQL half is skipped on a developer's machine, and is a
// failure when CI=true: in CI a missing PostgreSQL never passes silently.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the admin connection

	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/migrations"
)

// EnvPostgresURL names the variable that points tests at a PostgreSQL server.
const EnvPostgresURL = "LUPA_TEST_POSTGRES_URL"

// Dialects lists the dialects every database test runs against.
var Dialects = []string{sqldb.SQLite, sqldb.Postgres}

// Each runs fn once per dialect as a subtest, each with its own fresh database.
func Each(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh migrated database of the dialect, removed when the test ends.
func Open(t testing.TB, dialect string) *sqldb.DB {
	t.Helper()
	url := URL(t, dialect)
	db, err := sqldb.Open(context.Background(), url, t.TempDir(), sqldb.Options{MaxConns: 8})
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// URL returns a database URL for a fresh, migrated database of the dialect. For SQLite it
// is a file in the test's temporary directory, a copy of one migrated once per process (as
// PostgreSQL's databases are copies of a migrated template): migrating each test's file
// took more than half a second under the race detector.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == sqldb.SQLite {
		image, err := sqliteTemplate()
		if err != nil {
			t.Fatalf("build migrated sqlite template: %v", err)
		}
		path := t.TempDir() + "/lupa.db"
		if err := os.WriteFile(path, image, 0o600); err != nil {
			t.Fatal(err)
		}
		return "sqlite:" + path
	}
	return postgresDatabase(t, true)
}

// sqliteTemplate is the file of a migrated SQLite database, built once per process, its
// WAL folded in.
var sqliteTemplate = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "lupa-sqlite-template-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite:"+dir+"/lupa.db", dir, sqldb.Options{MaxConns: 1})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := migrations.Up(ctx, db.SQL(), sqldb.SQLite); err != nil {
		return nil, err
	}
	if err := db.Write.Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
		return nil, err
	}
	return os.ReadFile(dir + "/lupa.db")
})

// EmptyPostgresURL returns the URL of a new, empty PostgreSQL database (no migrations), for
// tests of the migration process itself.
func EmptyPostgresURL(t testing.TB) string {
	t.Helper()
	return postgresDatabase(t, false)
}

// RequirePostgres returns the server URL, skipping (or failing in CI) when there is none.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must run the test command, which starts PostgreSQL", EnvPostgresURL)
		}
		t.Skipf("%s is not set; run the README's test command to include PostgreSQL", EnvPostgresURL)
	}
	return base
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

func postgresDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	base := RequirePostgres(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer admin.Close()
	ctx := context.Background()
	template := "template0"
	if migrated {
		templateOnce.Do(func() { templateName, templateErr = buildTemplate(ctx, admin, base) })
		if templateErr != nil {
			t.Fatalf("build migrated template database: %v", templateErr)
		}
		template = templateName
	}
	name := "lupa_test_" + randomSuffix()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(base, name)
}

// buildTemplate migrates one database per test process; each test copies it, which is far
// faster than migrating every time.
func buildTemplate(ctx context.Context, admin *sql.DB, base string) (string, error) {
	name := "lupa_tmpl_" + randomSuffix()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", err
	}
	db, err := sql.Open("pgx", withDatabase(base, name))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := migrations.Up(ctx, db, sqldb.Postgres); err != nil {
		return "", err
	}
	return name, db.Close()
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}

// WaitForLockWait returns once a session of db's PostgreSQL database waits on a lock: for a
// test whose other goroutine must reach a row lock before the test lets it go (at most ten
// seconds). On SQLite it returns at once: the one write connection already orders a
// transaction the test holds before any other.
func WaitForLockWait(t testing.TB, db *sqldb.DB) {
	t.Helper()
	if db.Dialect != sqldb.Postgres {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int64
		if err := db.Read.Raw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").
			Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited on a lock within ten seconds")
		}
	}
}
