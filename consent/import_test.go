package consent_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// importAt records an imported grant of marketing_email, decided at the source at `at`.
func (e *env) importAt(t *testing.T, number string, at time.Time, decisions ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	req := e.customerRequest(number, consent.MethodImport, "", decisions...)
	req.ClientTime = at
	out, err := e.svc.Record(context.Background(), req)
	if err != nil {
		t.Fatalf("import for %s: %v", number, err)
	}
	return out
}

// receiptPayload decodes a compact JWS's payload (unverified) into v.
func receiptPayload(t *testing.T, jws string, v any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jws)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// receiptTimes returns a receipt's consentTimestamp and iat.
func receiptTimes(t *testing.T, jws string) (consented, issued int64) {
	t.Helper()
	var p struct {
		ConsentTimestamp int64 `json:"consentTimestamp"`
		IAT              int64 `json:"iat"`
	}
	receiptPayload(t, jws, &p)
	return p.ConsentTimestamp, p.IAT
}

// An import says when the person decided at the source: the re-ask interval counts from
// then, so importing an old consent does not make it fresh.
func TestImportCountsFromTheOriginalDecision(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		now := e.clock.Now()

		old := now.AddDate(0, -13, 0) // past the 12 months of marketing_email
		out := e.importAt(t, "C-old", old, grant("marketing_email", 1))
		if len(out.Events) != 1 || out.Receipt == "" {
			t.Fatalf("an import of a decision Lupa has not seen: %d events, receipt %t; want 1 and a receipt", len(out.Events), out.Receipt != "")
		}
		s := e.customerState(t, "C-old", "marketing_email")
		if s.State != consent.StateExpired || s.MayUse || s.DecidedAt == nil || !s.DecidedAt.Equal(old.Truncate(time.Millisecond)) {
			t.Fatalf("a grant imported 13 months after it was given, on a 12-month interval: %+v", s)
		}
		if consented, issued := receiptTimes(t, out.Receipt); consented != old.Unix() || issued != now.Unix() {
			t.Fatalf("receipt: consentTimestamp %d, iat %d; want the original time %d and the signing time %d",
				consented, issued, old.Unix(), now.Unix())
		}
		// The sweep writes its expiry event, so systems downstream hear of it.
		if _, err := e.svc.SweepExpiry(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "consent_events", "subject_id = ? AND kind = 'expiry'", e.subjectID(t, *customer("C-old"))); n != 1 {
			t.Fatalf("%d expiry events for the old import, want 1", n)
		}

		recent := now.AddDate(0, -6, 0)
		e.importAt(t, "C-recent", recent, grant("marketing_email", 1))
		if s := e.customerState(t, "C-recent", "marketing_email"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("a grant imported 6 months after it was given: %+v", s)
		}
		e.clock.AddDate(0, 6, 0)
		e.clock.Add(time.Minute)
		if s := e.customerState(t, "C-recent", "marketing_email"); s.State != consent.StateExpired {
			t.Fatalf("12 months after the original decision (6 after the import): %+v", s)
		}
	})
}

// A decision recorded in Lupa at or after the import's time stands: neither a late import
// nor the same import sent twice undoes it.
func TestImportLeavesNewerDecisionsAlone(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		now := e.clock.Now()
		e.recordCustomer(t, "C-9", grant("marketing_email", 1))
		e.clock.Add(time.Hour)
		e.recordCustomer(t, "C-9", deny("marketing_email")) // withdrawn in Lupa
		subject := e.subjectID(t, *customer("C-9"))
		events := e.count(t, "consent_events", "subject_id = ?", subject)

		out := e.importAt(t, "C-9", now.Add(30*time.Minute), grant("marketing_email", 1))
		if len(out.Events) != 0 || out.Receipt != "" {
			t.Fatalf("an import older than the withdrawal: %d events, receipt %t; want none", len(out.Events), out.Receipt != "")
		}
		if s := e.customerState(t, "C-9", "marketing_email"); s.State != consent.StateWithdrawn {
			t.Fatalf("after the late import: %+v", s)
		}

		at := e.clock.Now().Add(time.Minute)
		e.clock.Add(2 * time.Minute)
		if out := e.importAt(t, "C-9", at, grant("marketing_email", 1)); len(out.Events) != 1 {
			t.Fatalf("an import newer than every decision in Lupa: %d events, want 1", len(out.Events))
		}
		if out := e.importAt(t, "C-9", at, grant("marketing_email", 1)); len(out.Events) != 0 {
			t.Fatalf("the same import again recorded %d events", len(out.Events))
		}
		if n := e.count(t, "consent_events", "subject_id = ?", subject); n != events+1 {
			t.Fatalf("%d events after the imports, want %d", n, events+1)
		}
		if s := e.customerState(t, "C-9", "marketing_email"); s.State != consent.StateGranted || !s.DecidedAt.Equal(at.Truncate(time.Millisecond)) {
			t.Fatalf("after the newer import: %+v", s)
		}
	})
}

// A decision that writes nothing leaves no trace in the receipt: when an import's older
// decision on one purpose is passed over, the receipt names only the purpose that was
// recorded, with its own text, in the order of the events it signs.
func TestReceiptNamesOnlyRecordedDecisions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		now := e.clock.Now()
		e.recordCustomer(t, "C-10", grant("marketing_email", 1))
		e.clock.Add(time.Hour)
		e.recordCustomer(t, "C-10", deny("marketing_email"))

		out := e.importAt(t, "C-10", now.Add(30*time.Minute), grant("marketing_email", 1), grant("personalisation", 1))
		if len(out.Events) != 1 || out.Events[0].Purpose != "personalisation" {
			t.Fatalf("events of the import: %+v; want one, for personalisation", out.Events)
		}
		purposes := receiptPurposes(t, out.Receipt)
		if len(purposes) != 1 || purposes[0].PurposeKey != "personalisation" || purposes[0].Decision != consent.Granted {
			t.Fatalf("the receipt's purposes: %+v; want personalisation granted only", purposes)
		}
		var textHash string
		if err := e.db.Read.Raw("SELECT text_hash FROM consent_events WHERE id = ?", out.Events[0].ID).Scan(&textHash).Error; err != nil {
			t.Fatal(err)
		}
		if purposes[0].TextHash != textHash {
			t.Fatalf("the receipt names text %s, the event %s", purposes[0].TextHash, textHash)
		}
		if s := e.customerState(t, "C-10", "marketing_email"); s.State != consent.StateWithdrawn {
			t.Fatalf("marketing_email after the import: %+v", s)
		}
	})
}

// receiptPurposes returns the purposes of a receipt's one service.
func receiptPurposes(t *testing.T, jws string) []consent.ReceiptPurpose {
	t.Helper()
	var r consent.Receipt
	receiptPayload(t, jws, &r)
	if len(r.Services) != 1 {
		t.Fatalf("%d services in the receipt, want 1", len(r.Services))
	}
	return r.Services[0].Purposes
}

// An import from the future is a mistake at the source: refused, field by field, and
// nothing is written.
func TestImportFromTheFutureIsRefused(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		events, subjects := e.count(t, "consent_events", ""), e.count(t, "subjects", "")
		req := e.customerRequest("C-future", consent.MethodImport, "", grant("marketing_email", 1))
		req.ClientTime = e.clock.Now().Add(time.Hour)
		out, err := e.svc.Record(context.Background(), req)
		if out != nil {
			t.Fatalf("recorded %d events", len(out.Events))
		}
		wantField(t, wantCode(t, err, identity.EUnprocessable), "client_time", "cannot lie in the future")
		if e.count(t, "consent_events", "") != events || e.count(t, "subjects", "") != subjects {
			t.Fatal("a refused import wrote something")
		}
		// A few seconds of clock skew between the source and Lupa are no mistake.
		req.ClientTime = e.clock.Now().Add(30 * time.Second)
		if _, err := e.svc.Record(context.Background(), req); err != nil {
			t.Fatalf("an import 30 s ahead: %v", err)
		}
	})
}
