package main

import (
	"context"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// TestErasureReachesAccountsAndConnectors: as wired, erasing a person also forgets what
// the person's account and the connectors keep about them, in the same transaction: the
// account's password, name and birth year (the account is closed), its sessions, and the
// address a connector last wrote.
func TestErasureReachesAccountsAndConnectors(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		tenant := s.demo.Tenant.ID
		const email = "unohdettava@esimerkki.fi"
		if _, err := s.app.accounts.Register(ctx, tenant, demoSlug, accounts.Registration{Email: email, Password: goodPW, Language: "fi"}); err != nil {
			t.Fatal(err)
		}
		subj, err := s.app.ids.FindSubject(ctx, tenant, identity.Identifier{Kind: identity.IDEmail, Value: email})
		if err != nil {
			t.Fatal(err)
		}
		db := s.app.db.Write
		if err := db.Exec("UPDATE accounts SET birth_year = 1980, name_ct = ?, name_kid = 'k', email_verified_at = 1 WHERE subject_id = ?",
			[]byte("sealed name"), subj.ID).Error; err != nil {
			t.Fatal(err)
		}
		sess, err := s.app.accounts.SignIn(ctx, tenant, email, goodPW, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.app.accounts.Session(ctx, sess.Token); err != nil {
			t.Fatalf("the session before the erasure: %v", err)
		}
		if err := db.Exec(`INSERT INTO connector_members (tenant_id, connector_id, subject_id, email_ct, email_kid, updated_at)
			VALUES (?, 'conn-1', ?, ?, 'k', 1)`, tenant, subj.ID, []byte("sealed address")).Error; err != nil {
			t.Fatal(err)
		}

		if err := s.app.consent.EraseSubject(ctx, tenant, subj.ID, "dsr:test", identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		count := func(q string) int64 {
			var n int64
			if err := db.Raw(q, subj.ID).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(`SELECT count(*) FROM accounts WHERE subject_id = ? AND status = 'deleted' AND password_hash IS NULL
			AND birth_year IS NULL AND name_ct IS NULL AND name_kid IS NULL`); n != 1 {
			t.Fatal("the erased person's account keeps personal data, or is still open")
		}
		if _, err := s.app.accounts.Session(ctx, sess.Token); err == nil {
			t.Error("the erased person's session still signs them in")
		}
		for table, q := range map[string]string{
			"connector_members": "SELECT count(*) FROM connector_members WHERE subject_id = ?",
			"sessions":          "SELECT count(*) FROM sessions WHERE account_id IN (SELECT id FROM accounts WHERE subject_id = ?)",
			"email_tokens":      "SELECT count(*) FROM email_tokens WHERE account_id IN (SELECT id FROM accounts WHERE subject_id = ?)",
			"identifiers":       "SELECT count(*) FROM identifiers WHERE subject_id = ?",
		} {
			if n := count(q); n != 0 {
				t.Errorf("%s keeps %d rows of the erased person", table, n)
			}
		}
	})
}
