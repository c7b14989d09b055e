package identity_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// PersonOf follows a subject's merges to the person they end at; PersonSubjects adds every
// subject merged into that person, in turn. A missing subject is ENotFound and a loop is
// EConflict for PersonOf; PersonSubjects still returns what it reaches.
func TestPersonSubjects(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		ids, _ := openService(t, db)
		tenant, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Yhdistys Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		// p ← q ← d2, p ← d1; a ↔ b loops; other is a lone subject.
		for _, s := range [][2]string{{"p", ""}, {"q", "p"}, {"d1", "p"}, {"d2", "q"}, {"a", "b"}, {"b", "a"}, {"other", ""}} {
			var into any
			if s[1] != "" {
				into = s[1]
			}
			if err := db.Write.Exec(`INSERT INTO subjects (tenant_id, id, kind, pseudonym, created_at, merged_into)
				VALUES (?, ?, 'person', ?, 1, ?)`, tenant.ID, s[0], "ps-"+s[0], into).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			subject, person string
			all             []string
		}{
			{"p", "p", []string{"p", "d1", "d2", "q"}},
			{"d2", "p", []string{"p", "d1", "d2", "q"}},
			{"q", "p", []string{"p", "d1", "d2", "q"}},
			{"other", "other", []string{"other"}},
		} {
			if got, err := identity.PersonOf(ctx, db.Read, tenant.ID, tc.subject); err != nil || got != tc.person {
				t.Errorf("PersonOf(%s) = %q, %v; want %q", tc.subject, got, err, tc.person)
			}
			if got, err := identity.PersonSubjects(ctx, db.Write, tenant.ID, tc.subject); err != nil || !slices.Equal(got, tc.all) {
				t.Errorf("PersonSubjects(%s) = %v, %v; want %v", tc.subject, got, err, tc.all)
			}
		}
		if _, err := identity.PersonOf(ctx, db.Read, tenant.ID, "missing"); !identity.IsCode(err, identity.ENotFound) {
			t.Errorf("PersonOf(missing): %v, want ENotFound", err)
		}
		if got, err := identity.PersonSubjects(ctx, db.Read, tenant.ID, "missing"); err != nil || !slices.Equal(got, []string{"missing"}) {
			t.Errorf("PersonSubjects(missing) = %v, %v", got, err)
		}
		if _, err := identity.PersonOf(ctx, db.Read, tenant.ID, "a"); !identity.IsCode(err, identity.EConflict) {
			t.Errorf("PersonOf(a loop): %v, want EConflict", err)
		}
		if got, err := identity.PersonSubjects(ctx, db.Read, tenant.ID, "a"); err != nil || len(got) == 0 || got[0] != "b" {
			t.Errorf("PersonSubjects(a loop) = %v, %v", got, err)
		}
		if _, err := identity.PersonOf(ctx, db.Read, "another-tenant", "p"); !identity.IsCode(err, identity.ENotFound) {
			t.Errorf("PersonOf in another tenant: %v, want ENotFound", err)
		}
	})
}
