package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestMigrateChecksMasterKeyFirst: on PostgreSQL without LUPA_MASTER_KEY, migrate stops
// before it changes the schema, not after.
func TestMigrateChecksMasterKeyFirst(t *testing.T) {
	url := sqldbtest.EmptyPostgresURL(t)
	env := map[string]string{"LUPA_DATABASE_URL": url, "LUPA_DATA_DIR": t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, "migrate")
	if code != 1 || !strings.Contains(stderr, "LUPA_MASTER_KEY is required") {
		t.Fatalf("migrate on PostgreSQL without a master key: exit %d, %s", code, stderr)
	}
	if tables := pgTables(t, url); tables != 0 {
		t.Fatalf("migrate without a master key created %d tables", tables)
	}
}

// pgTables counts the tables in the PostgreSQL database's current schema.
func pgTables(t *testing.T, url string) int {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestServeMetricsOff: with LUPA_METRICS_ADDR=off the start-up text says metrics are off
// instead of printing a URL nobody answers.
func TestServeMetricsOff(t *testing.T) {
	srv := startServe(t, map[string]string{"LUPA_DATA_DIR": t.TempDir(), "LUPA_METRICS_ADDR": "off", "LUPA_DEMO": "false"})
	out := srv.Stdout.String()
	if !strings.Contains(out, "metrics off") || strings.Contains(out, "http://off") {
		t.Fatalf("start-up text with LUPA_METRICS_ADDR=off:\n%s", out)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, srv.Stderr)
	}
}
