package consent_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/consent/consentweb"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// An audit of the ledger's tamper evidence, played by someone with write access to the
// database (the append-only triggers turned off, as a table owner can). Each test names
// what it checks; tamper_test.go has the edits of single columns and rows.

// wantFirst verifies the tenant's ledger and wants its first broken link to be of kind at
// subject (any when "") and root (any when 0).
func (e *env) wantFirst(t *testing.T, tenant, kind, subject string, root int64) *consent.VerifyReport {
	t.Helper()
	rep, err := e.svc.Verify(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.FirstBroken == nil {
		t.Fatalf("the edit was not found: %+v", rep)
	}
	fb := rep.FirstBroken
	if fb.Kind != kind || (subject != "" && fb.SubjectID != subject) || (root != 0 && fb.Root != root) {
		t.Fatalf("first broken link: want %s (subject %q, root %d), got %+v\nall: %+v", kind, subject, root, fb, rep.Problems)
	}
	return rep
}

// rewindChain deletes a chain's events after seq and moves its head back to seq, so the
// chain itself is consistent again.
func (e *env) rewindChain(t *testing.T, subject string, seq int64) {
	t.Helper()
	e.exec(t, "DELETE FROM consent_events WHERE subject_id = ? AND seq > ?", subject, seq)
	e.exec(t, `UPDATE chain_heads SET seq = ?, hash = (SELECT hash FROM consent_events WHERE subject_id = ? AND seq = ?)
		WHERE subject_id = ?`, seq, subject, seq, subject)
}

func (e *env) signRootNow(t *testing.T) *consent.Root {
	t.Helper()
	r, made, err := e.svc.SignRoot(context.Background(), e.tenant(), "test")
	if err != nil || !made {
		t.Fatalf("sign root: made=%v err=%v", made, err)
	}
	return r
}

// Only the latest root used to be rebuilt from the stored leaves. An attacker who cut a
// chain back after root 1 had signed it, let root 2 sign the cut chain, and then deleted
// (or rewrote) root 1's leaf of that chain left nothing to find: root 2 rebuilt, and every
// leaf still stored was in the ledger. Every root is rebuilt now.
func TestAuditEveryRootIsRebuiltFromItsLeaves(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		e.bypassAppendOnly(t)
		e.snapshot(t)
		for _, c := range []struct {
			name  string
			cover func(t *testing.T)
		}{
			{"root 1's leaf deleted", func(t *testing.T) {
				e.exec(t, "DELETE FROM ledger_root_leaves WHERE root_number = 1 AND subject_id = ?", f.s1)
			}},
			{"root 1's leaf moved to the new head", func(t *testing.T) {
				e.exec(t, `UPDATE ledger_root_leaves SET seq = 2, hash = (SELECT hash FROM consent_events WHERE subject_id = ? AND seq = 2)
					WHERE root_number = 1 AND subject_id = ?`, f.s1, f.s1)
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				defer func() {
					e.restore(t)
					e.mustVerifyOK(t)
				}()
				e.rewindChain(t, f.s1, 2)
				e.signNewRoot(t) // root 2 signs s1 at seq 2
				e.wantFirst(t, e.tenant(), "events_deleted", f.s1, 1)
				c.cover(t)
				e.wantFirst(t, e.tenant(), "root_mismatch", "", 1)
			})
		}
	})
}

// Deleting the newest signed roots with their leaves leaves an older, consistent ledger; the
// chain heads still remember which events a root signed (rooted_seq), so verification finds
// it unless those are reset too (docs/ledger.md, section 9).
func TestAuditDeletedNewestRoots(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		e.clock.Add(time.Hour)
		first := e.subjectID(t, *customer("C-100"))
		e.recordCustomer(t, "C-100", grant("personalisation", 1))
		e.signRootNow(t)
		e.mustVerifyOK(t)
		e.bypassAppendOnly(t)
		e.snapshot(t)

		t.Run("the newest root and its leaves", func(t *testing.T) {
			defer func() { e.restore(t); e.mustVerifyOK(t) }()
			e.exec(t, "DELETE FROM ledger_root_leaves WHERE root_number = 2")
			e.exec(t, "DELETE FROM ledger_roots WHERE number = 2")
			e.rewindChain(t, first, 2) // and the decision root 2 held
			e.wantFirst(t, e.tenant(), "root_missing", first, 0)
		})
		t.Run("every root and its leaves", func(t *testing.T) {
			defer func() { e.restore(t); e.mustVerifyOK(t) }()
			e.exec(t, "DELETE FROM ledger_root_leaves")
			e.exec(t, "DELETE FROM ledger_roots")
			e.wantFirst(t, e.tenant(), "root_missing", "", 0)
		})
		t.Run("a root in the middle", func(t *testing.T) {
			defer func() { e.restore(t); e.mustVerifyOK(t) }()
			e.clock.Add(time.Hour)
			e.recordCustomer(t, "C-100", deny("personalisation"))
			e.signRootNow(t) // root 3
			e.exec(t, "DELETE FROM ledger_roots WHERE number = 2")
			rep := e.wantFirst(t, e.tenant(), "root_missing", "", 2)
			// The other roots are still checked: root 3 still rebuilds, and a chain cut
			// back behind root 3 is still found.
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ?", f.s3)
			e.exec(t, "DELETE FROM chain_heads WHERE subject_id = ?", f.s3)
			rep = e.wantFirst(t, e.tenant(), "root_missing", "", 2)
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Kind == "chain_deleted" && p.SubjectID == f.s3)
			}
			if !found {
				t.Fatalf("a missing root stopped the other checks: %+v", rep.Problems)
			}
		})
	})
}

// The row of a signed root must say what its signature says: all of it.
func TestAuditRootRowMatchesItsSignature(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.ledgerFixture(t)
		e.bypassAppendOnly(t)
		e.snapshot(t)
		for _, edit := range []string{
			"UPDATE ledger_roots SET created_at = created_at - 86400000",
			"UPDATE ledger_roots SET kid = 'signing-19700101-00000000'",
			"UPDATE ledger_roots SET head_count = head_count + 1",
		} {
			t.Run(edit, func(t *testing.T) {
				defer func() { e.restore(t); e.mustVerifyOK(t) }()
				e.exec(t, edit)
				e.wantFirst(t, e.tenant(), "root_signature", "", 1)
			})
		}
		t.Run("a receipt in a root's place", func(t *testing.T) {
			defer func() { e.restore(t); e.mustVerifyOK(t) }()
			out := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
			e.exec(t, "UPDATE ledger_roots SET jws = ?", out.Receipt)
			e.wantFirst(t, e.tenant(), "root_signature", "", 1)
		})
	})
}

// A signed root names its tenant: copied to another tenant, with its leaves, it does not
// verify there.
func TestAuditRootOfAnotherTenant(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.ledgerFixture(t)
		other, _, err := e.ids.CreateTenant(ctx, identity.TenantInput{Slug: "other", Name: "Other", LegalName: "Other Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		e.bypassAppendOnly(t)
		e.exec(t, `INSERT INTO ledger_roots (tenant_id, number, created_at, head_count, root, prev_root, kid, jws)
			SELECT ?, number, created_at, 0, ?, prev_root, kid, jws FROM ledger_roots WHERE tenant_id = ?`,
			other.ID, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", e.tenant())
		e.wantFirst(t, other.ID, "root_signature", "", 1)
		e.exec(t, "DELETE FROM ledger_roots WHERE tenant_id = ?", other.ID)
		e.exec(t, `INSERT INTO ledger_roots SELECT ?, number, created_at, head_count, root, prev_root, kid, jws FROM ledger_roots WHERE tenant_id = ?`,
			other.ID, e.tenant())
		e.exec(t, `INSERT INTO ledger_root_leaves SELECT ?, root_number, subject_id, seq, hash FROM ledger_root_leaves WHERE tenant_id = ?`,
			other.ID, e.tenant())
		e.wantFirst(t, other.ID, "root_signature", "", 1)
		e.mustVerifyOK(t)
	})
}

// The truncated IP address and the user agent are kept beside the events, erasable: a
// change there (or their deletion) is not a change of the evidence.
func TestAuditClientContextIsBesideTheChain(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		keep := true
		if _, err := e.ids.UpdateTenant(ctx, e.tenant(), identity.TenantPatch{KeepClientContext: &keep}, actor); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(3 * time.Second) // the consent catalog caches the tenant for two seconds
		req := e.deviceRequest("", consent.MethodBannerAcceptAll, grant("analytics", 1))
		req.ClientIP, req.UserAgent = "203.0.113.77", "Mozilla/5.0 (X11; Linux x86_64)"
		if _, err := e.svc.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		e.signRootNow(t)
		if n := e.count(t, "interaction_context", ""); n != 1 {
			t.Fatalf("%d client context rows, want 1", n)
		}
		e.exec(t, "UPDATE interaction_context SET ip_prefix = '198.51.100.0', user_agent = 'curl/8'")
		e.mustVerifyOK(t)
		e.exec(t, "DELETE FROM interaction_context")
		e.mustVerifyOK(t)
	})
}

// What verification cannot see by itself (docs/ledger.md, section 9): events written after
// the latest root, deleted with their head moved back. The person's receipt still shows it.
func TestAuditTruncatedAfterTheLatestRoot(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.ledgerFixture(t)
		e.clock.Add(time.Minute)
		out := e.recordCustomer(t, "C-100", grant("personalisation", 1)) // s2 seq 3, after the root
		e.bypassAppendOnly(t)
		e.rewindChain(t, f.s2, 2)
		e.mustVerifyOK(t)
		check, err := e.svc.VerifyReceipt(ctx, out.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !check.Valid || check.Ledger {
			t.Fatalf("the receipt of the deleted event: %+v", check)
		}
		// The next root signs the cut chain; the person's receipt is the evidence left.
		e.signNewRoot(t)
		e.mustVerifyOK(t)
	})
}

// A whole tenant's chains (events and heads) deleted after a root signed them.
func TestAuditTenantsChainsDeleted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		e.bypassAppendOnly(t)
		e.exec(t, "DELETE FROM consent_events WHERE tenant_id = ?", e.tenant())
		e.exec(t, "DELETE FROM chain_heads WHERE tenant_id = ?", e.tenant())
		rep := e.wantFirst(t, e.tenant(), "chain_deleted", "", 1)
		got := map[string]bool{}
		for _, p := range rep.Problems {
			if p.Kind == "chain_deleted" {
				got[p.SubjectID] = true
			}
		}
		if !got[f.s1] || !got[f.s2] || !got[f.s3] {
			t.Fatalf("every dropped chain should be named: %+v", rep.Problems)
		}
	})
}

// RFC 8785 writes a number as ECMAScript does: an integer beyond ±(2⁵³−1) is not written
// as its digits. No event can hold one (times are milliseconds of four-digit years), so an
// event that does was edited, even if its hash was recomputed the way Lupa writes integers:
// an independent verifier following docs/ledger.md computes another hash for it.
func TestAuditIntegersOutsideTheJCSRange(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.ledgerFixture(t)
		e.clock.Add(time.Minute)
		after := e.subjectID(t, device(e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1)).DeviceID)) // no root holds it
		e.bypassAppendOnly(t)
		var ev consent.Event
		if err := e.db.Write.Raw(`SELECT tenant_id, subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version,
			version_hash, text_hash, decision, property_id, channel, method, agent, language, ui_hash, actor,
			interaction_id, reason, ref, server_time, client_time, prev_hash, hash
			FROM consent_events WHERE subject_id = ?`, after).Scan(&ev).Error; err != nil {
			t.Fatal(err)
		}
		ev.ClientTime = 1 << 60
		ev.Hash = ev.ComputeHash()
		_, independent := jcsHash(t, json.RawMessage(ev.Canonical()))
		if independent == ev.Hash {
			t.Fatal("the independent JCS writes 2^60 as its digits")
		}
		e.exec(t, "UPDATE consent_events SET client_time = ?, hash = ? WHERE subject_id = ?", ev.ClientTime, ev.Hash, after)
		e.exec(t, "UPDATE chain_heads SET hash = ? WHERE subject_id = ?", ev.Hash, after)
		rep := e.wantFirst(t, e.tenant(), "hash_mismatch", after, 0)
		if !strings.Contains(rep.FirstBroken.Message, "client_time") {
			t.Fatalf("the problem should name the column: %+v", rep.FirstBroken)
		}
	})
}

// The first broken link is the same every time, whichever chains lack their heads.
func TestAuditFirstBrokenIsStable(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		e.exec(t, "DELETE FROM chain_heads")
		first := min(f.s1, f.s2, f.s3)
		for range 12 {
			rep := e.wantFirst(t, e.tenant(), "head_missing", first, 0)
			if rep.FirstBroken.Seq == 0 {
				t.Fatalf("head_missing should name where the chain ends: %+v", rep.FirstBroken)
			}
		}
	})
}

// A receipt is a JWS of one type: something else Lupa signed with the same key (a signed
// root, a confirmation link) is not a receipt, whatever its payload says.
func TestAuditReceiptTypeIsPinned(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		out := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		parts := strings.Split(out.Receipt, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{consent.RootType, "lupa-optin+jwt", "JWT", ""} {
			_, other, err := e.keys.Sign(typ, payload)
			if err != nil {
				t.Fatal(err)
			}
			check, err := e.svc.VerifyReceipt(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			if check.Valid {
				t.Errorf("typ %q: a JWS of another type is taken for a receipt (kid %s)", typ, check.KeyID)
			}
		}
		// Headers Lupa never writes, each signed (with the signing key itself, as only Lupa
		// could) over the forged header: refused for the header, not for the signature.
		kid := e.keys.ActiveID("signing")
		genuine := e.signWithHeader(t, `{"alg":"EdDSA","kid":"`+kid+`","typ":"lupa-receipt+jwt"}`, parts[1])
		if check, err := e.svc.VerifyReceipt(ctx, genuine); err != nil || !check.Valid {
			t.Fatalf("signed the same way with the header Lupa writes: %+v %v", check, err)
		}
		for _, header := range []string{
			`{"alg":"none","kid":"` + kid + `","typ":"lupa-receipt+jwt"}`,
			`{"alg":"HS256","kid":"` + kid + `","typ":"lupa-receipt+jwt"}`,
			`{"alg":"EdDSA","typ":"lupa-receipt+jwt"}`,
			`{"alg":"EdDSA","kid":"` + kid + `","typ":"lupa-receipt+jwt","crit":["exp"],"exp":1}`,
			`{"alg":"EdDSA","kid":"` + kid + `","typ":"lupa-receipt+jwt","jku":"https://keys.example/jwks.json"}`,
		} {
			forged := e.signWithHeader(t, header, parts[1])
			check, err := e.svc.VerifyReceipt(ctx, forged)
			if err != nil {
				t.Fatal(err)
			}
			if check.Valid {
				t.Errorf("header %s: valid", header)
			}
		}
		if check, err := e.svc.VerifyReceipt(ctx, out.Receipt); err != nil || !check.Valid || !check.Ledger {
			t.Fatalf("the receipt itself: %+v %v", check, err)
		}
	})
}

// After an erasure the chain stays, so a receipt the person kept still verifies and still
// matches the ledger: it is their proof, and only they hold it.
func TestAuditReceiptAfterErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		out := e.recordCustomer(t, "C-9", grant("marketing_email", 1), deny("personalisation"))
		person := e.subjectID(t, *customer("C-9"))
		if err := e.svc.EraseSubject(ctx, e.tenant(), person, "dsr:9", actor); err != nil {
			t.Fatal(err)
		}
		check, err := e.svc.VerifyReceipt(ctx, out.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !check.Valid || !check.Ledger {
			t.Fatalf("the kept receipt after the erasure: %+v", check)
		}
		e.mustVerifyOK(t)
	})
}

// A grant of a double opt-in purpose is recorded as pending_confirmation, and its receipt
// says so: the schema must allow what Lupa signs.
func TestAuditPendingReceiptMatchesTheSchema(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.doubleOptIn(t)
		out := e.recordCustomer(t, "C-3", grant("marketing_email", 1))
		payload, _, err := independentVerify(t, publishedKeys(t, e.keys), out.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(payload), `"decision":"pending_confirmation"`) {
			t.Fatalf("not a pending grant: %s", payload)
		}
		if err := validate(t, receiptSchema(t), payload); err != nil {
			t.Fatalf("the receipt of a pending grant does not match docs/receipt.schema.json: %#v\n%s", err, payload)
		}
	})
}

// `lupa ledger verify` runs beside a live Lupa. Its reads are one snapshot: events written,
// heads moved and roots signed while it reads are not taken for broken links.
func TestAuditVerifyWhileWriting(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		devices := make([]string, 8)
		for i := range devices {
			devices[i] = e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1)).DeviceID
		}
		e.signRootNow(t)
		done := make(chan error, 2)
		go func() { // decisions of known and new devices
			for i := 0; ctx.Err() == nil; i++ {
				d := devices[i%len(devices)]
				if i%3 == 0 {
					d = ""
				}
				if _, err := e.svc.Record(ctx, e.deviceRequest(d, consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		go func() { // roots signed meanwhile
			for ctx.Err() == nil {
				if _, _, err := e.svc.SignRoot(ctx, e.tenant(), ""); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			done <- nil
		}()
		deadline := time.Now().Add(3 * time.Second)
		runs := 0
		for ; time.Now().Before(deadline); runs++ {
			rep, err := e.svc.Verify(context.Background(), e.tenant())
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK {
				cancel()
				t.Fatalf("run %d: a live ledger is reported broken: %+v", runs, rep.Problems)
			}
		}
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%d verifications", runs)
	})
}

// A receipt lists every purpose of its interaction with titles, data categories and
// recipients: Lupa signs receipts far longer than the 64 KiB other bodies are held to, and
// POST /v1/receipts/verify must take every receipt Lupa signs.
func TestAuditLongReceiptsCanBeChecked(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var categories []string
		for i := range 30 {
			categories = append(categories, fmt.Sprintf("category %02d: %s", i, strings.Repeat("purchase history by store ", 3)))
		}
		var decisions []consent.DecisionInput
		for i := range 20 {
			key := fmt.Sprintf("loyalty_%02d", i)
			e.newPurpose(t, consent.Purpose{Key: key, Level: consent.LevelPerson, LegalBasis: consent.BasisConsent},
				consent.VersionDetails{DataCategories: categories})
			decisions = append(decisions, grant(key, 1))
		}
		out := e.recordCustomer(t, "C-77", decisions...)
		if len(out.Receipt) <= 64<<10 {
			t.Fatalf("the receipt is %d characters: the test wants one longer than 64 KiB", len(out.Receipt))
		}
		gin.SetMode(gin.TestMode)
		router := gin.New()
		h := consentweb.New(e.svc, e.ids, identityweb.NewAPI(slog.New(slog.NewTextHandler(io.Discard, nil))))
		router.POST("/v1/receipts/verify", consentweb.NewReceipts(h, e.keys).Verify)
		body, _ := json.Marshal(map[string]string{"receipt": out.Receipt})
		req := httptest.NewRequest(http.MethodPost, "/v1/receipts/verify", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		router.ServeHTTP(w, req)
		var check consent.ReceiptCheck
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &check) != nil || !check.Valid || !check.Ledger {
			t.Fatalf("a receipt of %d characters Lupa signed: %d %.300s", len(out.Receipt), w.Code, w.Body.String())
		}
		// Longer than any receipt: refused before it is read.
		req = httptest.NewRequest(http.MethodPost, "/v1/receipts/verify", strings.NewReader(`{"receipt":"`+strings.Repeat("A", consentweb.ReceiptBodyLimit)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		w = httptest.NewRecorder()
		router.ServeHTTP(w, req)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body over the limit: %d", w.Code)
		}
	})
}

// docs/ledger.md's Merkle example goes on with a third head, so that the odd leaf shows:
// it is not paired with a copy of itself (as in some other trees) but hashed in at the top,
// SHA-256(0x01 || root of the first two || its leaf hash).
func TestAuditLedgerDocOddLeafExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/ledger.md")
	if err != nil {
		t.Fatal(err)
	}
	evs := exampleEvents()
	other, third := "0193a1b2-5555-7000-8000-000000000007", "0193a1b2-5555-7000-8000-000000000009"
	otherHash, thirdHash := sha("another subject's first event"), sha("a third subject's first event")
	leaves := [][]byte{leafData(evs[0].SubjectID, 2, evs[1].Hash), leafData(other, 1, otherHash), leafData(third, 1, thirdHash)}
	root := docMerkleRoot(leaves)
	two := docMerkleRoot(leaves[:2])
	l3 := consent.LeafHash(third, 1, thirdHash)
	if top := sha256.Sum256(append(append([]byte{1}, two[:]...), l3[:]...)); top != root {
		t.Fatal("the three-leaf tree is not node(node(l1, l2), l3)")
	}
	for _, want := range []string{third, thirdHash, hex.EncodeToString(l3[:]), hex.EncodeToString(root[:])} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/ledger.md does not show %s", want)
		}
	}
}

// Events moved between subjects or tenants.
func TestAuditEventsMoved(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		f := e.ledgerFixture(t)
		other, _, err := e.ids.CreateTenant(ctx, identity.TenantInput{Slug: "other", Name: "Other", LegalName: "Other Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		e.bypassAppendOnly(t)
		e.snapshot(t)
		run := func(name string, move func(t *testing.T), check func(t *testing.T)) {
			t.Run(name, func(t *testing.T) {
				defer func() {
					e.exec(t, "DELETE FROM consent_events WHERE tenant_id = ?", other.ID)
					e.exec(t, "DELETE FROM chain_heads WHERE tenant_id = ?", other.ID)
					e.restore(t)
					e.mustVerifyOK(t)
				}()
				move(t)
				check(t)
			})
		}
		run("one event to the end of another subject's chain", func(t *testing.T) {
			e.exec(t, "UPDATE consent_events SET subject_id = ?, seq = 2 WHERE subject_id = ? AND seq = 1", f.s3, f.s1)
			e.exec(t, "UPDATE chain_heads SET seq = 2, hash = (SELECT hash FROM consent_events WHERE subject_id = ? AND seq = 2) WHERE subject_id = ?", f.s3, f.s3)
		}, func(t *testing.T) {
			rep := e.wantFirst(t, e.tenant(), "sequence_gap", f.s1, 0)
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Kind == "broken_link" && p.SubjectID == f.s3 && p.Seq == 2)
			}
			if !found {
				t.Fatalf("the event moved onto s3's chain is not named: %+v", rep.Problems)
			}
		})
		run("a whole chain, with its head, to another subject id", func(t *testing.T) {
			const elsewhere = "ffffffff-0000-7000-8000-000000000000"
			e.exec(t, "UPDATE consent_events SET subject_id = ? WHERE subject_id = ?", elsewhere, f.s2)
			e.exec(t, "UPDATE chain_heads SET subject_id = ? WHERE subject_id = ?", elsewhere, f.s2)
		}, func(t *testing.T) {
			e.wantFirst(t, e.tenant(), "chain_deleted", f.s2, 1)
		})
		run("a whole chain, with its head, to another tenant", func(t *testing.T) {
			e.exec(t, "UPDATE consent_events SET tenant_id = ? WHERE subject_id = ?", other.ID, f.s2)
			e.exec(t, "UPDATE chain_heads SET tenant_id = ? WHERE subject_id = ?", other.ID, f.s2)
		}, func(t *testing.T) {
			e.wantFirst(t, e.tenant(), "chain_deleted", f.s2, 1)
			e.wantFirst(t, other.ID, "hash_mismatch", f.s2, 0) // the tenant is hashed
		})
	})
}

// A root signed before a key rotation still verifies after it, beside roots the new key
// signs; the row's kid is the key that signed each.
func TestAuditRootsSurviveKeyRotation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.ledgerFixture(t)
		first, err := e.svc.LatestRoot(ctx, e.tenant())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.keys.Rotate(ctx, "signing"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		if err := e.keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		e.signNewRoot(t)
		second, err := e.svc.LatestRoot(ctx, e.tenant())
		if err != nil {
			t.Fatal(err)
		}
		if second.Number != 2 || second.KeyID == first.KeyID || second.KeyID != e.keys.ActiveID("signing") {
			t.Fatalf("roots %s and %s: the second is not signed by the new key", first.KeyID, second.KeyID)
		}
		if rep := e.mustVerifyOK(t); rep.Roots != 2 {
			t.Fatalf("%d roots", rep.Roots)
		}
	})
}

// The reason of an erasure goes into the ledger for good, so it is a code, never free text
// that could carry personal data past the erasure it records.
func TestAuditErasureReasonIsACode(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.recordCustomer(t, "C-5", grant("marketing_email", 1))
		person := e.subjectID(t, *customer("C-5"))
		events := e.count(t, "consent_events", "")
		for _, reason := range []string{"asked for by anna@example.com", "Anna Virtanen called", "dsr 12", "dsr:1\tnote", strings.Repeat("x", 201)} {
			wantField(t, wantCode(t, e.svc.EraseSubject(ctx, e.tenant(), person, reason, actor), identity.EUnprocessable), "reason", "")
		}
		if e.count(t, "consent_events", "") != events {
			t.Fatal("a refused erasure wrote an event")
		}
		if err := e.svc.EraseSubject(ctx, e.tenant(), person, "dsr:0193a1b2-7777-7000-8000-000000000001", actor); err != nil {
			t.Fatal(err)
		}
		if last := e.lastEvent(t, person); last.Kind != consent.KindErasure || last.Reason != "dsr:0193a1b2-7777-7000-8000-000000000001" {
			t.Fatalf("the erasure: %+v", last)
		}
	})
}

// signWithHeader signs a compact JWS with the keyring's active signing key (unwrapped from
// its row with the master key, as the keyring does) over whatever protected header it is
// given: a JWS only Lupa could have made, with a header Lupa never writes.
func (e *env) signWithHeader(t *testing.T, header, payload64 string) string {
	t.Helper()
	kid := e.keys.ActiveID("signing")
	var wrapped []byte
	if err := e.db.Read.Raw("SELECT wrapped FROM data_keys WHERE id = ?", kid).Row().Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(e.master)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte(kid+"|signing"))
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload64
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(seed), []byte(input))
	forged := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	if ok := ed25519.Verify(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), []byte(input), sig); !ok {
		t.Fatal("the forged signature does not verify")
	}
	return forged
}
