package accounts_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestSignInExternalConcurrent: sign-ins of one new identity at the same moment make one
// person and one account, and every one of them is signed in to it.
func TestSignInExternalConcurrent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ext := accounts.External{Issuer: "https://id.example/", Subject: "same-person", Name: "Aino Virtanen", Language: "sv"}
		const n = 6
		var wg sync.WaitGroup
		res := make([]*accounts.ExternalResult, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { res[i], errs[i] = e.svc.SignInExternal(context.Background(), e.tenant.ID, ext) })
		}
		wg.Wait()
		created := 0
		for i := range n {
			if errs[i] != nil || res[i].Session == nil {
				t.Fatalf("sign-in %d: %+v %v", i, res[i], errs[i])
			}
			if res[i].Session.SubjectID != res[0].Session.SubjectID || res[i].Session.AccountID != res[0].Session.AccountID {
				t.Fatalf("sign-in %d is another person or account", i)
			}
			if res[i].Created {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d sign-ins say they created the person", created)
		}
		subj, err := e.ids.FindSubject(context.Background(), e.tenant.ID,
			identity.Identifier{Kind: identity.IDIdP, Namespace: "https://id.example", Value: "same-person"})
		if err != nil || subj.ID != res[0].Session.SubjectID {
			t.Fatalf("the identity's person: %v %v", subj, err)
		}
		a, err := e.svc.Get(context.Background(), e.tenant.ID, res[0].Session.AccountID)
		if err != nil || a.Name != "Aino Virtanen" || a.HasPassword || a.Email != "" || a.Language != "sv" {
			t.Fatalf("account: %+v %v", a, err)
		}
	})
}

// TestConnectExternal: an identity is connected only in a session that began after it was
// offered, only when the offer can be claimed, and only to one person.
func TestConnectExternal(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sess := e.register(t, "liisa@esimerkki.fi")
		offered := e.clock.Now().Add(time.Second)
		claimed := 0
		claim := func(_ *gorm.DB) error { claimed++; return nil }
		if err := e.svc.ConnectExternal(ctx, sess, "https://id.example", "liisa", offered, claim); err != accounts.ErrSignInAgain {
			t.Fatalf("an older session connected: %v", err)
		}
		e.clock.Add(2 * time.Second)
		fresh, err := e.svc.SignIn(ctx, e.tenant.ID, "liisa@esimerkki.fi", pw, "10.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		refused := &identity.Error{Code: identity.EUnauthorized, Message: "gone"}
		if err := e.svc.ConnectExternal(ctx, fresh, "https://id.example", "liisa", offered, func(*gorm.DB) error { return refused }); err != refused {
			t.Fatalf("an offer that cannot be claimed: %v", err)
		}
		if err := e.svc.ConnectExternal(ctx, fresh, "https://id.example", "liisa", offered, claim); err != nil || claimed != 1 {
			t.Fatalf("connect: %v (claimed %d)", err, claimed)
		}
		subj, err := e.ids.FindSubject(ctx, e.tenant.ID, identity.Identifier{Kind: identity.IDIdP, Namespace: "https://id.example", Value: "liisa"})
		if err != nil || subj.ID != fresh.SubjectID {
			t.Fatalf("connected identity: %v %v", subj, err)
		}
		// Another person cannot take it.
		other := e.register(t, "olli@esimerkki.fi")
		if err := e.svc.ConnectExternal(ctx, other, "https://id.example", "liisa", offered, claim); err != accounts.ErrExternal {
			t.Fatalf("an identity moved to another person: %v", err)
		}
	})
}

// TestSignInExternalDeleted: the identity of a person whose account was deleted does not
// sign in (nor make a second account for the person); an address of a deleted account is
// not taken from it.
func TestSignInExternalDeleted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ext := accounts.External{Issuer: "https://id.example", Subject: "leaving", Name: "Leena"}
		res, err := e.svc.SignInExternal(ctx, e.tenant.ID, ext)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Delete(ctx, res.Session); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SignInExternal(ctx, e.tenant.ID, ext); err != accounts.ErrExternal {
			t.Fatalf("a deleted account's identity: %v", err)
		}
		sess := e.register(t, "poistuva@esimerkki.fi")
		if _, err := e.svc.Delete(ctx, sess); err != nil {
			t.Fatal(err)
		}
		res, err = e.svc.SignInExternal(ctx, e.tenant.ID, accounts.External{Issuer: "https://id.example", Subject: "newcomer",
			Email: "poistuva@esimerkki.fi", EmailVerified: true})
		if err != nil || res.Session == nil || res.Session.SubjectID == sess.SubjectID {
			t.Fatalf("a new identity with a deleted account's address: %+v %v", res, err)
		}
	})
}

// TestSignInExternalWhileErased: the person an identity names is erased while the sign-in is
// under way (found before the erasure commits, written after). The sign-in makes no account
// for the erased person: it waits for the erasure, finds no one by the identity any more and
// makes a new person.
func TestSignInExternalWhileErased(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		idp := identity.Identifier{Kind: identity.IDIdP, Namespace: "https://id.example", Value: "vanha"}
		var old *identity.Subject
		if err := e.db.Write.Transaction(func(tx *gorm.DB) error {
			var err error
			old, _, err = e.ids.EnsurePerson(ctx, tx, e.tenant.ID, idp) // known through the CIAM, no account
			return err
		}); err != nil {
			t.Fatal(err)
		}

		erasure := e.db.Write.Begin()
		for _, st := range identity.DestroySubjectKeySQL(e.tenant.ID, old.ID, e.clock.Now()) {
			if err := erasure.Exec(st.SQL, st.Args...).Error; err != nil {
				t.Fatal(err)
			}
		}
		type result struct {
			res *accounts.ExternalResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := e.svc.SignInExternal(ctx, e.tenant.ID, accounts.External{Issuer: idp.Namespace, Subject: idp.Value})
			done <- result{res, err}
		}()
		sqldbtest.WaitForLockWait(t, e.db) // until the sign-in, having found the person, waits on their row
		if err := erasure.Commit().Error; err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.res.Session == nil || !r.res.Created || r.res.Session.SubjectID == old.ID {
			t.Fatalf("sign-in during the erasure: %+v %v; want a new person signed in", r.res, r.err)
		}
		var n int64
		if err := e.db.Read.Raw("SELECT count(*) FROM accounts WHERE subject_id = ?", old.ID).Scan(&n).Error; err != nil || n != 0 {
			t.Fatalf("%d accounts on the erased person (err %v)", n, err)
		}
	})
}
