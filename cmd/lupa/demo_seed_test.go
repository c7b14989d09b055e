package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// A first start stopped while it creates the demo tenant leaves nothing half-made: the next
// start creates the demo again and prints its admin key, instead of skipping it because a
// tenant exists (whose key nobody ever saw).
func TestDemoSeedingIsAllOrNothing(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			a := openApp(t, sqldbtest.URL(t, dialect), newMasterKey())

			stopped := errors.New("stopped half-way")
			a.demoSeeded = func(*consent.Demo) error { return stopped }
			var out bytes.Buffer
			if err := a.seedDemo(ctx, &out); !errors.Is(err, stopped) {
				t.Fatalf("the interrupted seeding: %v", err)
			}
			for _, table := range []string{"tenants", "brands", "properties", "purposes", "purpose_versions", "recipients", "api_keys", "audit_log"} {
				var n int64
				if err := a.db.Read.Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; err != nil || n != 0 {
					t.Fatalf("%d rows left in %s after the interrupted seeding (%v)", n, table, err)
				}
			}

			a.demoSeeded = nil
			if err := a.seedDemo(ctx, &out); err != nil {
				t.Fatalf("the next start: %v", err)
			}
			if !strings.Contains(out.String(), "Created the demo tenant") || !adminKeyRe.MatchString(out.String()) {
				t.Fatalf("the next start printed no demo tenant and key:\n%s", out.String())
			}
			var systems int64
			if err := a.db.Read.Raw("SELECT COUNT(*) FROM data_map_systems").Scan(&systems).Error; err != nil || systems == 0 {
				t.Fatalf("the demo's data map: %d systems (%v)", systems, err)
			}
		})
	}
}

// Two instances starting together on one empty PostgreSQL create one demo tenant between
// them, and neither fails. The second one starts while the first one's seeding is inside
// its transaction (both saw no tenant), and waits on its rows: the collision happens every
// run, not only when the scheduler happens to make it.
func TestDemoSeedingByTwoInstances(t *testing.T) {
	url := sqldbtest.URL(t, sqldb.Postgres)
	master := newMasterKey()
	ctx := context.Background()
	first, second := openApp(t, url, master), openApp(t, url, master)
	var outs [2]bytes.Buffer
	secondDone := make(chan error, 1)
	first.demoSeeded = func(*consent.Demo) error {
		go func() { secondDone <- second.seedDemo(ctx, &outs[1]) }()
		sqldbtest.WaitForLockWait(t, first.db)
		return nil
	}
	if err := first.seedDemo(ctx, &outs[0]); err != nil {
		t.Fatalf("the first instance failed to start: %v", err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("the second instance failed to start: %v", err)
	}
	if n, err := first.ids.CountTenants(ctx); err != nil || n != 1 {
		t.Fatalf("%d tenants (%v), want the one demo tenant", n, err)
	}
	if !strings.Contains(outs[0].String(), "Created the demo tenant") || outs[1].Len() != 0 {
		t.Fatalf("printed %q and %q, want the demo tenant by the first instance only", outs[0].String(), outs[1].String())
	}
}

// openApp opens Lupa as `lupa serve` does before it listens (migrations applied), on the
// database url names, with a base64 master key; it closes when the test ends.
func openApp(t *testing.T, url, master string) *app {
	t.Helper()
	vars := map[string]string{"LUPA_DATABASE_URL": url, "LUPA_DATA_DIR": t.TempDir(), "LUPA_MASTER_KEY": master}
	cfg, err := loadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.db.Close() })
	return a
}
