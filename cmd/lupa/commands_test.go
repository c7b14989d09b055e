package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

const noSchema = "the database has no Lupa schema (or is behind): run lupa migrate"

// TestCommandsNeedSchema: the maintenance commands that read an existing database stop on
// one that lupa migrate never set up (or set up for an older Lupa) with a message that
// says so, and leave no database or master key behind.
func TestCommandsNeedSchema(t *testing.T) {
	ctx := context.Background()
	commands := []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"ledger", "verify"}, nil},
		{[]string{"keys", "rotate"}, nil},
		{[]string{"tenant", "create", "Acme"}, map[string]string{"LUPA_AUTO_MIGRATE": "false"}},
	}
	for _, c := range commands {
		dataDir := filepath.Join(t.TempDir(), "data")
		env := map[string]string{"LUPA_DATA_DIR": dataDir}
		for k, v := range c.env {
			env[k] = v
		}
		code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, c.args...)
		if code != 1 || !strings.Contains(stderr, noSchema) {
			t.Errorf("%v on a new data directory: exit %d, %s", c.args, code, stderr)
		}
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Errorf("%v on a new data directory created it: %v", c.args, err)
		}
	}

	// A database an older Lupa set up: the newest migration is missing.
	dataDir := t.TempDir()
	env := func(k string) string { return map[string]string{"LUPA_DATA_DIR": dataDir}[k] }
	if code, _, stderr := runCmd(ctx, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	db, err := sqldb.Open(ctx, "", dataDir, sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, db, "DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)")
	db.Close()
	if code, _, stderr := runCmd(ctx, env, "ledger", "verify"); code != 1 || !strings.Contains(stderr, noSchema) {
		t.Errorf("ledger verify on an older schema: exit %d, %s", code, stderr)
	}

	// An empty PostgreSQL database is left as it was.
	url := sqldbtest.EmptyPostgresURL(t)
	for _, c := range commands {
		env := map[string]string{"LUPA_DATABASE_URL": url, "LUPA_MASTER_KEY": newMasterKey(), "LUPA_DATA_DIR": t.TempDir()}
		for k, v := range c.env {
			env[k] = v
		}
		code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, c.args...)
		if code != 1 || !strings.Contains(stderr, noSchema) {
			t.Errorf("%v on an empty PostgreSQL database: exit %d, %s", c.args, code, stderr)
		}
	}
	if tables := pgTables(t, url); tables != 0 {
		t.Fatalf("the commands created %d tables in an empty PostgreSQL database", tables)
	}
}

// TestTenantCreateArguments: --help prints the usage and creates nothing, another flag is
// refused, and --slug names a tenant whose name gives no slug.
func TestTenantCreateArguments(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	vars := map[string]string{"LUPA_DATA_DIR": dataDir}
	env := func(k string) string { return vars[k] }
	if code, _, stderr := runCmd(ctx, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"Acme", "--help"}} {
		code, out, stderr := runCmd(ctx, env, append([]string{"tenant", "create"}, args...)...)
		if code != 0 || !strings.Contains(out, "tenant create [--slug SLUG] NAME") || strings.Contains(out, "(shown once)") {
			t.Errorf("tenant create %v: exit %d\n%s\n%s", args, code, out, stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-x", "Acme"}, "unknown flag -x"},
		{[]string{"Acme", "--name=Acme"}, "unknown flag --name=Acme"},
		{[]string{"Acme", "--slug"}, "--slug needs a value"},
		{[]string{"--slug", "acme"}, "usage: lupa tenant create [--slug SLUG] NAME"},
		{[]string{"日本"}, "give one with --slug SLUG"},
		{[]string{"--slug", "Not A Slug", "Acme"}, "slug must be"},
	} {
		code, out, stderr := runCmd(ctx, env, append([]string{"tenant", "create"}, c.args...)...)
		if code != 1 || !strings.Contains(stderr, c.want) || out != "" {
			t.Errorf("tenant create %v: exit %d, want 1 and %q\n%s\n%s", c.args, code, c.want, out, stderr)
		}
	}
	for _, c := range []struct {
		args []string
		slug string
	}{
		{[]string{"--slug", "nihon", "日本"}, "nihon"},
		{[]string{"日本", "商事", "--slug=nihon-shoji"}, "nihon-shoji"},
	} {
		code, out, stderr := runCmd(ctx, env, append([]string{"tenant", "create"}, c.args...)...)
		if code != 0 || !strings.HasPrefix(out, "tenant "+c.slug+" ") || adminKeyRe.FindStringSubmatch(out) == nil {
			t.Errorf("tenant create %v: exit %d\n%s\n%s", c.args, code, out, stderr)
		}
	}
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	a, err := open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.db.Close()
	if n, err := a.ids.CountTenants(ctx); err != nil || n != 2 {
		t.Fatalf("%d tenants (%v), want the 2 created with --slug", n, err)
	}
}

// TestHelpDoesNothing: -h or --help after any command prints the usage and exits 0 without
// touching the database.
func TestHelpDoesNothing(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "-h"}, {"ledger", "verify", "--help"},
		{"keys", "rotate", "-h"}, {"tenant", "--help"}} {
		dataDir := filepath.Join(t.TempDir(), "data")
		env := map[string]string{"LUPA_DATA_DIR": dataDir, "LUPA_ADDR": freeAddr(t), "LUPA_METRICS_ADDR": "off"}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a serve that wrongly starts stops at once
		code, out, stderr := runCmd(ctx, func(k string) string { return env[k] }, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: lupa") {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, stderr)
		}
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Errorf("%v created the data directory: %v", args, err)
		}
	}
}
