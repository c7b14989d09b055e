package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
	"github.com/lupa-cmp/lupa/integrations/mailchimp"
)

// Inbound: changes made at the vendor come back to Lupa.
//
// A person who unsubscribes through a newsletter's link, or opts out in HubSpot's
// preference centre, has withdrawn (or, for a legitimate-interest purpose, objected) in
// Lupa's terms. The vendors' webhooks (and the periodic reconcile, reconcile.go) bring that
// back: RecordFromSystem records it with the vendor as channel, only for purposes the person
// currently grants and only when Lupa's own latest decision is older than the vendor's
// event, so a late or echoed event never overrides a newer choice made in Lupa.
//
// The other direction is deliberately absent: a subscribe, an opt-in or a profile change
// made at the vendor is never a consent in Lupa. Lupa cannot show who gave it, when, and to
// which text (GDPR Art. 7(1)); Lupa is the truth for grants, the vendor only ever takes away.

// Inbound limits.
const (
	maxMailchimpBody = 64 << 10 // mailchimp.ParseWebhook's own bound
	maxHubSpotBody   = 1 << 20
	// inboundTimeout bounds one webhook's work (HubSpot expects an answer within seconds
	// and retries when it gets none; what was recorded before stays recorded).
	inboundTimeout = 4 * time.Second
)

// Reasons recorded with decisions that came from a vendor.
const (
	ReasonVendorUnsubscribe   = "vendor_unsubscribe"
	ReasonVendorMemberDeleted = "vendor_member_deleted"
	ReasonVendorSpamComplaint = "vendor_spam_complaint"
	ReasonVendorOptOut        = "vendor_opt_out"
	ReasonVendorOptOutAll     = "vendor_opt_out_all"
)

// InboundHandler serves the vendors' webhooks:
//
//	GET|HEAD /hooks/mailchimp/{tenant}/{connector}?secret=…  Mailchimp's URL check: 200 when the secret matches
//	POST     /hooks/mailchimp/{tenant}/{connector}?secret=…  Mailchimp's audience events
//	POST     /hooks/hubspot/{tenant}/{connector}             HubSpot's signed (v3) contact events
//
// publicBaseURL is Lupa's public URL as the vendors call it (LUPA_PUBLIC_URL): HubSpot signs
// the full URL it called, and behind a proxy the request's own Host is not to be trusted.
// An unknown tenant or connector, a disabled one, one of another vendor, and a Mailchimp
// URL with a wrong secret are all 404: the answer does not reveal which connectors exist.
// The answers carry no personal data and the handler logs none.
func (s *Service) InboundHandler(publicBaseURL string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hooks/mailchimp/{tenant}/{connector}", s.mailchimpCheck) // GET also serves HEAD
	mux.HandleFunc("POST /hooks/mailchimp/{tenant}/{connector}", s.mailchimpHook)
	mux.HandleFunc("POST /hooks/hubspot/{tenant}/{connector}", func(w http.ResponseWriter, r *http.Request) {
		s.hubspotHook(w, r, publicBaseURL)
	})
	return mux
}

// inboundConnector loads the enabled connector of this vendor named by the path, or nil
// after answering (404 for anything that is not one, 503 when the database failed).
func (s *Service) inboundConnector(w http.ResponseWriter, r *http.Request, vendor string) *clients {
	tenantID, id := r.PathValue("tenant"), r.PathValue("connector")
	if len(tenantID) == 0 || len(tenantID) > 64 || !strings.HasPrefix(id, IDPrefix) || len(id) > 80 {
		problem(w, r, http.StatusNotFound, "no such connector")
		return nil
	}
	c, err := s.loaded(r.Context(), tenantID, id)
	if err != nil {
		if identity.IsCode(err, identity.ENotFound) {
			problem(w, r, http.StatusNotFound, "no such connector")
			return nil
		}
		s.opt.Log.Error("connector inbound: load the connector", "tenant", tenantID, "connector", id, "error", errText(err))
		problem(w, r, http.StatusServiceUnavailable, "temporarily unavailable")
		return nil
	}
	if c.conn.Vendor != vendor || c.conn.Status != StatusEnabled {
		problem(w, r, http.StatusNotFound, "no such connector")
		return nil
	}
	return c
}

// mailchimpCheck answers the GET Mailchimp sends when the webhook is saved.
func (s *Service) mailchimpCheck(w http.ResponseWriter, r *http.Request) {
	c := s.inboundConnector(w, r, Mailchimp)
	if c == nil {
		return
	}
	if !mailchimp.SecretMatches(r.URL.Query().Get(mailchimp.WebhookSecretParam), c.creds.WebhookSecret) {
		problem(w, r, http.StatusNotFound, "no such connector")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// mailchimpHook records the person's own unsubscribe (and a spam complaint) as a withdrawal
// of the purposes mapped to that audience. Subscribe, profile, upemail and campaign events
// are answered 200 and change nothing in Lupa.
func (s *Service) mailchimpHook(w http.ResponseWriter, r *http.Request) {
	c := s.inboundConnector(w, r, Mailchimp)
	if c == nil {
		return
	}
	// The secret is part of the URL registered at Mailchimp: a wrong one is a wrong URL.
	if !mailchimp.SecretMatches(r.URL.Query().Get(mailchimp.WebhookSecretParam), c.creds.WebhookSecret) {
		problem(w, r, http.StatusNotFound, "no such connector")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMailchimpBody+1))
	if err != nil {
		problem(w, r, http.StatusBadRequest, "unreadable body")
		return
	}
	if len(body) > maxMailchimpBody {
		problem(w, r, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	ev, err := mailchimp.ParseWebhook(r, c.creds.WebhookSecret, "")
	if err != nil {
		problem(w, r, http.StatusBadRequest, "malformed webhook")
		return
	}
	var purposes []string
	for _, m := range c.conn.Mappings {
		if m.ListID == ev.ListID {
			purposes = append(purposes, m.Purpose)
		}
	}
	if len(purposes) == 0 && ev.Type != mailchimp.EventCampaign {
		problem(w, r, http.StatusBadRequest, "not an audience of this connector")
		return
	}
	if !ev.Withdrawal() {
		// subscribe, profile: Lupa cannot prove a consent given elsewhere. upemail: Lupa's
		// verified addresses are not changed by a vendor. cleaned (hard): undeliverable,
		// not a decision about consent. campaign: nothing about a person.
		s.opt.Log.Debug("connector inbound: mailchimp event not recorded", "tenant", c.conn.TenantID, "connector", c.conn.ID, "type", ev.Type)
		w.WriteHeader(http.StatusOK)
		return
	}
	reason := ReasonVendorUnsubscribe
	switch {
	case ev.Type == mailchimp.EventCleaned:
		reason = ReasonVendorSpamComplaint
	case ev.Action == "delete":
		reason = ReasonVendorMemberDeleted
	}
	ctx, cancel := context.WithTimeout(r.Context(), inboundTimeout)
	defer cancel()
	n, err := s.recordVendorDecision(ctx, c, ev.Email, purposes, reason, ev.FiredAt)
	if err != nil {
		s.opt.Log.Error("connector inbound: record a mailchimp unsubscribe", "tenant", c.conn.TenantID, "connector", c.conn.ID, "error", errText(err))
		problem(w, r, http.StatusServiceUnavailable, "temporarily unavailable")
		return
	}
	if n > 0 {
		s.opt.Log.Info("connector inbound: mailchimp unsubscribe recorded", "tenant", c.conn.TenantID, "connector", c.conn.ID,
			"type", ev.Type, "recorded", n)
	}
	w.WriteHeader(http.StatusOK)
}

// hubspotHook records opt-outs made in HubSpot: a subscription's opt-out withdraws (or
// objects to) the purposes mapped to that subscription, an opt-out of all email every
// purpose of the connector. Opt-ins made in HubSpot are not consent and change nothing.
func (s *Service) hubspotHook(w http.ResponseWriter, r *http.Request, publicBaseURL string) {
	c := s.inboundConnector(w, r, HubSpot)
	if c == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHubSpotBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			problem(w, r, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		problem(w, r, http.StatusBadRequest, "unreadable body")
		return
	}
	if err := c.hubspot.VerifyRequest(r, body, c.creds.ClientSecret, publicBaseURL); err != nil {
		problem(w, r, http.StatusUnauthorized, "signature does not verify")
		return
	}
	events, err := hubspot.ParseEvents(body)
	if err != nil {
		problem(w, r, http.StatusBadRequest, "malformed webhook")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), inboundTimeout)
	defer cancel()
	emails := map[int64]string{} // contact id → address, once per request
	recorded := 0
	for _, e := range events {
		ch, ok := e.SubscriptionChange()
		if !ok || !ch.OptedOut || ch.ContactID <= 0 {
			continue
		}
		purposes, reason := hubspotPurposes(c.conn, ch.SubscriptionID)
		if len(purposes) == 0 {
			continue
		}
		email, seen := emails[ch.ContactID]
		if !seen {
			email, err = c.hubspot.ContactEmail(ctx, ch.ContactID)
			if errors.Is(err, vendorhttp.ErrNotFound) {
				email, err = "", nil // the contact is gone or has no address: no one to record for
			}
			if err != nil {
				s.opt.Log.Warn("connector inbound: read a hubspot contact", "tenant", c.conn.TenantID, "connector", c.conn.ID, "error", errText(err))
				problem(w, r, http.StatusServiceUnavailable, "temporarily unavailable") // HubSpot retries
				return
			}
			emails[ch.ContactID] = email
		}
		if email == "" {
			continue
		}
		n, err := s.recordVendorDecision(ctx, c, email, purposes, reason, ch.At)
		if err != nil {
			s.opt.Log.Error("connector inbound: record a hubspot opt-out", "tenant", c.conn.TenantID, "connector", c.conn.ID, "error", errText(err))
			problem(w, r, http.StatusServiceUnavailable, "temporarily unavailable")
			return
		}
		recorded += n
	}
	if recorded > 0 {
		s.opt.Log.Info("connector inbound: hubspot opt-outs recorded", "tenant", c.conn.TenantID, "connector", c.conn.ID,
			"events", len(events), "recorded", recorded)
	}
	w.WriteHeader(http.StatusNoContent)
}

// hubspotPurposes are the purposes an opt-out of the subscription (0: all email) touches.
func hubspotPurposes(c *Connector, subscriptionID int64) ([]string, string) {
	if subscriptionID == 0 {
		return c.Purposes(), ReasonVendorOptOutAll
	}
	var out []string
	for _, m := range c.Mappings {
		if m.SubscriptionID == subscriptionID {
			out = append(out, m.Purpose)
		}
	}
	return out, ReasonVendorOptOut
}

// recordVendorDecision records what the person did at the vendor: a withdrawal (objection
// for a legitimate-interest purpose) of the purposes they grant now and decided in Lupa
// before at. A person Lupa does not know, or an address that cannot be anyone's, records
// nothing and is not an error. at zero (the vendor gave no time) is now.
func (s *Service) recordVendorDecision(ctx context.Context, c *clients, email string, purposes []string, reason string, at time.Time) (int, error) {
	email = identity.NormalizeEmail(email)
	if email == "" || len(purposes) == 0 {
		return 0, nil
	}
	if at.IsZero() {
		at = s.now()
	}
	n, err := s.consents.RecordFromSystem(ctx, consent.SystemDecision{TenantID: c.conn.TenantID,
		Identifier: identity.Identifier{Kind: identity.IDEmail, Value: email}, Purposes: slices.Clone(purposes),
		Channel: c.conn.Vendor, Reason: reason, OccurredAt: at})
	if identity.IsCode(err, identity.ENotFound) || identity.IsCode(err, identity.EInvalid) {
		return 0, nil
	}
	return n, err
}

// problem answers with an RFC 9457 problem, as every Lupa API error is; the detail is a
// fixed text (never anything the vendor sent).
func problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	codes := map[int]string{http.StatusBadRequest: "invalid", http.StatusUnauthorized: "unauthorized",
		http.StatusNotFound: "not_found", http.StatusRequestEntityTooLarge: "too_large", http.StatusServiceUnavailable: "unavailable"}
	code := codes[status]
	if code == "" {
		code = "internal"
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `HubSpot-Signature-v3 realm="lupa"`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:lupa:problem:" + code, "title": http.StatusText(status),
		"status": status, "detail": detail, "instance": r.URL.Path})
}
