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
// signed with the ledger's signing key (no table to keep) as its own JWS type: which pending
// grants of which interaction it confirms, for whom, until when. Following it records those
// grants — only while that request still stands — with method double_opt_in. A second use
// changes nothing.
//
// "Still stands" is exact: the purpose's state is pending, of the version the link names,
// and every ledger event of the purpose since the link's own is a pending grant of that
// same version (the person asked again before confirming: every link of that run works, so
// a repeated grant need not mail again). A withdrawal, an expiry or a request of another
// version in between ends the run: the old link then confirms nothing, and the newer request
// waits for its own email.

const (
	// OptInType is the JWS "typ" of a double opt-in link's token. Only a JWS of exactly this
	// type is a link; a link is accepted as nothing else (receipts and roots pin their own).
	OptInType = "lupa-optin+jwt"
	optInUse  = "double_opt_in"
	optInTTL  = 7 * 24 * time.Hour

	// A repeated grant while the earlier one is still pending mails a new link unless one
	// went out for this run less than optInQuiet ago, or optInPerDay went out in the last
	// 24 hours: the earlier links still work (see above), and a client that re-sends its
	// grants cannot flood a mailbox.
	optInQuiet  = 10 * time.Minute
	optInPerDay = 3
	// optInRunScan bounds how far back a run is read (per purpose).
	optInRunScan = 200
)

type optInToken struct {
	Use         string         `json:"use"`
	Tenant      string         `json:"tenant"`
	Subject     string         `json:"subject"` // subject id
	Interaction string         `json:"interaction"`
	Purposes    []optInPurpose `json:"purposes"`
	Expires     int64          `json:"exp"`
	// At is when the pending grants were recorded (Unix ms); Lang the email's language;
	// Controller the name the email gave. Links sent before these were added lack them.
	At         int64  `json:"at,omitempty"`
	Lang       string `json:"lang,omitempty"`
	Controller string `json:"controller,omitempty"`
}

type optInPurpose struct {
	Key      string `json:"purpose"`
	Version  int    `json:"version"`
	TextHash string `json:"text_hash"`
	Seq      int64  `json:"seq,omitempty"` // the pending grant's ledger event on Subject's chain
}

var optInTexts = map[string]struct{ subject, body string }{
	"fi": {"Vahvista tilauksesi", "Hei,\n\nvahvista, että haluat %s lähettävän sinulle: %s.\n\nVahvista tästä linkistä:\n\n%s\n\nLinkki on voimassa 7 päivää. Jos et tilannut mitään, voit jättää viestin huomiotta: mitään ei lähetetä.\n"},
	"sv": {"Bekräfta din prenumeration", "Hej,\n\nbekräfta att du vill att %s skickar dig: %s.\n\nBekräfta via den här länken:\n\n%s\n\nLänken gäller i 7 dagar. Om du inte beställde något kan du bortse från meddelandet: ingenting skickas.\n"},
	"en": {"Confirm your subscription", "Hello,\n\nplease confirm that you want %s to send you: %s.\n\nConfirm with this link:\n\n%s\n\nThe link works for 7 days. If you did not subscribe, you can ignore this message: nothing will be sent.\n"},
}

// optInLanguage is the language of the email and its page: the language the grants were
// recorded in, else the language of the text the person was shown (a property's default
// when the version lacked theirs), else the tenant's default, else English.
func optInLanguage(c *Catalog, langs ...string) string {
	for _, l := range append(langs, c.Tenant.DefaultLanguage) {
		if _, ok := optInTexts[l]; ok {
			return l
		}
	}
	return "en"
}

// SendOptInConfirmation emails the person the link that confirms the interaction's pending
// grants, when it has any, the person has an email address, and no link of the same
// request went out a moment ago (optInQuiet, optInPerDay). The decisions are recorded
// whatever happens to the email; a failure is logged (without the address).
func (s *Service) SendOptInConfirmation(ctx context.Context, req *RecordRequest, out *Outcome) {
	if s.mailer == nil || out == nil || out.Replayed {
		return
	}
	if err := s.sendOptIn(ctx, req, out); err != nil {
		s.log.Warn("double opt-in email not sent", "interaction", out.InteractionID, "err", err)
	}
}

type pendingRow struct {
	SubjectID, PurposeKey, TextHash, Language string
	PurposeVersion                            int
	Seq, ServerTime                           int64
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
	var rows []pendingRow
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT subject_id, purpose_key, purpose_version, text_hash, language, seq, server_time
		FROM consent_events WHERE tenant_id = ? AND id IN ? ORDER BY seq`, req.TenantID, pending).Scan(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	if due, err := s.optInMailDue(ctx, req.TenantID, rows); err != nil || !due {
		if err == nil {
			s.log.Info("double opt-in email not sent again: an earlier link of the same request still works",
				"interaction", out.InteractionID)
		}
		return err
	}
	emails, err := s.ids.IdentifierValues(ctx, req.TenantID, rows[0].SubjectID, identity.IDEmail)
	if err != nil || len(emails) == 0 {
		return err // no address: the grants stay pending until the person confirms elsewhere
	}
	c, err := s.Catalog(ctx, req.TenantID)
	if err != nil {
		return err
	}
	lang := optInLanguage(c, rows[0].Language, shownLanguage(c, &rows[0]))
	tok := optInToken{Use: optInUse, Tenant: req.TenantID, Subject: rows[0].SubjectID, Interaction: out.InteractionID,
		Expires: s.now().Add(optInTTL).Unix(), At: rows[0].ServerTime, Lang: lang,
		Controller: controllers(c, req.Property)[0].PIIController}
	for _, r := range rows {
		tok.Purposes = append(tok.Purposes, optInPurpose{Key: r.PurposeKey, Version: r.PurposeVersion, TextHash: r.TextHash, Seq: r.Seq})
	}
	payload, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	sign, err := s.keys.SignFunc(OptInType)
	if err != nil {
		return err
	}
	jws, err := sign(payload)
	if err != nil {
		return err
	}
	byKey := optInTitles(c, &tok)
	titles := make([]string, len(tok.Purposes))
	for i, p := range tok.Purposes {
		titles[i] = byKey[p.Key]
	}
	t := optInTexts[lang]
	link := s.publicURL + "/optin?lang=" + lang + "&t=" + url.QueryEscape(jws)
	sendCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.mailer.Send(sendCtx, mail.Message{To: emails[0].Value, Subject: t.subject,
		Text: fmt.Sprintf(t.body, tok.Controller, strings.Join(titles, ", "), link), Language: lang})
}

// shownLanguage is the language of the text a pending grant recorded, or "".
func shownLanguage(c *Catalog, r *pendingRow) string {
	if cp, ok := c.Purpose(r.PurposeKey); ok && cp.Versions[r.PurposeVersion] != nil {
		return cp.Versions[r.PurposeVersion].textLanguage(r.TextHash)
	}
	return ""
}

// optInTitles are the titles of the purposes a link names, by purpose: in the link's
// language, else those of the texts the person was shown when they asked.
func optInTitles(c *Catalog, tok *optInToken) map[string]string {
	titles := make(map[string]string, len(tok.Purposes))
	for _, p := range tok.Purposes {
		title := p.Key
		if cp, ok := c.Purpose(p.Key); ok && cp.Versions[p.Version] != nil {
			title = cp.Versions[p.Version].textShown(tok.Lang, p.TextHash, c.Tenant.DefaultLanguage).Title
		}
		titles[p.Key] = title
	}
	return titles
}

// TitlesOf returns the titles of the purposes keys, in the link's language.
func (r *OptInResult) TitlesOf(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if t, ok := r.Titles[k]; ok {
			out = append(out, t)
		} else {
			out = append(out, k)
		}
	}
	return out
}

// runEvent is one ledger event of a subject's purpose, as the run rules read it.
type runEvent struct {
	Seq, ServerTime int64
	Kind, Decision  string
	PurposeVersion  int
}

// pendingRun reads the events of a subject's purpose before seq (all when seq is 0),
// newest first, and returns the run: the newest events that are pending grants of version
// (a merge never carries one: it carries explicit decisions only, merge.go), and the event
// just before them (nil when the run reaches back as far as was read).
func (s *Service) pendingRun(ctx context.Context, tenantID, subjectID, purposeKey string, version int, before int64) (run []runEvent, brk *runEvent, err error) {
	q := `SELECT seq, server_time, kind, decision, purpose_version FROM consent_events
		WHERE tenant_id = ? AND subject_id = ? AND purpose_key = ?`
	args := []any{tenantID, subjectID, purposeKey}
	if before > 0 {
		q += " AND seq < ?"
		args = append(args, before)
	}
	var rows []runEvent
	if err := s.db.Read.WithContext(ctx).Raw(q+" ORDER BY seq DESC LIMIT ?", append(args, optInRunScan)...).Scan(&rows).Error; err != nil {
		return nil, nil, err
	}
	for i := range rows {
		r := rows[i]
		if r.Kind != KindDecision || r.Decision != PendingConfirmation || r.PurposeVersion != version {
			return rows[:i], &rows[i], nil
		}
	}
	return rows, nil, nil
}

// optInMailDue says whether the pending grants just recorded need an email: yes unless,
// for every one of them, the same request was already pending and a link for it went out
// less than optInQuiet ago or optInPerDay times in the last day. Which earlier grants of the
// run were mailed follows from the same rule, replayed from the run's start.
func (s *Service) optInMailDue(ctx context.Context, tenantID string, rows []pendingRow) (bool, error) {
	for _, r := range rows {
		run, _, err := s.pendingRun(ctx, tenantID, r.SubjectID, r.PurposeKey, r.PurposeVersion, r.Seq)
		if err != nil {
			return false, err
		}
		var sent []int64 // server times of the run's mailed grants, oldest first
		due := func(at int64) bool {
			n := 0
			for _, t := range sent {
				if at-t < optInQuiet.Milliseconds() {
					return false
				}
				if at-t < (24 * time.Hour).Milliseconds() {
					n++
				}
			}
			return n < optInPerDay
		}
		for i := len(run) - 1; i >= 0; i-- {
			if due(run[i].ServerTime) {
				sent = append(sent, run[i].ServerTime)
			}
		}
		if due(r.ServerTime) {
			return true, nil
		}
	}
	return false, nil
}

// ErrOptInLink is the answer to a confirmation link that is not genuine, not whole or too
// old.
var ErrOptInLink = &identity.Error{Code: identity.EUnprocessable, Message: "the confirmation link is not valid or has expired"}

// OptInResult says what following a confirmation link did (ConfirmOptIn) or would do
// (CheckOptIn).
type OptInResult struct {
	Confirmed []string `json:"confirmed"` // purposes granted now (to be granted, for CheckOptIn)
	// Changed are purposes whose text a material version replaced after the link was sent:
	// not confirmed, since the person never saw what they would consent to. They decide again.
	Changed []string `json:"changed"`
	// Superseded are purposes still pending, but from another request than the link's (a
	// newer one, of another version or after a withdrawal; or, the person merged into
	// another since, the survivor's own): that request's own email confirms it.
	Superseded []string `json:"superseded"`
	// Titles are the titles of what the link names by purpose, in its language; Controller
	// who asks.
	Titles     map[string]string `json:"-"`
	Controller string            `json:"-"`
	Tenant     string            `json:"-"`
	Language   string            `json:"-"`
}

// optInCheck is a link checked against the ledger as it is now.
type optInCheck struct {
	in  *interaction
	res *OptInResult
}

// CheckOptIn says what following a confirmation link would confirm now, without recording
// anything: the page a GET shows (mail scanners open links; only the button's POST
// confirms). A link that is not genuine, is too old, or names a person since erased is
// ErrOptInLink.
func (s *Service) CheckOptIn(ctx context.Context, token string) (*OptInResult, error) {
	chk, err := s.checkOptIn(ctx, token)
	if err != nil {
		return nil, err
	}
	for _, d := range chk.in.decisions {
		chk.res.Confirmed = append(chk.res.Confirmed, d.purpose.Key)
	}
	return chk.res, nil
}

// ConfirmOptIn follows a confirmation link: the pending grants it names whose request
// still stands become grants (method double_opt_in, channel email). Those decided
// otherwise since (a withdrawal, an expiry, a confirmation already made) are left alone,
// and so is a newer pending request (Superseded). A grant of a version that a material
// version has replaced since is not confirmed, as Record refuses it: reads already see
// that pending grant as outdated (Effective), and the outdated sweep writes its event, so
// the person is asked again with the new text.
func (s *Service) ConfirmOptIn(ctx context.Context, token string) (*OptInResult, error) {
	chk, err := s.checkOptIn(ctx, token)
	if err != nil {
		return nil, err
	}
	return s.confirmOptIn(ctx, chk)
}

// confirmOptIn records what a checked link confirms. The writer records each grant only
// while the purpose's state is still the one the check saw (onlyIfSeq): a request recorded
// in between is not confirmed by the older link.
func (s *Service) confirmOptIn(ctx context.Context, chk *optInCheck) (*OptInResult, error) {
	res := chk.res
	if len(chk.in.decisions) == 0 {
		return res, nil
	}
	out, err := s.writer.Submit(ctx, chk.in)
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

// optInStands says whether the request a link was sent for still stands for purpose p: on
// the link's chain, every event of the purpose after the link's is a pending grant of its
// version. Links sent before runs were pinned name no event, and only their version is
// checked.
func (s *Service) optInStands(ctx context.Context, tok *optInToken, p optInPurpose) (bool, error) {
	if p.Seq == 0 {
		return true, nil
	}
	_, brk, err := s.pendingRun(ctx, tok.Tenant, tok.Subject, p.Key, p.Version, 0)
	return err == nil && (brk == nil || brk.Seq <= p.Seq), err
}

func (s *Service) checkOptIn(ctx context.Context, token string) (*optInCheck, error) {
	payload, _, err := s.keys.Verify(ctx, strings.TrimSpace(token), OptInType)
	if err != nil {
		return nil, ErrOptInLink
	}
	var tok optInToken
	if err := json.Unmarshal(payload, &tok); err != nil || tok.Use != optInUse || tok.Tenant == "" || tok.Subject == "" ||
		len(tok.Purposes) == 0 {
		return nil, ErrOptInLink
	}
	if s.now().Unix() > tok.Expires {
		return nil, ErrOptInLink
	}
	c, err := s.Catalog(ctx, tok.Tenant)
	if err != nil {
		if identity.IsCode(err, identity.ENotFound) {
			return nil, ErrOptInLink // the tenant is gone
		}
		return nil, err
	}
	// The person: the link's subject, or the one it has been merged into since.
	subjectID, err := identity.PersonOf(ctx, s.db.Read, tok.Tenant, tok.Subject)
	if identity.IsCode(err, identity.ENotFound) || identity.IsCode(err, identity.EConflict) {
		return nil, ErrOptInLink // never this tenant's, or a chain that does not end
	} else if err != nil {
		return nil, err
	}
	person, err := s.ids.SubjectByID(ctx, s.db.Read, tok.Tenant, subjectID)
	if err != nil {
		return nil, err
	}
	if person.Pseudonym == "" {
		return nil, ErrOptInLink // erased since
	}
	pseudonym := person.Pseudonym
	if tok.Lang == "" {
		tok.Lang = optInLanguage(c, "")
	}
	if tok.Controller == "" {
		tok.Controller = c.Tenant.LegalName
	}
	res := &OptInResult{Confirmed: []string{}, Changed: []string{}, Superseded: []string{}, Titles: optInTitles(c, &tok),
		Controller: tok.Controller, Tenant: tok.Tenant, Language: tok.Lang}
	var states []Stored
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT purpose_id, purpose_key, state, version, decided_at, event_seq
		FROM consent_state WHERE tenant_id = ? AND subject_id = ?`, tok.Tenant, subjectID).Scan(&states).Error; err != nil {
		return nil, err
	}
	byKey := map[string]*Stored{}
	for i := range states {
		byKey[states[i].PurposeKey] = &states[i]
	}
	in := &interaction{tenantID: tok.Tenant, id: identity.NewID(), catalog: c, subjectID: subjectID, pseudonym: pseudonym,
		channel: "email", method: MethodDoubleOptIn, actor: "subject", receipt: true, language: tok.Lang, view: c.Asked(nil, "")}
	now := s.now()
	for _, p := range tok.Purposes {
		cp, ok := c.Purpose(p.Key)
		if !ok || cp.Versions[p.Version] == nil {
			continue
		}
		if cp.LegalBasis == BasisConsent && p.Version < cp.MaterialVersion {
			res.Changed = append(res.Changed, cp.Key)
			continue
		}
		st := byKey[cp.Key]
		if Effective(st, cp.Purpose, now) != StatePending {
			continue // confirmed, withdrawn or expired since: nothing to do
		}
		// Merged into another person since: a merge carries decisions, never a pending grant
		// (merge.go), so what is pending there is the survivor's own request, which its own
		// email confirms, not this link.
		if st.Version != p.Version || subjectID != tok.Subject {
			res.Superseded = append(res.Superseded, cp.Key)
			continue
		}
		if stands, err := s.optInStands(ctx, &tok, p); err != nil {
			return nil, err
		} else if !stands {
			res.Superseded = append(res.Superseded, cp.Key)
			continue
		}
		ver := cp.Versions[p.Version]
		in.decisions = append(in.decisions, resolved{purpose: cp, version: ver, requested: Granted,
			textHash: p.TextHash, textLang: ver.textLanguage(p.TextHash), onlyIf: StatePending, onlyIfSeq: st.EventSeq})
	}
	return &optInCheck{in: in, res: res}, nil
}
