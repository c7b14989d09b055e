package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// A customer number stays findable across a lookup-key rotation, before and after its
// hash is moved to the new key, and a destroyed subject is found by nothing.
func TestIdentifiersAcrossKeyRotationAndErasure(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clk := clocktest.New(now())
		m := make([]byte, 32)
		_, _ = rand.Read(m)
		keys, err := keyring.Open(ctx, db, m, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		ids := identity.New(db, keys, clk.Now)
		tenant, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Testi Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Toinen Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		number := identity.Identifier{Kind: identity.IDCustomerNumber, Value: "C-1"}
		subj, err := ids.PrepareSubject(tenant.ID, number.SubjectKind(), now())
		if err != nil {
			t.Fatal(err)
		}
		ident, err := ids.PrepareIdentifier(tenant.ID, &subj.Subject, number, now())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Write.Transaction(func(tx *gorm.DB) error {
			if err := sqldb.BulkInsert(tx, "subjects", sqldb.Names(identity.SubjectColumns), [][]any{subj.Row()}, ""); err != nil {
				return err
			}
			return sqldb.BulkInsert(tx, "identifiers", sqldb.Names(identity.IdentifierColumns), [][]any{ident.Row()}, "")
		}); err != nil {
			t.Fatal(err)
		}
		find := func(when string) {
			t.Helper()
			got, err := ids.FindSubject(ctx, tenant.ID, number)
			if err != nil || got.ID != subj.ID || got.Pseudonym != subj.Pseudonym || got.Kind != identity.SubjectPerson {
				t.Fatalf("%s: %+v %v", when, got, err)
			}
			if _, err := ids.FindSubject(ctx, other.ID, number); !identity.IsCode(err, identity.ENotFound) {
				t.Fatalf("%s: another tenant finds the customer: %v", when, err)
			}
		}
		find("before rotation")
		if _, err := keys.Rotate(ctx, keyring.Lookup, keyring.Encryption); err != nil {
			t.Fatal(err)
		}
		find("after rotation, still under the old key")
		// Every instance has loaded the new lookup key by now: rows move to it.
		clk.Add(keyring.LookupKeyDelay)
		if err := keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := ids.RehashIdentifiers(ctx)
		if err != nil || n != 1 {
			t.Fatalf("rehash: %d %v", n, err)
		}
		var kid string
		db.Write.Raw("SELECT hash_kid FROM identifiers WHERE subject_id = ?", subj.ID).Scan(&kid)
		if kid != keys.ActiveID(keyring.Lookup) {
			t.Fatalf("identifier still under key %s", kid)
		}
		find("after rehashing")
		if n, err := ids.RehashIdentifiers(ctx); err != nil || n != 0 {
			t.Fatalf("second rehash changed %d rows (%v)", n, err)
		}

		if err := db.Write.Transaction(func(tx *gorm.DB) error {
			for _, st := range identity.DestroySubjectKeySQL(tenant.ID, subj.ID, now()) {
				if err := tx.Exec(st.SQL, st.Args...).Error; err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := ids.FindSubject(ctx, tenant.ID, number); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("destroyed subject still found: %v", err)
		}
		var left struct {
			Pseudonym *string
			Secret    []byte
			ErasedAt  *int64
		}
		db.Write.Raw("SELECT pseudonym, secret, erased_at FROM subjects WHERE tenant_id = ? AND id = ?", tenant.ID, subj.ID).Scan(&left)
		if left.ErasedAt == nil || left.Pseudonym != nil || left.Secret != nil {
			t.Fatalf("destroyed subject keeps its key or pseudonym, or is not marked erased: %+v", left)
		}
	})
}

// The bulk check's reused HMACs give exactly the hashes of a single lookup, under one key
// and after a rotation under both.
func TestBulkLookupMatchesLookupHashes(t *testing.T) {
	ctx := context.Background()
	ids, keys := openService(t, sqldbtest.Open(t, sqldb.SQLite))
	values := []identity.Identifier{
		{Kind: identity.IDCustomerNumber, Value: "C-1"}, {Kind: identity.IDCustomerNumber, Value: "ä-Ö 2"},
		{Kind: identity.IDDevice, Value: "AAAAAAAAAAAAAAAAAAAAAA"}, {Kind: identity.IDCustomerNumber, Value: "C-1"},
	}
	for round := range 2 {
		bulk := ids.BulkLookup("tenant-a")
		for _, v := range values {
			got, want := bulk.Hashes(v), ids.LookupHashes("tenant-a", v)
			if len(got) != round+1 || len(got) != len(want) {
				t.Fatalf("round %d: %d hashes, want %d", round, len(got), round+1)
			}
			for i := range want {
				if string(got[i]) != string(want[i]) {
					t.Fatalf("round %d: hash %d of %v differs", round, i, v)
				}
			}
		}
		if _, err := keys.Rotate(ctx, keyring.Lookup); err != nil {
			t.Fatal(err)
		}
	}
}

func now() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }

// openService opens the identity service on db with a fresh master key and a fixed clock.
func openService(t *testing.T, db *sqldb.DB) (*identity.Service, *keyring.Keyring) {
	t.Helper()
	m := make([]byte, 32)
	_, _ = rand.Read(m)
	keys, err := keyring.Open(context.Background(), db, m, now)
	if err != nil {
		t.Fatal(err)
	}
	return identity.New(db, keys, now), keys
}

// A person erased after the caller read them gets no new identifier: the erasure destroyed
// what linked the chain to them, and an identifier added afterwards would link it again.
func TestAttachIdentifierRefusesAnErasedSubject(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		ids, _ := openService(t, db)
		tenant, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Erasure Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		var subj *identity.Subject
		if err := db.Write.Transaction(func(tx *gorm.DB) error {
			subj, _, err = ids.EnsurePerson(ctx, tx, tenant.ID, identity.Identifier{Kind: identity.IDCustomerNumber, Value: "C-2"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		email := identity.Identifier{Kind: identity.IDEmail, Value: "asiakas@esimerkki.fi"}
		attach := func() error {
			return db.Write.Transaction(func(tx *gorm.DB) error {
				_, _, err := ids.AttachIdentifier(ctx, tx, subj, email)
				return err
			})
		}
		if err := attach(); err != nil {
			t.Fatalf("attach to a live person: %v", err)
		}
		for _, st := range identity.DestroySubjectKeySQL(tenant.ID, subj.ID, now()) {
			if err := db.Write.Exec(st.SQL, st.Args...).Error; err != nil {
				t.Fatal(err)
			}
		}
		// The caller still holds the subject it read before the erasure.
		if err := attach(); !errors.Is(err, identity.ErrSubjectGone) {
			t.Fatalf("attach to the erased person: %v, want ErrSubjectGone", err)
		}
		var n int64
		if err := db.Write.Raw("SELECT count(*) FROM identifiers WHERE subject_id = ?", subj.ID).Scan(&n).Error; err != nil || n != 0 {
			t.Fatalf("%d identifiers point to the erased person (err %v)", n, err)
		}
	})
}
