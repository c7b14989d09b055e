package consent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail"
)

// Mailer sends one email; identity/mail's senders fit.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// SetMailer lets the service send confirmations; publicURL is where people verify their
// receipts.
func (s *Service) SetMailer(m Mailer, publicURL string) {
	s.mailer, s.publicURL = m, strings.TrimSuffix(publicURL, "/")
}

var verbalTexts = map[string]struct{ subject, intro, granted, refused, receipt string }{
	"fi": {"Vahvistus puhelimessa antamistasi valinnoista", "Hei,\n\nkirjasimme %s asiakaspalvelussa antamasi valinnat (%s):\n\n",
		"annettu suostumus", "ei suostumusta",
		"\nVoit muuttaa valintojasi milloin tahansa. Alla on allekirjoitettu kuitti, jonka aitouden voit tarkistaa osoitteessa %s/v1/receipts/verify:\n\n"},
	"sv": {"Bekräftelse av dina val per telefon", "Hej,\n\nvi har registrerat de val du gjorde hos %s kundtjänst (%s):\n\n",
		"samtycke givet", "inget samtycke",
		"\nDu kan ändra dina val när som helst. Nedan finns ett signerat kvitto, vars äkthet du kan kontrollera på %s/v1/receipts/verify:\n\n"},
	"en": {"Confirmation of the choices you made by phone", "Hello,\n\nwe have recorded the choices you made with %s customer service (%s):\n\n",
		"consent given", "no consent",
		"\nYou can change your choices at any time. Below is a signed receipt; you can check that it is genuine at %s/v1/receipts/verify:\n\n"},
}

// ConfirmVerbal emails a person the choices an agent recorded for them by phone, with the
// signed receipt, when the person has an email address. The consent is recorded whether or
// not the email goes out; a failure is logged (without the address).
func (s *Service) ConfirmVerbal(ctx context.Context, req *RecordRequest, out *Outcome) {
	if s.mailer == nil || req.Method != MethodVerbal || out == nil || out.Replayed || req.Identifier == nil {
		return
	}
	if err := s.confirmVerbal(ctx, req, out); err != nil {
		s.log.Warn("verbal consent confirmation not sent", "interaction", out.InteractionID, "err", err)
	}
}

func (s *Service) confirmVerbal(ctx context.Context, req *RecordRequest, out *Outcome) error {
	subj, err := s.ids.FindSubject(ctx, req.TenantID, *req.Identifier)
	if err != nil {
		return err
	}
	emails, err := s.ids.IdentifierValues(ctx, req.TenantID, subj.ID, identity.IDEmail)
	if err != nil || len(emails) == 0 {
		return err
	}
	c, err := s.Catalog(ctx, req.TenantID)
	if err != nil {
		return err
	}
	fallback := req.textFallback(c)
	lang := "en"
	for _, l := range []string{req.Language, fallback, c.Tenant.DefaultLanguage} {
		if _, ok := verbalTexts[l]; ok {
			lang = l
			break
		}
	}
	t := verbalTexts[lang]
	var b strings.Builder
	fmt.Fprintf(&b, t.intro, c.Tenant.LegalName, out.RecordedAt.In(helsinki()).Format("2.1.2006 15:04"))
	for _, d := range req.Decisions {
		title := d.Purpose
		if cp, ok := c.Purpose(d.Purpose); ok && cp.Latest != nil {
			text, _ := cp.Latest.TextFor(lang, fallback)
			title = text.Title
		}
		word := t.refused
		if d.Decision == Granted {
			word = t.granted
		}
		fmt.Fprintf(&b, "- %s: %s\n", title, word)
	}
	fmt.Fprintf(&b, t.receipt, s.publicURL)
	b.WriteString(out.Receipt + "\n")
	sendCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.mailer.Send(sendCtx, mail.Message{To: emails[0].Value, Subject: t.subject, Text: b.String(), Language: lang})
}

// helsinki is the time zone the confirmation shows times in (Finnish and Swedish-speaking
// customers of a Finnish controller); UTC when the zone database is missing.
func helsinki() *time.Location {
	if loc, err := time.LoadLocation("Europe/Helsinki"); err == nil {
		return loc
	}
	return time.UTC
}
