package consent_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// TestDumpHoldsNoPlaintextIdentifiers: a person known by email, an IdP identity and a CRM id
// has decisions recorded; a dump of the whole database holds none of those values.
func TestDumpHoldsNoPlaintextIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		secrets := []identity.Identifier{
			{Kind: identity.IDEmail, Value: "anna.virtanen+uutiset@esimerkki.fi"},
			{Kind: identity.IDIdP, Namespace: "https://login.esimerkki.fi/realms/kauppa", Value: "sub-7d1e55aa-secret"},
			{Kind: identity.IDExternal, Namespace: "crm", Value: "CRM-998877-secret"},
		}
		for _, id := range secrets {
			req := e.customerRequest("", consent.MethodAPI, "", grant("marketing_email", 1))
			req.Identifier = &id
			if _, err := e.svc.Record(ctx, req); err != nil {
				t.Fatalf("record for %s: %v", id.Kind, err)
			}
			// The identifier finds its subject again.
			if _, err := e.ids.FindSubject(ctx, e.tenant(), id); err != nil {
				t.Fatalf("find %s: %v", id.Kind, err)
			}
		}
		dump := dumpDatabase(t, e.db)
		for _, id := range secrets {
			for _, form := range []string{id.Value, strings.ToUpper(id.Value)} {
				if bytes.Contains(dump, []byte(form)) {
					t.Errorf("the dump contains %s in plain text", id.Kind)
				}
			}
		}
		if !bytes.Contains(dump, []byte("marketing_email")) {
			t.Fatal("the dump does not hold the data at all: the test would prove nothing")
		}
	})
}

// dumpDatabase returns everything the database stores: pg_dump's output, or SQLite's files.
func dumpDatabase(t *testing.T, db *sqldb.DB) []byte {
	t.Helper()
	if db.Dialect == sqldb.SQLite {
		var all []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(db.Location + suffix)
			if err == nil {
				all = append(all, b...)
			}
		}
		return all
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(bins) == 0 {
		t.Fatal("pg_dump not found beside the PostgreSQL server")
	}
	url := os.Getenv("LUPA_TEST_POSTGRES_URL")
	var name string
	if err := db.Read.Raw("SELECT current_database()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bins[len(bins)-1], "--data-only", "--dbname", strings.Replace(url, "/postgres?", "/"+name+"?", 1)).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}
