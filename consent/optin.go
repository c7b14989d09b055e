package consent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail"
)

// Double opt-in. A grant of a purpose marked double_opt_in is recorded as
// pending_confirmation, and the person gets an email with a link. The link carries a token
// signed with the ledger's signing key (no table to keep): which grants of which interaction
// it confirms, for whom, until when. Following it records the grants — only those still
// pending — with method double_opt_in. A second use changes nothing.

const (
	optInType = "lupa-optin+jwt"
	optInUse  = "double_opt_in"
	optInTTL  = 7 * 24 * time.Hour
)

type optInToken struct {
	Use         string         `json:"use"`
	Tenant      string         `json:"tenant"`
	Subject     string         `json:"subject"` // subject id
	Interaction string         `json:"interaction"`
	Purposes    []optInPurpose `json:"purposes"`
	Expires     int64          `json:"exp"`
}

type optInPurpose struct {
	Key      string `json:"purpose"`
	Version  int    `json:"version"`
	TextHash string `json:"text_hash"`
}

var optInTexts = map[string]struct{ subject, body string }{
	"fi": {"Vahvista tilauksesi", "Hei,\n\nvahvista, että haluat %s lähettävän sinulle: %s.\n\nVahvista tästä linkistä:\n\n%s\n\nLinkki on voimassa 7 päivää. Jos et tilannut mitään, voit jättää viestin huomiotta: mitään ei lähetetä.\n"},
	"sv": {"Bekräfta din prenumeration", "Hej,\n\nbekräfta att du vill att %s skickar dig: %s.\n\nBekräfta via den här länken:\n\n%s\n\nLänken gäller i 7 dagar. Om du inte beställde något kan du bortse från meddelandet: ingenting skickas.\n"},
	"en": {"Confirm your subscription", "Hello,\n\nplease confirm that you want %s to send you: %s.\n\nConfirm with this link:\n\n%s\n\nThe link works for 7 days. If you did not subscribe, you can ignore this message: nothing will be sent.\n"},
}

// SendOptInConfirmation emails the person the link that confirms the interaction's pending
// grants, when it has any and the person has an email address. The decisions are recorded
// whatever happens to the email; a failure is logged (without the address).
func (s *Service) SendOptInConfirmation(ctx context.Context, req *RecordRequest, out *Outcome) {
	if s.mailer == nil || out == nil || out.Replayed {
		return
	}
	if err := s.sendOptIn(ctx, req, out); err != nil {
		s.log.Warn("double opt-in email not sent", "interaction", out.InteractionID, "err", err)
	}
}

func (s *Service) sendOptIn(ctx context.Context, req *RecordRequest, out *Outcome) error {
	var pending []string
	for _, e := range out.Events {
		if e.Decision == PendingConfirmation {
			pending = append(pending, e.ID)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	var rows []struct {
		SubjectID, PurposeKey, TextHash string
		PurposeVersion                  int
	}
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT subject_id, purpose_key, purpose_version, text_hash FROM consent_events
		WHERE tenant_id = ? AND id IN ? ORDER BY seq`, req.TenantID, pending).Scan(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	emails, err := s.ids.IdentifierValues(ctx, req.TenantID, rows[0].SubjectID, identity.IDEmail)
	if err != nil || len(emails) == 0 {
		return err // no address: the grants stay pending until the person confirms elsewhere
	}
	tok := optInToken{Use: optInUse, Tenant: req.TenantID, Subject: rows[0].SubjectID, Interaction: out.InteractionID,
		Expires: s.now().Add(optInTTL).Unix()}
	for _, r := range rows {
		tok.Purposes = append(tok.Purposes, optInPurpose{Key: r.PurposeKey, Version: r.PurposeVersion, TextHash: r.TextHash})
	}
	payload, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	sign, err := s.keys.SignFunc(optInType)
	if err != nil {
		return err
	}
	jws, err := sign(payload)
	if err != nil {
		return err
	}
	c, err := s.Catalog(ctx, req.TenantID)
	if err != nil {
		return err
	}
	lang := req.Language
	if _, ok := optInTexts[lang]; !ok {
		lang = "en"
	}
	var titles []string
	for _, p := range tok.Purposes {
		title := p.Key
		if cp, ok := c.Purpose(p.Key); ok && cp.Versions[p.Version] != nil {
			t, _ := cp.Versions[p.Version].TextFor(lang, c.Tenant.DefaultLanguage)
			title = t.Title
		}
		titles = append(titles, title)
	}
	t := optInTexts[lang]
	link := s.publicURL + "/optin?lang=" + lang + "&t=" + url.QueryEscape(jws)
	sendCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.mailer.Send(sendCtx, mail.Message{To: emails[0].Value, Subject: t.subject,
		Text: fmt.Sprintf(t.body, c.Tenant.LegalName, strings.Join(titles, ", "), link), Language: lang})
}

// ErrOptInLink is the answer to a confirmation link that is not genuine, not whole or too
// old.
var ErrOptInLink = &identity.Error{Code: identity.EUnprocessable, Message: "the confirmation link is not valid or has expired"}

// OptInResult says what following a confirmation link did.
type OptInResult struct {
	Confirmed []string `json:"confirmed"` // purposes granted now
	// Changed are purposes whose text a material version replaced after the link was sent:
	// not confirmed, since the person never saw what they would consent to. They decide again.
	Changed  []string `json:"changed"`
	Tenant   string   `json:"-"`
	Language string   `json:"-"`
}

// ConfirmOptIn follows a confirmation link: the grants it names that are still pending
// become grants (method double_opt_in, channel email). Those decided otherwise since (a
// withdrawal, or a confirmation already made) are left alone. A grant of a version that a
// material version has replaced since is not confirmed, as Record refuses it: reads already
// see that pending grant as outdated (Effective), and the outdated sweep writes its event,
// so the person is asked again with the new text.
func (s *Service) ConfirmOptIn(ctx context.Context, token string) (*OptInResult, error) {
	payload, _, err := s.keys.Verify(ctx, strings.TrimSpace(token))
	if err != nil {
		return nil, ErrOptInLink
	}
	var tok optInToken
	if err := json.Unmarshal(payload, &tok); err != nil || tok.Use != optInUse || tok.Tenant == "" || len(tok.Purposes) == 0 {
		return nil, ErrOptInLink // a receipt or anything else signed by Lupa is not a confirmation
	}
	if s.now().Unix() > tok.Expires {
		return nil, ErrOptInLink
	}
	c, err := s.Catalog(ctx, tok.Tenant)
	if err != nil {
		return nil, err
	}
	var subj struct {
		Pseudonym  *string
		MergedInto *string
	}
	if err := s.db.Read.WithContext(ctx).Raw("SELECT pseudonym, merged_into FROM subjects WHERE tenant_id = ? AND id = ?",
		tok.Tenant, tok.Subject).Scan(&subj).Error; err != nil {
		return nil, err
	}
	if subj.Pseudonym == nil {
		return nil, ErrOptInLink // erased since
	}
	in := &interaction{tenantID: tok.Tenant, id: identity.NewID(), catalog: c, subjectID: tok.Subject, pseudonym: *subj.Pseudonym,
		channel: "email", method: MethodDoubleOptIn, actor: "subject", receipt: true, view: c.Asked(nil, "")}
	res := &OptInResult{Confirmed: []string{}, Changed: []string{}, Tenant: tok.Tenant, Language: c.Tenant.DefaultLanguage}
	for _, p := range tok.Purposes {
		cp, ok := c.Purpose(p.Key)
		if !ok || cp.Versions[p.Version] == nil {
			continue
		}
		if cp.LegalBasis == BasisConsent && p.Version < cp.MaterialVersion {
			res.Changed = append(res.Changed, cp.Key)
			continue
		}
		in.decisions = append(in.decisions, resolved{purpose: cp, version: cp.Versions[p.Version], requested: Granted,
			textHash: p.TextHash, onlyIf: StatePending})
	}
	if len(in.decisions) == 0 {
		return res, nil
	}
	out, err := s.writer.Submit(ctx, in)
	if err != nil {
		return nil, err
	}
	for _, e := range out.Events {
		if e.Decision == Granted {
			res.Confirmed = append(res.Confirmed, e.Purpose)
		}
	}
	return res, nil
}
