package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
	"github.com/lupa-cmp/lupa/integrations/mailchimp"
)

// Send acts on one delivery at the vendor. What it did is the Result: a 200 with what was
// synced, a 200 with Skipped and the reason, or an error the engine retries (rate limits,
// 5xx, a hanging vendor, credentials refused) or records as failed (a 400 the vendor will
// never accept).
func (s *Service) Send(ctx context.Context, m integrations.Message) integrations.Result {
	start := time.Now()
	c, err := s.loaded(ctx, m.TenantID, m.EndpointID)
	if err != nil {
		return integrations.Result{Err: err, Gone: identity.IsCode(err, identity.ENotFound), Response: errText(err)}
	}
	var env integrations.Envelope
	if err := json.Unmarshal(m.Body, &env); err != nil {
		return integrations.Result{Err: err, Outcome: integrations.OutcomeFinal, Response: "unreadable delivery"}
	}
	var r integrations.Result
	switch m.Type {
	case integrations.TypeConsentUpdated:
		r = s.consentUpdated(ctx, c, m, env.Data)
	case integrations.TypeSubjectEmailChanged:
		r = s.emailChanged(ctx, c, m)
	case integrations.TypeSubjectErasureApproved:
		r = s.erase(ctx, c, m)
	default:
		r = skipped("not an event connectors act on")
	}
	r.Latency = time.Since(start)
	return r
}

func synced(what string) integrations.Result {
	return integrations.Result{Status: http.StatusOK, Response: "synced: " + what}
}

func skipped(reason string) integrations.Result {
	return integrations.Result{Status: http.StatusOK, Skipped: reason, Response: "skipped: " + reason}
}

// failure turns a vendor error into the engine's terms: rate limits and temporary failures
// are retried (after Retry-After when given), refused credentials too (the tenant fixes
// them and the backlog flows), a request the vendor rejects is final.
func failure(err error) integrations.Result {
	r := integrations.Result{Err: err, Response: errText(err)}
	var ve *vendorhttp.Error
	if !errors.As(err, &ve) {
		r.Outcome = integrations.OutcomeRetry
		return r
	}
	r.Status, r.RetryAfter = ve.Status, ve.RetryAfter
	switch {
	case ve.Retryable(), errors.Is(err, vendorhttp.ErrUnauthorized):
		r.Outcome = integrations.OutcomeRetry
	default:
		r.Outcome = integrations.OutcomeFinal
	}
	return r
}

// errText is an error for the delivery log: vendor errors carry no addresses (Scrub).
func errText(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return vendorhttp.Scrub(s)
}

// email is the person's current address: the first one they gave ("" when none).
func (s *Service) email(ctx context.Context, tenantID, subjectID string) (string, error) {
	ids, err := s.ids.IdentifierValues(ctx, tenantID, subjectID, identity.IDEmail)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0].Value, nil
}

// held is the address the connector last wrote for the person ("" when none).
func (s *Service) held(ctx context.Context, c *clients, subjectID string) (string, error) {
	var rows []struct {
		EmailCT  []byte `gorm:"column:email_ct"`
		EmailKID string `gorm:"column:email_kid"`
	}
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT email_ct, email_kid FROM connector_members
		WHERE tenant_id = ? AND connector_id = ? AND subject_id = ?`, c.conn.TenantID, c.conn.ID, subjectID).Scan(&rows).Error; err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", nil
	}
	b, err := s.keys.Decrypt(ctx, rows[0].EmailKID, rows[0].EmailCT, memberAAD(c.conn.TenantID, c.conn.ID, subjectID))
	return string(b), err
}

// hold records the address the connector wrote for the person.
func (s *Service) hold(ctx context.Context, c *clients, subjectID, email string) error {
	kid, ct, err := s.keys.Encrypt([]byte(email), memberAAD(c.conn.TenantID, c.conn.ID, subjectID))
	if err != nil {
		return err
	}
	return s.db.Write.WithContext(ctx).Exec(`INSERT INTO connector_members (tenant_id, connector_id, subject_id, email_ct, email_kid, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, connector_id, subject_id)
		DO UPDATE SET email_ct = excluded.email_ct, email_kid = excluded.email_kid, updated_at = excluded.updated_at`,
		c.conn.TenantID, c.conn.ID, subjectID, ct, kid, s.now().UnixMilli()).Error
}

func (s *Service) release(ctx context.Context, c *clients, subjectID string) error {
	return s.db.Write.WithContext(ctx).Exec(`DELETE FROM connector_members WHERE tenant_id = ? AND connector_id = ? AND subject_id = ?`,
		c.conn.TenantID, c.conn.ID, subjectID).Error
}

// stale reports whether a newer change of the delivery's (subject, purpose) has been fanned
// out to this connector: a replayed or late subscribe is then never sent.
func (s *Service) stale(ctx context.Context, m integrations.Message) (bool, error) {
	var last []int64
	err := s.db.Read.WithContext(ctx).Raw(`SELECT last_seq FROM delivery_keys WHERE tenant_id = ? AND endpoint_id = ? AND subject_id = ? AND purpose = ?`,
		m.TenantID, m.EndpointID, m.SubjectID, m.Purpose).Scan(&last).Error
	return err == nil && len(last) > 0 && last[0] > m.Seq, err
}

func (s *Service) consentUpdated(ctx context.Context, c *clients, m integrations.Message, data json.RawMessage) integrations.Result {
	var u integrations.ConsentUpdated
	if err := json.Unmarshal(data, &u); err != nil {
		return integrations.Result{Err: err, Outcome: integrations.OutcomeFinal, Response: "unreadable consent.updated"}
	}
	mp, ok := c.conn.Mapping(u.Purpose)
	if !ok {
		return skipped("the purpose is not mapped to this connector")
	}
	if stale, err := s.stale(ctx, m); err != nil {
		return failure(err)
	} else if stale {
		return skipped("a newer change of this purpose follows")
	}
	if u.Channel == c.conn.Vendor && u.Decision != consent.Granted {
		return skipped("the change came from " + c.conn.Vendor + " itself")
	}
	if u.Decision == consent.PendingConfirmation {
		return skipped("waiting for the person to confirm by email (double opt-in)")
	}
	email, err := s.email(ctx, m.TenantID, m.SubjectID)
	if err != nil {
		return failure(err)
	}
	if email == "" {
		return skipped("the person has no email address in Lupa")
	}
	if r, moved := s.moveIfChanged(ctx, c, m.SubjectID, email); !moved {
		return r
	}
	subscribe := u.Decision == consent.Granted
	var r integrations.Result
	if subscribe {
		r = s.subscribe(ctx, c, mp, u, email)
	} else {
		r = s.unsubscribe(ctx, c, mp, email)
	}
	if r.Err == nil && r.Skipped == "" {
		if err := s.hold(ctx, c, m.SubjectID, email); err != nil {
			return failure(err)
		}
	}
	if errors.Is(r.Err, vendorhttp.ErrComplianceState) {
		return s.complianceState(ctx, c, m, u.Purpose, email)
	}
	return r
}

func (s *Service) subscribe(ctx context.Context, c *clients, mp Mapping, u integrations.ConsentUpdated, email string) integrations.Result {
	switch c.conn.Vendor {
	case Mailchimp:
		perms := make([]mailchimp.Permission, len(mp.MarketingPermissions))
		for i, id := range mp.MarketingPermissions {
			perms[i] = mailchimp.Permission{ID: id, Enabled: true}
		}
		if _, err := c.mailchimp.Subscribe(ctx, mp.ListID, email, perms); err != nil {
			return failure(err)
		}
		return synced("subscribed to audience " + mp.ListID)
	case HubSpot:
		basis, err := s.legalBasis(ctx, c.conn.TenantID, u.Purpose)
		if err != nil {
			return failure(err)
		}
		_, err = c.hubspot.SetStatus(ctx, hubspot.StatusUpdate{Email: email, SubscriptionID: mp.SubscriptionID, State: hubspot.Subscribed,
			LegalBasis: basis, LegalBasisExplanation: fmt.Sprintf("Recorded in Lupa: purpose %s, version %d, %s channel, %s",
				u.Purpose, u.Version, u.Channel, u.Time.UTC().Format(time.RFC3339))})
		if err != nil {
			return failure(err)
		}
		return synced(fmt.Sprintf("subscribed to subscription %d (%s)", mp.SubscriptionID, basis))
	case Klaviyo:
		if r, ok := s.klaviyoUnsubscribedSince(ctx, c, u, email); !ok {
			return r
		}
		if err := c.klaviyo.Subscribe(ctx, mp.ListID, []string{email}); err != nil {
			return failure(err)
		}
		return synced("subscribe job accepted for list " + mp.ListID)
	}
	return skipped("unknown vendor")
}

// klaviyoUnsubscribedSince guards a Klaviyo subscribe: the job would lift the person's own
// unsubscribe suppression. When the person unsubscribed at Klaviyo after the grant being
// sent, that is their newer decision: it is recorded in Lupa and the subscribe is not sent
// (ok false). An unsubscribe older than the grant gives way to it: the person chose again.
func (s *Service) klaviyoUnsubscribedSince(ctx context.Context, c *clients, u integrations.ConsentUpdated, email string) (integrations.Result, bool) {
	p, err := c.klaviyo.Profile(ctx, email)
	if errors.Is(err, vendorhttp.ErrNotFound) {
		return integrations.Result{}, true
	}
	if err != nil {
		return failure(err), false
	}
	at := p.WithdrawnAt()
	if at.IsZero() || !at.After(u.Time) {
		return integrations.Result{}, true
	}
	n, err := s.consents.RecordFromSystem(ctx, consent.SystemDecision{TenantID: c.conn.TenantID,
		Identifier: identity.Identifier{Kind: identity.IDEmail, Value: email}, Purposes: c.conn.Purposes(),
		Channel: c.conn.Vendor, Reason: "vendor_unsubscribe", OccurredAt: at})
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return failure(err), false
	}
	return skipped(fmt.Sprintf("the person unsubscribed at klaviyo after this grant; recorded as %d withdrawal(s) in Lupa", n)), false
}

func (s *Service) unsubscribe(ctx context.Context, c *clients, mp Mapping, email string) integrations.Result {
	switch c.conn.Vendor {
	case Mailchimp:
		if _, err := c.mailchimp.Unsubscribe(ctx, mp.ListID, email); err != nil {
			if errors.Is(err, vendorhttp.ErrNotFound) {
				return skipped("not a member of audience " + mp.ListID + ": nothing to unsubscribe")
			}
			return failure(err)
		}
		return synced("unsubscribed from audience " + mp.ListID)
	case HubSpot:
		if _, err := c.hubspot.SetStatus(ctx, hubspot.StatusUpdate{Email: email, SubscriptionID: mp.SubscriptionID,
			State: hubspot.Unsubscribed}); err != nil {
			return failure(err)
		}
		return synced(fmt.Sprintf("unsubscribed from subscription %d", mp.SubscriptionID))
	case Klaviyo:
		if err := c.klaviyo.Unsubscribe(ctx, mp.ListID, []string{email}); err != nil {
			return failure(err)
		}
		return synced("unsubscribe job accepted for list " + mp.ListID)
	}
	return skipped("unknown vendor")
}

// legalBasis maps the purpose's legal basis to HubSpot's: consent, or the existing-customer
// exception for a legitimate-interest purpose.
func (s *Service) legalBasis(ctx context.Context, tenantID, purpose string) (string, error) {
	cat, err := s.consents.Catalog(ctx, tenantID)
	if err != nil {
		return "", err
	}
	if p, ok := cat.Purpose(purpose); ok && p.LegalBasis == consent.BasisLegitimateInterest {
		return hubspot.LegalBasisLegitimateInterestClient, nil
	}
	return hubspot.LegalBasisConsent, nil
}

// complianceState: Mailchimp refuses to subscribe someone who unsubscribed themselves. That
// is the person's own withdrawal: it is recorded in Lupa, and the subscribe is never forced.
func (s *Service) complianceState(ctx context.Context, c *clients, m integrations.Message, purpose, email string) integrations.Result {
	n, err := s.consents.RecordFromSystem(ctx, consent.SystemDecision{TenantID: m.TenantID,
		Identifier: identity.Identifier{Kind: identity.IDEmail, Value: email}, Purposes: []string{purpose},
		Channel: c.conn.Vendor, Reason: "vendor_compliance_state"})
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return failure(err)
	}
	return skipped(fmt.Sprintf("the person unsubscribed at %s themselves (Member In Compliance State); recorded as %d withdrawal(s) in Lupa",
		c.conn.Vendor, n))
}

// moveIfChanged moves the person's vendor record when their address changed since the
// connector last wrote it. ok is false when the move failed (r says how).
func (s *Service) moveIfChanged(ctx context.Context, c *clients, subjectID, email string) (r integrations.Result, ok bool) {
	old, err := s.held(ctx, c, subjectID)
	if err != nil {
		return failure(err), false
	}
	if old == "" || old == email {
		return integrations.Result{}, true
	}
	conflict, err := s.move(ctx, c, old, email)
	if err != nil {
		return failure(err), false
	}
	if err := s.hold(ctx, c, subjectID, email); err != nil {
		return failure(err), false
	}
	if conflict || c.conn.Vendor == HubSpot {
		// The new address had its own record (it was not moved), or HubSpot keeps statuses
		// per address: write the person's current state to the new address.
		if r := s.resync(ctx, c, email); r.Err != nil {
			return r, false
		}
	}
	return integrations.Result{}, true
}

// move renames the vendor's record from old to email. No record under the old address is
// not an error: there is nothing to move. conflict says the new address already had a
// record: the old one is then unsubscribed instead, never left subscribed beside it.
func (s *Service) move(ctx context.Context, c *clients, old, email string) (conflict bool, err error) {
	var moveErr error
	switch c.conn.Vendor {
	case Mailchimp:
		for _, l := range c.lists() {
			if _, err := c.mailchimp.ChangeEmail(ctx, l, old, email); !errors.Is(err, vendorhttp.ErrNotFound) && err != nil {
				moveErr = err
				break
			}
		}
	case HubSpot:
		moveErr = c.hubspot.ChangeEmail(ctx, old, email)
	case Klaviyo:
		moveErr = c.klaviyo.ChangeEmail(ctx, old, email)
	}
	switch {
	case moveErr == nil, errors.Is(moveErr, vendorhttp.ErrNotFound):
		return false, nil
	case !errors.Is(moveErr, vendorhttp.ErrRejected):
		return false, moveErr
	}
	for _, mp := range c.conn.Mappings {
		if r := s.unsubscribe(ctx, c, mp, old); r.Err != nil {
			return true, r.Err
		}
	}
	return true, nil
}

// lists are the distinct audiences or lists the connector maps.
func (c *clients) lists() []string {
	var out []string
	for _, mp := range c.conn.Mappings {
		if mp.ListID != "" && !slices.Contains(out, mp.ListID) {
			out = append(out, mp.ListID)
		}
	}
	return out
}

// resync writes the person's current decision of every mapped purpose to the address:
// subscribed where they grant, unsubscribed where they decided otherwise, nothing where
// they never decided.
func (s *Service) resync(ctx context.Context, c *clients, email string) integrations.Result {
	v, err := s.consents.SubjectState(ctx, c.conn.TenantID, identity.Identifier{Kind: identity.IDEmail, Value: email}, nil)
	if err != nil {
		return failure(err)
	}
	for _, mp := range c.conn.Mappings {
		for _, st := range v.State {
			if st.Purpose != mp.Purpose || st.State == consent.StateNotAsked {
				continue
			}
			var r integrations.Result
			if st.State == consent.StateGranted {
				u := integrations.ConsentUpdated{Purpose: st.Purpose, Version: st.Version, Decision: consent.Granted, Channel: "lupa"}
				if st.DecidedAt != nil {
					u.Time = *st.DecidedAt
				}
				r = s.subscribe(ctx, c, mp, u, email)
			} else {
				r = s.unsubscribe(ctx, c, mp, email)
			}
			if r.Err != nil {
				return r
			}
		}
	}
	return integrations.Result{}
}

func (s *Service) emailChanged(ctx context.Context, c *clients, m integrations.Message) integrations.Result {
	email, err := s.email(ctx, m.TenantID, m.SubjectID)
	if err != nil {
		return failure(err)
	}
	old, err := s.held(ctx, c, m.SubjectID)
	switch {
	case err != nil:
		return failure(err)
	case old == "":
		return skipped("the vendor holds no record of this person")
	case email == "":
		return skipped("the person has no email address in Lupa")
	case old == email:
		return skipped("the vendor already has the current address")
	}
	if r, ok := s.moveIfChanged(ctx, c, m.SubjectID, email); !ok {
		return r
	}
	return synced("the record moved to the person's new address")
}

// erase deletes the person at the vendor under every address the connector knows of them:
// every email address of the person in Lupa and every address the connector wrote for them
// — under the subject the delivery names and under each subject merged with it, whose
// records at the vendor are the same person's (identity.PersonSubjects). The delivery's success is
// the data map's confirmation that the vendor holds nothing more of the person.
func (s *Service) erase(ctx context.Context, c *clients, m integrations.Message) integrations.Result {
	subjects, err := identity.PersonSubjects(ctx, s.db.Write, m.TenantID, m.SubjectID)
	if err != nil {
		return failure(err)
	}
	addrs, err := s.addressesOf(ctx, c, subjects)
	if err != nil {
		return failure(err)
	}
	if len(addrs) == 0 {
		return s.nothingToErase(ctx, m.TenantID, subjects)
	}
	gone := func(err error) bool { return err == nil || errors.Is(err, vendorhttp.ErrNotFound) }
	for _, a := range addrs {
		switch c.conn.Vendor {
		case Mailchimp:
			for _, l := range c.lists() {
				if err := c.mailchimp.DeletePermanent(ctx, l, a); !gone(err) {
					return failure(err)
				}
			}
		case HubSpot:
			if err := c.hubspot.GDPRDelete(ctx, a); !gone(err) {
				return failure(err)
			}
		case Klaviyo:
			if err := c.klaviyo.RequestDeletion(ctx, a); !gone(err) {
				return failure(err)
			}
		}
	}
	for _, subject := range subjects {
		if err := s.release(ctx, c, subject); err != nil {
			return failure(err)
		}
	}
	return synced("erased at " + c.conn.Vendor)
}

// nothingToErase answers an erasure for which Lupa holds no address of the person. A
// person Lupa never had an address for was never written to the vendor: skipped, and the
// acknowledgement confirms the erasure in the data map. A person already erased in Lupa
// (the evidence sweep, or an erasure that ran before this delivery) has lost the addresses,
// and with them the connector's record of what it wrote: the vendor may still hold them,
// so the delivery fails for good and the system stays unconfirmed until an admin erases
// the person at the vendor by hand and confirms it.
func (s *Service) nothingToErase(ctx context.Context, tenantID string, subjects []string) integrations.Result {
	var erased int64
	if err := s.db.Write.WithContext(ctx).Raw(`SELECT COUNT(*) FROM subjects WHERE tenant_id = ? AND id IN ? AND erased_at IS NOT NULL`,
		tenantID, subjects).Scan(&erased).Error; err != nil {
		return failure(err)
	}
	if erased == 0 {
		return skipped("Lupa holds no address of the person: nothing to erase")
	}
	const msg = "the person was erased in Lupa before this erasure reached the vendor: Lupa no longer knows the address; " +
		"erase them at the vendor by hand and confirm it in the data map"
	return integrations.Result{Err: errors.New("connector: " + msg), Outcome: integrations.OutcomeFinal, Response: msg}
}

// addressesOf lists, once each, the email addresses of the subjects in Lupa and those the
// connector last wrote for them.
func (s *Service) addressesOf(ctx context.Context, c *clients, subjects []string) ([]string, error) {
	var out, seen []string
	add := func(a string) {
		if n := identity.NormalizeEmail(a); n != "" && !slices.Contains(seen, n) {
			seen, out = append(seen, n), append(out, a)
		}
	}
	for _, subject := range subjects {
		ids, err := s.ids.IdentifierValues(ctx, c.conn.TenantID, subject, identity.IDEmail)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			add(id.Value)
		}
		held, err := s.held(ctx, c, subject)
		if err != nil {
			return nil, err
		}
		add(held)
	}
	return out, nil
}
