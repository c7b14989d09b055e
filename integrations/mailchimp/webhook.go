package mailchimp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Mailchimp's audience webhooks are form-encoded POSTs (type=unsubscribe&data[email]=…)
// and carry no signature. Lupa authenticates them with a secret in the URL it registers:
// https://lupa.example/…/mailchimp/webhook?secret=<NewWebhookSecret()>, compared in
// constant time, over https only (the secret is as strong as TLS keeps it), and the
// payload's list id must be the connector's audience. When Mailchimp saves the webhook it
// first sends a GET to check the URL answers: ParseWebhook returns ErrWebhookPing for it,
// and the handler answers 200.

// Webhook errors.
var (
	// ErrWebhookPing is Mailchimp's GET that checks the URL: answer 200, record nothing.
	ErrWebhookPing = errors.New("mailchimp: webhook URL check")
	// ErrWebhookAuth: missing or wrong secret. Answer 401 and record nothing.
	ErrWebhookAuth = errors.New("mailchimp: webhook secret does not match")
	// ErrWebhookInvalid: not a Mailchimp audience webhook for this connector. Answer 400.
	ErrWebhookInvalid = errors.New("mailchimp: malformed webhook")
)

// Webhook event types.
const (
	EventSubscribe   = "subscribe"
	EventUnsubscribe = "unsubscribe"
	EventProfile     = "profile"
	EventUpemail     = "upemail"
	EventCleaned     = "cleaned"
	EventCampaign    = "campaign"
)

// WebhookSecretParam is the query parameter that carries the secret.
const WebhookSecretParam = "secret"

// maxWebhookBody bounds an inbound webhook body.
const maxWebhookBody = 64 << 10

// NewWebhookSecret returns 32 random bytes, base64url: put it in the registered URL.
func NewWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// WebhookEvent is one parsed audience webhook. Email fields are personal data: keep them
// out of logs.
type WebhookEvent struct {
	Type    string    // EventUnsubscribe, EventCleaned, …
	FiredAt time.Time // Mailchimp's fired_at (UTC); zero if absent
	ListID  string
	ID      string // Mailchimp's member id
	Email   string // the member's address (unsubscribe, subscribe, profile, cleaned)
	// Action is "unsub" or "delete" on unsubscribe events.
	Action string
	// Reason: "manual" or "abuse" on unsubscribe; "hard" or "abuse" on cleaned.
	Reason string
	// OldEmail and NewEmail are set on upemail events.
	OldEmail, NewEmail string
	// CampaignID is the campaign whose unsubscribe link was used, if any.
	CampaignID string
}

// Withdrawal reports whether the event is the person leaving the audience: an unsubscribe
// (their own click, or an admin's in Mailchimp) or a spam complaint. A hard bounce is
// not a decision of the person and is not a withdrawal.
func (e *WebhookEvent) Withdrawal() bool {
	switch e.Type {
	case EventUnsubscribe:
		return true
	case EventCleaned:
		return e.Reason == "abuse"
	}
	return false
}

// ParseWebhook authenticates and parses one inbound webhook request. secret is the
// connector's webhook secret; listID, when not empty, must match the payload's list.
func ParseWebhook(r *http.Request, secret, listID string) (*WebhookEvent, error) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil, ErrWebhookPing
	}
	if r.Method != http.MethodPost {
		return nil, ErrWebhookInvalid
	}
	if !SecretMatches(r.URL.Query().Get(WebhookSecretParam), secret) {
		return nil, ErrWebhookAuth
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, ErrWebhookInvalid
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxWebhookBody)
	if err := r.ParseForm(); err != nil {
		return nil, ErrWebhookInvalid
	}
	f := r.PostForm
	ev := &WebhookEvent{
		Type:       f.Get("type"),
		ListID:     f.Get("data[list_id]"),
		ID:         f.Get("data[id]"),
		Email:      strings.TrimSpace(f.Get("data[email]")),
		Action:     f.Get("data[action]"),
		Reason:     f.Get("data[reason]"),
		OldEmail:   strings.TrimSpace(f.Get("data[old_email]")),
		NewEmail:   strings.TrimSpace(f.Get("data[new_email]")),
		CampaignID: f.Get("data[campaign_id]"),
	}
	if v := f.Get("fired_at"); v != "" {
		t, err := time.ParseInLocation(time.DateTime, v, time.UTC)
		if err != nil {
			return nil, ErrWebhookInvalid
		}
		ev.FiredAt = t
	}
	switch ev.Type {
	case EventSubscribe, EventUnsubscribe, EventProfile, EventCleaned:
		if ev.Email == "" {
			return nil, ErrWebhookInvalid
		}
	case EventUpemail:
		if ev.OldEmail == "" || ev.NewEmail == "" {
			return nil, ErrWebhookInvalid
		}
	case EventCampaign:
	default:
		return nil, ErrWebhookInvalid
	}
	if listID != "" && ev.ListID != listID {
		return nil, ErrWebhookInvalid
	}
	return ev, nil
}

// SecretMatches compares a presented secret with the expected one in constant time; an
// empty expected secret never matches.
func SecretMatches(presented, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
