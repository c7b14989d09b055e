package consent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/keyring"
)

// Receipts are checked the way a person or an auditor would check one: with the key set Lupa
// publishes at /.well-known/jwks.json and a JOSE library that is not Lupa's own
// (lestrrat-go/jwx, where Lupa signs with go-jose), and against docs/receipt.schema.json.

// publishedKeys is the JWKS exactly as /.well-known/jwks.json serves it, parsed by jwx.
func publishedKeys(t *testing.T, keys *keyring.Keyring) jwk.Set {
	t.Helper()
	raw, err := json.Marshal(keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatalf("jwx cannot parse the published JWKS %s: %v", raw, err)
	}
	return set
}

// independentVerify checks a compact JWS with jwx and returns its payload and kid.
func independentVerify(t *testing.T, set jwk.Set, compact string) ([]byte, string, error) {
	t.Helper()
	payload, err := jws.Verify([]byte(compact), jws.WithKeySet(set))
	if err != nil {
		return nil, "", err
	}
	msg, err := jws.Parse([]byte(compact))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != consent.ReceiptType {
		t.Fatalf("typ: want %s, got %q", consent.ReceiptType, typ)
	}
	if alg, _ := h.Algorithm(); alg.String() != "EdDSA" {
		t.Fatalf("alg: want EdDSA, got %v", alg)
	}
	kid, _ := h.KeyID()
	return payload, kid, nil
}

func receiptSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../docs/receipt.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("docs/receipt.schema.json is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("receipt.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("receipt.schema.json")
	if err != nil {
		t.Fatalf("compile receipt schema: %v", err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, payload []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

// flip changes one byte of one segment of a compact JWS (after decoding, so the change is
// real and not lost in base64 padding bits).
func flip(t *testing.T, compact string, segment, at int) string {
	t.Helper()
	parts := strings.Split(compact, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[segment])
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	parts[segment] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// respell writes one segment of a compact JWS another way that Go's lenient decoder reads as
// the same bytes: its last character with an unused low bit set, or a line break inside. It
// returns "" when the segment's last character has no unused bits.
func respell(compact string, segment int, lineBreak bool) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(compact, ".")
	p := parts[segment]
	switch {
	case lineBreak:
		parts[segment] = p[:len(p)/2] + "\n" + p[len(p)/2:]
	case len(p)%4 == 0:
		return ""
	default:
		i := strings.IndexByte(alphabet, p[len(p)-1])
		parts[segment] = p[:len(p)-1] + string(alphabet[i^1])
	}
	return strings.Join(parts, ".")
}

func TestReceiptVerifiesWithPublishedKeys(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sch := receiptSchema(t)
		web := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), grant("social_advertising", 1))
		server := e.recordCustomer(t, "C-42", grant("marketing_email", 1), grant("partner_sharing", 1), deny("personalisation"))
		set := publishedKeys(t, e.keys)
		for name, out := range map[string]*consent.Outcome{"web shop": web, "server": server} {
			t.Run(name, func(t *testing.T) {
				payload, kid, err := independentVerify(t, set, out.Receipt)
				if err != nil {
					t.Fatalf("jwx does not verify the receipt with the published JWKS: %v", err)
				}
				if kid != e.keys.ActiveID(keyring.Signing) {
					t.Fatalf("kid %q is not the active signing key %q", kid, e.keys.ActiveID(keyring.Signing))
				}
				if err := validate(t, sch, payload); err != nil {
					t.Fatalf("receipt payload does not match docs/receipt.schema.json: %v\n%s", err, payload)
				}
				var r consent.Receipt
				if err := json.Unmarshal(payload, &r); err != nil {
					t.Fatal(err)
				}
				if r.ConsentReceiptID != out.InteractionID || r.PIIPrincipalID != out.Subject || r.Lupa.Tenant != e.tenant() {
					t.Fatalf("receipt names another interaction or person: %+v", r)
				}
				if len(r.Lupa.Events) != len(out.Events) {
					t.Fatalf("receipt lists %d events, the interaction wrote %d", len(r.Lupa.Events), len(out.Events))
				}
				for i, ev := range out.Events {
					if got := r.Lupa.Events[i]; got.ID != ev.ID || got.Kind != ev.Kind || got.Seq != ev.Seq || got.Hash != ev.Hash {
						t.Fatalf("event %d: receipt %+v, ledger %+v", i, r.Lupa.Events[i], ev)
					}
				}
				if len(r.Services) != 1 || len(r.Services[0].Purposes) != len(out.Events) {
					t.Fatalf("services %+v", r.Services)
				}
				check, err := e.svc.VerifyReceipt(ctx, out.Receipt)
				if err != nil {
					t.Fatal(err)
				}
				if !check.Valid || !check.Ledger || check.KeyID != kid {
					t.Fatalf("VerifyReceipt: %+v", check)
				}

				for _, c := range []struct {
					name     string
					segment  int
					position int
				}{
					{"header first byte", 0, 0},
					{"payload first byte", 1, 0},
					{"payload middle byte", 1, len(payload) / 2},
					{"payload last byte", 1, -1},
					{"signature first byte", 2, 0},
					{"signature middle byte", 2, 32},
					{"signature last byte", 2, -1},
				} {
					bad := flip(t, out.Receipt, c.segment, c.position)
					if _, err := jws.Verify([]byte(bad), jws.WithKeySet(set)); err == nil {
						t.Errorf("%s changed: jwx still verifies", c.name)
					}
					check, err := e.svc.VerifyReceipt(ctx, bad)
					if err != nil {
						t.Fatal(err)
					}
					if check.Valid {
						t.Errorf("%s changed: VerifyReceipt says valid", c.name)
					}
				}
				// A receipt is the exact string Lupa signed: another spelling of the same
				// bytes is not that receipt, so a changed character never verifies.
				for segment, name := range []string{"header", "payload", "signature"} {
					for _, lineBreak := range []bool{false, true} {
						bad := respell(out.Receipt, segment, lineBreak)
						if bad == "" {
							continue
						}
						check, err := e.svc.VerifyReceipt(ctx, bad)
						if err != nil {
							t.Fatal(err)
						}
						if check.Valid {
							t.Errorf("%s spelled another way (line break %v): VerifyReceipt says valid", name, lineBreak)
						}
					}
				}
			})
		}

		// The web shop's brand is its own legal entity: it is named first, the group after.
		var r consent.Receipt
		payload, _, _ := independentVerify(t, set, web.Receipt)
		_ = json.Unmarshal(payload, &r)
		if len(r.PIIControllers) != 2 || r.PIIControllers[0].PIIController != "Demo Market Oy" || r.PIIControllers[1].PIIController != "Demo Retail Oy" {
			t.Fatalf("controllers %+v", r.PIIControllers)
		}
		ads := r.Services[0].Purposes[1]
		if !ads.ThirdPartyDisclosure || ads.ThirdPartyName != "Meta Platforms Ireland Ltd" || ads.Decision != consent.Granted {
			t.Fatalf("advertising purpose on the receipt: %+v", ads)
		}
	})
}

func TestReceiptSchemaRejectsIncompleteReceipts(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		sch := receiptSchema(t)
		out := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		payload, _, err := independentVerify(t, publishedKeys(t, e.keys), out.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			change func(m map[string]any)
		}{
			{"no piiPrincipalId", func(m map[string]any) { delete(m, "piiPrincipalId") }},
			{"wrong version", func(m map[string]any) { m["version"] = "KI-CR-v1.0.0" }},
			{"timestamp as a string", func(m map[string]any) { m["consentTimestamp"] = "2026-11-26" }},
			{"no controllers", func(m map[string]any) { m["piiControllers"] = []any{} }},
			{"disclosure without names", func(m map[string]any) {
				p := m["services"].([]any)[0].(map[string]any)["purposes"].([]any)[0].(map[string]any)
				p["thirdPartyDisclosure"] = true
			}},
			{"event hash not SHA-256", func(m map[string]any) {
				m["lupa"].(map[string]any)["events"].([]any)[0].(map[string]any)["hash"] = "abc"
			}},
			{"unknown member", func(m map[string]any) { m["email"] = "person@example.com" }},
		} {
			var m map[string]any
			if err := json.Unmarshal(payload, &m); err != nil {
				t.Fatal(err)
			}
			c.change(m)
			b, _ := json.Marshal(m)
			if err := validate(t, sch, b); err == nil {
				t.Errorf("%s: the schema accepts it", c.name)
			}
		}
	})
}

func TestReceiptsSurviveKeyRotation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("social_advertising", 1))
		oldKid := e.keys.ActiveID(keyring.Signing)
		ids, err := e.keys.Rotate(ctx, keyring.Signing)
		if err != nil {
			t.Fatal(err)
		}
		if ids[0] == oldKid {
			t.Fatal("rotation kept the same signing key")
		}
		// The new key is published at once and signs only after SigningKeyDelay, so that
		// key sets others cached meanwhile verify what is signed.
		set := publishedKeys(t, e.keys)
		if set.Len() != 2 {
			t.Fatalf("the JWKS should publish the old and the new key at once, has %d", set.Len())
		}
		early := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		if _, kid, err := independentVerify(t, set, early.Receipt); err != nil || kid != oldKid {
			t.Fatalf("receipt straight after rotation: want kid %q, got %q (err %v)", oldKid, kid, err)
		}
		e.clock.Add(keyring.SigningKeyDelay)
		if err := e.keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		fresh := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		set = publishedKeys(t, e.keys)
		if set.Len() != 2 {
			t.Fatalf("the JWKS should publish the old and the new key, has %d", set.Len())
		}
		if _, kid, err := independentVerify(t, set, old.Receipt); err != nil || kid != oldKid {
			t.Fatalf("old receipt after rotation: kid %q err %v", kid, err)
		}
		if _, kid, err := independentVerify(t, set, fresh.Receipt); err != nil || kid != ids[0] {
			t.Fatalf("new receipt: want kid %q, got %q (err %v)", ids[0], kid, err)
		}
		for _, r := range []string{old.Receipt, fresh.Receipt} {
			check, err := e.svc.VerifyReceipt(ctx, r)
			if err != nil || !check.Valid || !check.Ledger {
				t.Fatalf("VerifyReceipt after rotation: %+v %v", check, err)
			}
		}
		// A second instance that started before the rotation learns the new key when it
		// meets a receipt signed with it.
		_, _, other := newStack(t, e.db, e.master, e.clock)
		if check, err := other.VerifyReceipt(ctx, fresh.Receipt); err != nil || !check.Valid {
			t.Fatalf("another instance: %+v %v", check, err)
		}
	})
}
