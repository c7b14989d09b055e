package consent_test

import (
	"context"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// pastEvidence moves the clock past the evidence period of what was decided now: the
// re-ask interval (a year) ends, its expiry is recorded, and three years pass.
func (e *env) pastEvidence(t *testing.T) {
	t.Helper()
	e.clock.AddDate(1, 0, 1)
	if _, err := e.svc.SweepExpiry(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.clock.AddDate(3, 0, 1)
}

// lastEvent is the newest event of a subject's chain.
func (e *env) lastEvent(t *testing.T, subjectID string) consent.Event {
	t.Helper()
	var last consent.Event
	if err := e.db.Write.Raw("SELECT kind, reason, seq, actor FROM consent_events WHERE subject_id = ? ORDER BY seq DESC LIMIT 1",
		subjectID).Scan(&last).Error; err != nil {
		t.Fatal(err)
	}
	return last
}

// TestEvidenceSweepSparesWhoDecidedMeanwhile: the sweep selects a subject, and before its
// erasure is written the person decides again, or signs in on the device. The erasure is
// dropped: the new grant stays, and the person the device joined is not erased.
func TestEvidenceSweepSparesWhoDecidedMeanwhile(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clicked := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
		signedIn := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
		clickedID := e.subjectID(t, device(clicked.DeviceID))
		e.pastEvidence(t)
		var person string
		selected, n, err := e.svc.SweepEvidenceThen(ctx, e.tenant(), func() {
			e.record(t, clicked.DeviceID, consent.MethodBannerAcceptAll, grant("analytics", 1))
			e.recordCustomer(t, "C-9", grant("marketing_email", 1))
			person = e.subjectID(t, *customer("C-9"))
			if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(signedIn.DeviceID), *customer("C-9"), consent.MergeSignIn, "device"); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil || selected != 2 || n != 0 {
			t.Fatalf("the sweep selected %d and erased %d (err %v), want both selected and none erased: both subjects changed after it looked",
				selected, n, err)
		}
		if s := e.deviceState(t, clicked.DeviceID, "analytics"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("the grant made meanwhile: %+v", s)
		}
		if last := e.lastEvent(t, clickedID); last.Kind == consent.KindErasure {
			t.Fatal("an erasure was chained after the new grant")
		}
		if s := e.customerState(t, "C-9", "marketing_email"); s.State != consent.StateGranted {
			t.Fatalf("the person the device joined: %+v", s)
		}
		if n := e.count(t, "consent_events", "kind = 'erasure'"); n != 0 {
			t.Fatalf("%d erasure events", n)
		}
		if n := e.count(t, "subjects", "id = ? AND erased_at IS NULL", person); n != 1 {
			t.Fatal("the person a device joined was erased in the device's place")
		}
		e.mustVerifyOK(t)
	})
}

// TestEvidenceSweepSparesLiveAccounts: a registered customer who refused everything years
// ago still signs in with the address, so the sweep leaves them — also when the account
// was made between the sweep's look and its write. Once the account is deleted, the sweep
// erases the person, the account's personal data with it (accounts.EraseStatements).
func TestEvidenceSweepSparesLiveAccounts(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.svc.OnErase(accounts.EraseStatements)
		acc, _ := e.accounts(t)
		const pw = "pitkä ja hyvä salasana tähän"
		register := func(email string) {
			t.Helper()
			if _, err := acc.Register(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: email, Password: pw, Language: "fi"}); err != nil {
				t.Fatal(err)
			}
			e.exec(t, "UPDATE accounts SET email_verified_at = 1, birth_year = 1970")
		}
		refuse := func(email string) {
			t.Helper()
			req := e.customerRequest("", consent.MethodAPI, "", deny("personalisation"))
			req.Identifier = &identity.Identifier{Kind: identity.IDEmail, Value: email}
			if _, err := e.svc.Record(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		register("tili@esimerkki.fi")
		refuse("tili@esimerkki.fi")
		refuse("tuleva@esimerkki.fi") // no account yet
		e.pastEvidence(t)

		selected, n, err := e.svc.SweepEvidenceThen(ctx, e.tenant(), func() { register("tuleva@esimerkki.fi") })
		if err != nil || selected != 1 || n != 0 {
			t.Fatalf("the sweep selected %d and erased %d (err %v), want the one without an account yet selected and none erased",
				selected, n, err)
		}
		for _, email := range []string{"tili@esimerkki.fi", "tuleva@esimerkki.fi"} {
			if _, err := acc.SignIn(ctx, e.tenant(), email, pw, "192.0.2.1"); err != nil {
				t.Fatalf("%s no longer signs in: %v", email, err)
			}
		}

		sess, err := acc.SignIn(ctx, e.tenant(), "tili@esimerkki.fi", pw, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		subject := sess.SubjectID
		if _, err := acc.Delete(ctx, sess); err != nil {
			t.Fatal(err)
		}
		if n, err := e.svc.SweepEvidence(ctx); err != nil || n != 1 {
			t.Fatalf("after the account's deletion the sweep erased %d (err %v), want its person", n, err)
		}
		if n := e.count(t, "accounts", `subject_id = ? AND (status <> 'deleted' OR password_hash IS NOT NULL OR birth_year IS NOT NULL
			OR name_ct IS NOT NULL)`, subject); n != 0 {
			t.Fatal("the erased person's account keeps personal data")
		}
		if n := e.count(t, "sessions", "subject_id = ?", subject); n != 0 {
			t.Fatalf("%d sessions of the erased person remain", n)
		}
		if _, err := acc.SignIn(ctx, e.tenant(), "tuleva@esimerkki.fi", pw, "192.0.2.1"); err != nil {
			t.Fatalf("the other account: %v", err)
		}
		e.mustVerifyOK(t)
	})
}

// TestNothingIsWrittenToAnErasedSubject: a request that found its subject before the
// subject was erased, and reaches the writer after, writes nothing to the erased chain. A
// banner click is kept, on a new device; a server naming a customer is told nothing was
// recorded.
func TestNothingIsWrittenToAnErasedSubject(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		dev := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
		e.recordCustomer(t, "C-5", deny("marketing_email"))
		devID, custID := e.subjectID(t, device(dev.DeviceID)), e.subjectID(t, *customer("C-5"))
		click, err := e.svc.PrepareRecord(ctx, e.deviceRequest(dev.DeviceID, consent.MethodBannerAcceptAll, grant("analytics", 1)))
		if err != nil {
			t.Fatal(err)
		}
		server, err := e.svc.PrepareRecord(ctx, e.customerRequest("C-5", consent.MethodAPI, "", grant("marketing_email", 1)))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{devID, custID} {
			if err := e.svc.EraseSubject(ctx, e.tenant(), id, "dsr:test", actor); err != nil {
				t.Fatal(err)
			}
		}

		out, err := click()
		if err != nil {
			t.Fatalf("the banner click: %v", err)
		}
		if out.DeviceID == "" || out.DeviceID == dev.DeviceID || stateOf(out.State, "analytics").State != consent.StateGranted {
			t.Fatalf("the click was not kept on a new device: device %q (was %q), state %+v", out.DeviceID, dev.DeviceID, out.State)
		}
		if s := e.deviceState(t, out.DeviceID, "analytics"); s.State != consent.StateGranted {
			t.Fatalf("the new device: %+v", s)
		}
		_, err = server()
		wantCode(t, err, identity.EConflict)

		for _, id := range []string{devID, custID} {
			if last := e.lastEvent(t, id); last.Kind != consent.KindErasure {
				t.Fatalf("an event was chained after the erasure: %+v", last)
			}
			for _, table := range []string{"consent_state", "receipts", "identifiers"} {
				if n := e.count(t, table, "subject_id = ?", id); n != 0 {
					t.Errorf("%s holds %d rows of the erased subject again", table, n)
				}
			}
		}
		e.mustVerifyOK(t)
	})
}

// TestEraseSubject: an erasure that was asked for erases the person now, whatever their
// consents, with the devices merged into them; naming the merged device erases its person;
// a repeat changes nothing.
func TestEraseSubject(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.recordCustomer(t, "C-7", grant("marketing_email", 1))
		dev := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		devID := e.subjectID(t, device(dev.DeviceID))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(dev.DeviceID), *customer("C-7"), consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		person := e.subjectID(t, *customer("C-7"))
		other := e.recordCustomer(t, "C-8", grant("marketing_email", 1))

		wantCode(t, e.svc.EraseSubject(ctx, e.tenant(), person, " ", actor), identity.EUnprocessable)
		wantCode(t, e.svc.EraseSubject(ctx, e.tenant(), "no-such-subject", "dsr:1", actor), identity.ENotFound)
		if err := e.svc.EraseSubject(ctx, e.tenant(), devID, "dsr:1", actor); err != nil {
			t.Fatal(err)
		}
		if last := e.lastEvent(t, person); last.Kind != consent.KindErasure || last.Reason != "dsr:1" || last.Actor != string(actor) {
			t.Fatalf("the person's erasure: %+v", last)
		}
		for _, id := range []string{person, devID} {
			if n := e.count(t, "subjects", "id = ? AND secret IS NULL AND pseudonym IS NULL AND erased_at IS NOT NULL", id); n != 1 {
				t.Errorf("subject %s keeps its key", id)
			}
			if n := e.count(t, "receipts", "subject_id = ?", id); n != 0 {
				t.Errorf("subject %s keeps %d receipts", id, n)
			}
		}
		if _, err := e.ids.FindSubject(ctx, e.tenant(), *customer("C-7")); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("the erased person is still found: %v", err)
		}
		if n := e.count(t, "domain_events", "type = 'subject.erased' AND subject_id = ?", person); n != 1 {
			t.Fatalf("%d subject.erased domain events", n)
		}
		events := e.count(t, "consent_events", "")
		if err := e.svc.EraseSubject(ctx, e.tenant(), person, "dsr:2", actor); err != nil {
			t.Fatal(err)
		}
		if e.count(t, "consent_events", "") != events {
			t.Fatal("erasing an erased subject wrote events")
		}
		if s := e.customerState(t, "C-8", "marketing_email"); s.State != consent.StateGranted || other.Subject == "" {
			t.Fatalf("another customer: %+v", s)
		}
		e.mustVerifyOK(t)
	})
}

// TestEvidenceSweepWaitsForAnAccountBeingMade: an account made outside the writer (a
// sign-in with an identity provider) holds the person's row until it commits. An erasure
// that comes meanwhile waits for it, sees the account and spares the person; before, it
// looked for an account first and waited only to write, so it erased a person whose
// account had just been made.
func TestEvidenceSweepWaitsForAnAccountBeingMade(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.recordCustomer(t, "C-5", deny("marketing_email"))
		subj, err := e.ids.FindSubject(ctx, e.tenant(), *customer("C-5"))
		if err != nil {
			t.Fatal(err)
		}
		e.pastEvidence(t)

		tx := e.db.Write.Begin()
		if err := e.ids.LockLive(ctx, tx, subj); err != nil {
			t.Fatal(err)
		}
		type result struct {
			n   int
			err error
		}
		swept := make(chan result, 1)
		go func() {
			n, err := e.svc.SweepEvidence(ctx)
			swept <- result{n, err}
		}()
		sqldbtest.WaitForLockWait(t, e.db) // until the erasure waits on the person's row
		now := e.clock.Now().UnixMilli()
		if err := tx.Exec(`INSERT INTO accounts (tenant_id, id, subject_id, language, status, failed_signins, created_at, updated_at)
			VALUES (?, ?, ?, 'fi', 'active', 0, ?, ?)`, e.tenant(), identity.NewID(), subj.ID, now, now).Error; err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit().Error; err != nil {
			t.Fatal(err)
		}
		if r := <-swept; r.err != nil || r.n != 0 {
			t.Fatalf("the sweep erased %d (err %v), want none: the person has an account now", r.n, r.err)
		}
		if n := e.count(t, "subjects", "id = ? AND erased_at IS NULL", subj.ID); n != 1 {
			t.Fatal("the person was erased under their new account")
		}
	})
}
