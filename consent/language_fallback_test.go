package consent_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// A banner in a language a purpose has no text in shows the text the configuration falls
// back to (the property's default language, then English); the decision records that text,
// and is not refused for the language.
func TestDecisionInALanguageTheVersionLacks(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.newPurpose(t, consent.Purpose{Key: "surveys", Level: consent.LevelDevice, LegalBasis: consent.BasisConsent},
			consent.VersionDetails{}) // texts in fi and en only
		v, err := e.svc.Version(ctx, e.tenant(), "surveys", 1)
		if err != nil {
			t.Fatal(err)
		}
		shown := v.TextHashes["fi"] // the web shop's default language
		req := e.deviceRequest("", consent.MethodBannerCustom,
			consent.DecisionInput{Purpose: "surveys", Version: 1, Decision: consent.Granted, TextHash: shown})
		req.Language = "sv"
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatalf("a grant of the text shown in sv: %v", err)
		}
		var ev consent.Event
		e.db.Write.Raw("SELECT text_hash, language FROM consent_events WHERE id = ?", out.Events[0].ID).Scan(&ev)
		if ev.TextHash != shown || ev.Language != "sv" {
			t.Fatalf("recorded text %s in %s, want the Finnish text's hash in sv", ev.TextHash, ev.Language)
		}
		// Without a hash the text shown is recorded all the same; the English one was not shown.
		req = e.deviceRequest("", consent.MethodBannerCustom, grant("surveys", 1))
		req.Language = "sv"
		if out, err = e.svc.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		e.db.Write.Raw("SELECT text_hash, language FROM consent_events WHERE id = ?", out.Events[0].ID).Scan(&ev)
		if ev.TextHash != shown {
			t.Fatalf("recorded text %s, want the Finnish text's", ev.TextHash)
		}
		req = e.deviceRequest("", consent.MethodBannerCustom,
			consent.DecisionInput{Purpose: "surveys", Version: 1, Decision: consent.Granted, TextHash: v.TextHashes["en"]})
		req.Language = "sv"
		_, err = e.svc.Record(ctx, req)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "decisions[0].text_hash", "is not the hash")
	})
}

// The receipt names the title of the text recorded: with the property's default language
// (fi) not the tenant's (en), a decision in a language the version lacks (sv) records the
// Finnish text, and the receipt's purpose is that text's title, not the English one.
func TestReceiptTitleIsOfTheTextRecorded(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.tenantLanguage(t, "en")
		e.newPurpose(t, consent.Purpose{Key: "surveys", Level: consent.LevelDevice, LegalBasis: consent.BasisConsent},
			consent.VersionDetails{}) // texts in fi and en only
		v, err := e.svc.Version(ctx, e.tenant(), "surveys", 1)
		if err != nil {
			t.Fatal(err)
		}
		if e.demo.WebShop.DefaultLanguage != "fi" {
			t.Fatalf("the web shop's default language is %q, want fi", e.demo.WebShop.DefaultLanguage)
		}
		req := e.deviceRequest("", consent.MethodBannerCustom, grant("surveys", 1))
		req.Language = "sv"
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var r consent.Receipt
		receiptPayload(t, out.Receipt, &r)
		p := r.Services[0].Purposes[0]
		if p.TextHash != v.TextHashes["fi"] {
			t.Fatalf("recorded text %s, want the Finnish text's", p.TextHash)
		}
		if p.Purpose != v.Texts["fi"].Title {
			t.Fatalf("the receipt names %q, want the recorded text's title %q", p.Purpose, v.Texts["fi"].Title)
		}
	})
}

// A double opt-in email for a grant in a language neither the email nor the version has
// (de) is written in the language of the text the person was shown (the web shop's default,
// fi), not the tenant's (en), and names that text's title; so does the link's page.
func TestOptInMailInTheLanguageShown(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.tenantLanguage(t, "en")
		a := newOptInAudit(t, e, "kieli@esimerkki.fi")
		v, err := e.svc.Version(ctx, e.tenant(), "marketing_email", 1)
		if err != nil {
			t.Fatal(err)
		}
		req := e.webShopPerson(&a.email, consent.MethodCheckbox, "", "de", grant("marketing_email", 1))
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.svc.SendOptInConfirmation(ctx, req, out)
		m := a.srv.WaitFor(t, a.email.Value, 5*time.Second)
		fi := v.Texts["fi"].Title
		if m.Subject != "Vahvista tilauksesi" || !strings.Contains(m.Text, "/optin?lang=fi&") || !strings.Contains(m.Text, fi) {
			t.Fatalf("mail %q %q, want it in Finnish naming %q", m.Subject, m.Text, fi)
		}
		token, _ := url.QueryUnescape(optInLinkRe.FindStringSubmatch(m.Text)[1])
		res, err := e.svc.CheckOptIn(ctx, token)
		if err != nil || res.Language != "fi" || res.Titles["marketing_email"] != fi {
			t.Fatalf("the link's page: %+v %v", res, err)
		}
	})
}

// A double opt-in email in the person's language (sv) names a purpose whose version has no
// Swedish text by the text the person was shown (the web shop's fi), not the tenant's (en).
func TestOptInTitleIsOfTheTextShown(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.tenantLanguage(t, "en")
		srv, _ := e.mailer(t)
		e.newPurpose(t, consent.Purpose{Key: "newsletter", Level: consent.LevelPerson, LegalBasis: consent.BasisConsent,
			DoubleOptIn: true}, consent.VersionDetails{}) // texts in fi and en only
		v, err := e.svc.Version(ctx, e.tenant(), "newsletter", 1)
		if err != nil {
			t.Fatal(err)
		}
		email := identity.Identifier{Kind: identity.IDEmail, Value: "otsikko@esimerkki.fi"}
		req := e.webShopPerson(&email, consent.MethodCheckbox, "", "sv", grant("newsletter", 1))
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.svc.SendOptInConfirmation(ctx, req, out)
		m := srv.WaitFor(t, email.Value, 5*time.Second)
		fi := v.Texts["fi"].Title
		if m.Subject != "Bekräfta din prenumeration" || !strings.Contains(m.Text, fi) || fi == v.Texts["en"].Title {
			t.Fatalf("mail %q %q, want it in Swedish naming %q", m.Subject, m.Text, fi)
		}
	})
}
