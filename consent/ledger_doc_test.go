package consent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/lupa-cmp/lupa/consent"
)

// docs/ledger.md tells independent verifiers how to check Lupa's ledger. These tests keep
// it honest: its worked example is computed here, and a verifier written only from the
// document (encoding/json + an independent JCS library + SHA-256 + jwx) checks a real
// ledger and its signed roots.

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// exampleEvents is the worked example of docs/ledger.md: a banner grant, then a withdrawal.
func exampleEvents() []*consent.Event {
	first := &consent.Event{
		TenantID: "0193a1b2-0000-7000-8000-00000000000a", SubjectID: "0193a1b2-5555-7000-8000-000000000005",
		Seq: 1, ID: "0193a1b2-1111-7000-8000-000000000001", Kind: consent.KindDecision,
		Pseudonym: "ps_3q2-7wAAAAAAAAAAAAAAAA", PurposeKey: "analytics", PurposeVersion: 1,
		VersionHash: sha("example version"), TextHash: sha("example text"), Decision: consent.Granted,
		PropertyID: "0193a1b2-2222-7000-8000-000000000002", Channel: "web", Method: consent.MethodBannerCustom,
		Language: "fi", UIHash: sha("example ui"), Actor: "device", InteractionID: "0193a1b2-3333-7000-8000-000000000003",
		ServerTime: 1795687200000, ClientTime: 1795687199412,
	}
	first.Hash = first.ComputeHash()
	second := *first
	second.Seq, second.ID, second.PrevHash = 2, "0193a1b2-1111-7000-8000-000000000004", first.Hash
	second.Decision, second.Method, second.UIHash = consent.Withdrawn, consent.MethodBannerRejectAll, ""
	second.InteractionID, second.ServerTime, second.ClientTime = "0193a1b2-3333-7000-8000-000000000006", 1795687260000, 0
	second.Hash = second.ComputeHash()
	return []*consent.Event{first, &second}
}

// documentedForm builds an event's hashed form from docs/ledger.md's field table alone.
func documentedForm(tenant string, row map[string]any) map[string]any {
	o := map[string]any{"v": 1, "tenant": tenant}
	always := map[string]string{"id": "id", "kind": "kind", "subject": "pseudonym", "seq": "seq", "prev": "prev_hash",
		"server_time": "server_time"}
	optional := map[string]string{"purpose": "purpose_key", "purpose_version": "purpose_version", "version_hash": "version_hash",
		"text_hash": "text_hash", "decision": "decision", "property": "property_id", "channel": "channel", "method": "method",
		"agent": "agent", "language": "language", "ui_hash": "ui_hash", "actor": "actor", "interaction": "interaction_id",
		"reason": "reason", "ref": "ref", "client_time": "client_time"}
	for k, col := range always {
		o[k] = row[col]
	}
	for k, col := range optional {
		switch v := row[col].(type) {
		case string:
			if v != "" {
				o[k] = v
			}
		case int64:
			if v != 0 {
				o[k] = v
			}
		}
	}
	return o
}

func jcsHash(t *testing.T, v any) (string, string) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		t.Fatal(err)
	}
	return string(canon), sha(string(canon))
}

func eventRow(e *consent.Event) map[string]any {
	return map[string]any{"id": e.ID, "kind": e.Kind, "pseudonym": e.Pseudonym, "seq": e.Seq, "prev_hash": e.PrevHash,
		"server_time": e.ServerTime, "purpose_key": e.PurposeKey, "purpose_version": int64(e.PurposeVersion),
		"version_hash": e.VersionHash, "text_hash": e.TextHash, "decision": e.Decision, "property_id": e.PropertyID,
		"channel": e.Channel, "method": e.Method, "agent": e.Agent, "language": e.Language, "ui_hash": e.UIHash,
		"actor": e.Actor, "interaction_id": e.InteractionID, "reason": e.Reason, "ref": e.Ref, "client_time": e.ClientTime}
}

// docMerkleRoot is RFC 6962's tree hash over leaf data, as the document describes it.
func docMerkleRoot(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := docMerkleRoot(leaves[:k]), docMerkleRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func leafData(subject string, seq int64, hash string) []byte {
	return []byte(subject + "\x00" + strconv.FormatInt(seq, 10) + "\x00" + hash)
}

func TestLedgerDocWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/ledger.md")
	if err != nil {
		t.Fatal(err)
	}
	evs := exampleEvents()
	var lines []string
	for _, e := range evs {
		canon, hash := jcsHash(t, documentedForm(e.TenantID, eventRow(e)))
		if canon != string(e.Canonical()) || hash != e.Hash {
			t.Fatalf("seq %d: the documented form gives\n%s\n%s\nLupa gives\n%s\n%s", e.Seq, canon, hash, e.Canonical(), e.Hash)
		}
		lines = append(lines, canon, hash)
	}
	// Two chain heads: the example subject at seq 2, and a second subject at seq 1.
	other := "0193a1b2-5555-7000-8000-000000000007"
	otherHash := sha("another subject's first event")
	root := docMerkleRoot([][]byte{leafData(evs[0].SubjectID, 2, evs[1].Hash), leafData(other, 1, otherHash)})
	leaf := consent.LeafHash(evs[0].SubjectID, 2, evs[1].Hash)
	lines = append(lines, otherHash, hex.EncodeToString(leaf[:]), hex.EncodeToString(root[:]))
	for _, want := range lines {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/ledger.md does not show %s", want)
		}
	}
	if t.Failed() {
		t.Logf("worked example values:\n%s", strings.Join(lines, "\n"))
	}
	for _, field := range []string{"v", "id", "kind", "tenant", "subject", "seq", "prev", "server_time", "purpose",
		"purpose_version", "version_hash", "text_hash", "decision", "property", "channel", "method", "agent", "language",
		"ui_hash", "actor", "interaction", "reason", "ref", "client_time"} {
		if !strings.Contains(string(doc), "| `"+field+"` |") {
			t.Errorf("docs/ledger.md's field table has no row for %q", field)
		}
	}
	for _, s := range []string{consent.ReceiptType, consent.RootType, "/.well-known/jwks.json", "/v1/receipts/verify",
		"rfc6962-sha256; leaf = 0x00 || subject_id || 0x00 || seq || 0x00 || hash"} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("docs/ledger.md does not mention %s", s)
		}
	}
}

// A verifier written from docs/ledger.md alone checks a real ledger with two signed roots.
func TestIndependentVerifierFollowingTheDoc(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		dev := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))
		e.recordCustomer(t, "C-1", grant("marketing_email", 1))
		if _, _, err := e.svc.SignRoot(ctx, e.tenant(), "test"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		e.record(t, dev.DeviceID, consent.MethodBannerRejectAll, deny("analytics"))
		e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("social_advertising", 1))
		verbal := e.customerRequest("C-2", consent.MethodVerbal, "agent-1", deny("partner_sharing"))
		if _, err := e.svc.Record(ctx, verbal); err != nil {
			t.Fatal(err)
		}
		e.clock.AddDate(1, 0, 1)
		if _, err := e.svc.SweepExpiry(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.SignRoot(ctx, e.tenant(), "test"); err != nil {
			t.Fatal(err)
		}

		// 1. Every chain: recompute each hash, follow seq and prev, compare with the head.
		rows, err := e.db.Read.Raw(`SELECT subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version, version_hash,
			text_hash, decision, property_id, channel, method, agent, language, ui_hash, actor, interaction_id, reason, ref,
			server_time, client_time, prev_hash, hash FROM consent_events WHERE tenant_id = ?`, e.tenant()).Rows()
		if err != nil {
			t.Fatal(err)
		}
		var events []map[string]any
		for rows.Next() {
			row := map[string]any{}
			if err := e.db.Read.ScanRows(rows, &row); err != nil {
				t.Fatal(err)
			}
			for k, v := range row { // drivers differ: normalise to string and int64
				switch x := v.(type) {
				case int:
					row[k] = int64(x)
				case int32:
					row[k] = int64(x)
				case []byte:
					row[k] = string(x)
				}
			}
			events = append(events, row)
		}
		rows.Close()
		sort.Slice(events, func(i, j int) bool {
			a, b := events[i], events[j]
			if a["subject_id"] != b["subject_id"] {
				return a["subject_id"].(string) < b["subject_id"].(string)
			}
			return a["seq"].(int64) < b["seq"].(int64)
		})
		type hd struct {
			seq  int64
			hash string
		}
		heads := map[string]hd{}
		for _, row := range events {
			subject := row["subject_id"].(string)
			h := heads[subject]
			if row["seq"].(int64) != h.seq+1 || row["prev_hash"] != h.hash {
				t.Fatalf("chain %s breaks at seq %d", subject, row["seq"])
			}
			if _, hash := jcsHash(t, documentedForm(e.tenant(), row)); hash != row["hash"] {
				t.Fatalf("event %s: documented form hashes to %s, stored %s", row["id"], hash, row["hash"])
			}
			heads[subject] = hd{row["seq"].(int64), row["hash"].(string)}
		}
		if len(heads) != 4 || len(events) < 10 {
			t.Fatalf("fixture: %d chains, %d events", len(heads), len(events))
		}

		// 2. Every signed root: check the JWS with the published keys, rebuild it from the
		// leaves, and find every leaf in the ledger.
		set := publishedKeys(t, e.keys)
		var roots []struct {
			Number int64
			JWS    string `gorm:"column:jws"`
		}
		e.db.Read.Raw("SELECT number, jws FROM ledger_roots WHERE tenant_id = ? ORDER BY number", e.tenant()).Scan(&roots)
		if len(roots) != 2 {
			t.Fatalf("%d roots", len(roots))
		}
		var leaves []struct {
			RootNumber int64
			SubjectID  string
			Seq        int64
			Hash       string
		}
		e.db.Read.Raw("SELECT root_number, subject_id, seq, hash FROM ledger_root_leaves WHERE tenant_id = ?", e.tenant()).Scan(&leaves)
		prevRoot := ""
		for _, r := range roots {
			payload, err := jws.Verify([]byte(r.JWS), jws.WithKeySet(set))
			if err != nil {
				t.Fatalf("root %d does not verify with the published keys: %v", r.Number, err)
			}
			msg, _ := jws.Parse([]byte(r.JWS))
			if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != consent.RootType {
				t.Fatalf("root typ %q", typ)
			}
			var p struct {
				Tenant    string `json:"tenant"`
				Number    int64  `json:"number"`
				CreatedAt int64  `json:"created_at"`
				HeadCount int64  `json:"head_count"`
				Root      string `json:"root"`
				PrevRoot  string `json:"prev_root"`
				Tree      string `json:"tree"`
			}
			dec := json.NewDecoder(strings.NewReader(string(payload)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("root payload %s: %v", payload, err)
			}
			if p.Tenant != e.tenant() || p.Number != r.Number || p.PrevRoot != prevRoot || p.CreatedAt <= 0 ||
				p.Tree != "rfc6962-sha256; leaf = 0x00 || subject_id || 0x00 || seq || 0x00 || hash" {
				t.Fatalf("root payload %+v", p)
			}
			prevRoot = p.Root
			latest := map[string]int{} // subject → index of its leaf in the newest root ≤ r
			for i, l := range leaves {
				if l.RootNumber > r.Number {
					continue
				}
				if j, ok := latest[l.SubjectID]; !ok || leaves[j].RootNumber < l.RootNumber {
					latest[l.SubjectID] = i
				}
			}
			subjects := make([]string, 0, len(latest))
			for s := range latest {
				subjects = append(subjects, s)
			}
			sort.Strings(subjects)
			var data [][]byte
			for _, s := range subjects {
				l := leaves[latest[s]]
				data = append(data, leafData(l.SubjectID, l.Seq, l.Hash))
			}
			sum := docMerkleRoot(data)
			if hex.EncodeToString(sum[:]) != p.Root || int64(len(data)) != p.HeadCount {
				t.Fatalf("root %d: leaves rebuild %x over %d heads, signed %s over %d", r.Number, sum, len(data), p.Root, p.HeadCount)
			}
		}
		for _, l := range leaves {
			found := false
			for _, row := range events {
				if row["subject_id"] == l.SubjectID && row["seq"] == l.Seq {
					found = row["hash"] == l.Hash
				}
			}
			if !found {
				t.Fatalf("leaf %+v is not in the ledger", l)
			}
		}
		// The newest root covers exactly today's heads.
		if got := e.count(t, "ledger_root_leaves", "root_number = 2"); got == 0 {
			t.Fatal("the second root stored no leaves")
		}
		e.mustVerifyOK(t)
	})
}

// docs/ledger.md's "Version and text hashes" lets anyone holding a published text prove
// which text an event names: every demo version's hashes, recomputed from the document's
// recipe with an independent JCS implementation, match what Lupa stored.
func TestVersionHashesFollowTheDoc(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		checked := 0
		for key := range e.demo.Purposes {
			p, err := e.svc.Purpose(ctx, e.tenant(), key)
			if err != nil {
				t.Fatal(err)
			}
			versions, err := e.svc.Versions(ctx, e.tenant(), key)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range versions {
				checkDocumentedHashes(t, p, v)
				checked++
			}
		}
		if checked < 6 {
			t.Fatalf("checked %d versions; the demo publishes one for each of its purposes", checked)
		}
	})
}

func checkDocumentedHashes(t *testing.T, p *consent.Purpose, v *consent.Version) {
	t.Helper()
	texts := map[string]any{}
	for lang, tx := range v.Texts {
		texts[lang] = map[string]any{"title": tx.Title, "description": tx.Description, "policy_url": tx.PolicyURL}
		_, h := jcsHash(t, map[string]any{"purpose": p.Key, "version": v.Number, "language": lang,
			"title": tx.Title, "description": tx.Description, "policy_url": tx.PolicyURL})
		if h != v.TextHashes[lang] {
			t.Fatalf("%s v%d %s: the documented text hash is %s, Lupa stored %s", p.Key, v.Number, lang, h, v.TextHashes[lang])
		}
	}
	recipients := []any{}
	for _, r := range v.Details.Recipients {
		recipients = append(recipients, map[string]any{"id": r.ID, "name": r.Name, "legal_name": r.LegalName, "kind": r.Kind, "country": r.Country})
	}
	controllers := []any{}
	for _, c := range v.Details.Controllers {
		controllers = append(controllers, map[string]any{"brand_id": c.BrandID, "legal_name": c.LegalName, "business_id": c.BusinessID})
	}
	if len(controllers) == 0 {
		t.Fatalf("%s v%d names no controller", p.Key, v.Number)
	}
	categories := v.Details.DataCategories
	if categories == nil {
		categories = []string{}
	}
	_, h := jcsHash(t, map[string]any{"purpose": p.Key, "version": v.Number, "level": p.Level, "legal_basis": p.LegalBasis,
		"material": v.Material, "texts": texts, "details": map[string]any{"data_categories": categories,
			"retention": v.Details.Retention, "transfers": v.Details.Transfers, "recipients": recipients, "controllers": controllers}})
	if h != v.ContentHash {
		t.Fatalf("%s v%d: the documented version hash is %s, Lupa stored %s", p.Key, v.Number, h, v.ContentHash)
	}
}
