// Package webhook holds a tenant's webhook endpoints (Standard Webhooks 1.0): their URLs,
// subscriptions and signing secrets, and the HTTP sending of one delivery. The delivery
// engine (package integrations) decides what to send when; this package signs and sends.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations"
)

// Recipient kinds.
const (
	// Processor is the tenant's own processor (its email platform, its CRM): it hears of
	// every subject in its scope, refusals included, so it can suppress.
	Processor = integrations.RecipientProcessor
	// ThirdParty is a partner: it hears of a subject only once the subject was given to it
	// under a grant of a purpose that names it as recipient, and of every change after.
	ThirdParty = integrations.RecipientThirdParty
)

// Endpoint statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// secretBytes is the length of a generated secret (Standard Webhooks allows 24–64).
const secretBytes = 32

// MaxOverlap bounds how long a rotated-out secret keeps signing.
const MaxOverlap = 7 * 24 * time.Hour

// DefaultOverlap is the overlap of a rotation that names none.
const DefaultOverlap = 24 * time.Hour

// Endpoint is one receiver of a tenant's events.
type Endpoint struct {
	TenantID    string
	ID          string
	URL         string
	Description string
	// EventTypes are the event types it subscribes to (integrations.EventTypes).
	EventTypes []string
	// Purposes are the purpose keys in its scope; empty means every purpose.
	Purposes      []string
	RecipientKind string
	// RecipientID names the catalog recipient a third party is (required for third parties).
	RecipientID    string
	Status         string
	DisabledReason string
	// PreviousSecretExpiresAt is when the secret before the last rotation stops signing.
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

var purposeKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)

// Validate checks the endpoint's invariants. A rule that reads two fields never fails for
// the other one being empty: so the fields a patch sends can be checked on an empty
// endpoint, without the stored one (integrationsweb's DomainCheck).
func (e *Endpoint) Validate() error {
	var v identity.Validator
	u, err := url.Parse(e.URL)
	v.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		u.Fragment == "" && len(e.URL) <= 2048, "url", "must be an absolute http(s) URL without credentials or fragment, at most 2048 characters")
	v.Check(len([]rune(e.Description)) <= 500, "description", "at most 500 characters")
	v.Check(len(e.EventTypes) >= 1 && len(e.EventTypes) <= len(integrations.EventTypes), "event_types", "at least one event type")
	for _, t := range e.EventTypes {
		if !slices.Contains(integrations.EventTypes, t) {
			v.Check(false, "event_types", "must be among "+strings.Join(integrations.EventTypes, ", "))
			break
		}
	}
	v.Check(len(e.Purposes) <= 100, "purposes", "at most 100 purposes")
	for _, p := range e.Purposes {
		if !purposeKeyRe.MatchString(p) {
			v.Check(false, "purposes", "must be purpose keys")
			break
		}
	}
	v.Check(e.RecipientKind == Processor || e.RecipientKind == ThirdParty, "recipient_kind", "must be processor or third_party")
	v.Check(e.RecipientKind != ThirdParty || e.RecipientID != "", "recipient_id", "a third party names the catalog recipient it is")
	v.Check(e.RecipientKind != Processor || e.RecipientID == "", "recipient_id", "only a third party names a recipient")
	v.Check(e.Status == StatusEnabled || e.Status == StatusDisabled, "status", "must be enabled or disabled")
	return v.Err()
}

// Input creates an endpoint.
type Input struct {
	URL           string
	Description   string
	EventTypes    []string
	Purposes      []string
	RecipientKind string
	RecipientID   string
}

// endpoint is the enabled endpoint in makes, as Create stores it.
func (in Input) endpoint(tenantID, id string, now time.Time) *Endpoint {
	return &Endpoint{TenantID: tenantID, ID: id, URL: strings.TrimSpace(in.URL), Description: strings.TrimSpace(in.Description),
		EventTypes: normalize(in.EventTypes), Purposes: normalize(in.Purposes), RecipientKind: in.RecipientKind,
		RecipientID: strings.TrimSpace(in.RecipientID), Status: StatusEnabled, CreatedAt: now, UpdatedAt: now}
}

// Validate checks the endpoint in makes, as Create does before it asks the database.
func (in Input) Validate() error { return in.endpoint("", "", time.Time{}).Validate() }

// Patch changes an endpoint; nil fields stay.
type Patch struct {
	URL           *string
	Description   *string
	EventTypes    *[]string
	Purposes      *[]string
	RecipientKind *string
	RecipientID   *string
}

// Recipients finds the tenant's catalog recipients (consent's service).
type Recipients interface {
	Recipient(ctx context.Context, tenantID, id string) (*consent.Recipient, error)
}

// Options tune the service.
type Options struct {
	// Client sends the webhooks: an SSRF-safe *http.Client (identity/safehttp); by default
	// one that refuses internal addresses.
	Client Doer
	// Timeout bounds one HTTP request (15 s).
	Timeout time.Duration
	// InCallRetries is how many times one attempt retries a connection failure or a
	// 502/503/504 at once, re-signing each time (2).
	InCallRetries int
	// InCallWait bounds the wait between those retries (1 s).
	InCallWait time.Duration
}

// Service manages endpoints and sends deliveries.
type Service struct {
	db         *sqldb.DB
	keys       *keyring.Keyring
	recipients Recipients
	now        func() time.Time
	opt        Options
	client     *http.Client // sendClient of opt, built once in New

	mu    sync.Mutex
	cache map[string]cached // tenant/id → endpoint with its secrets, for sending
}

type cached struct {
	row     *endpointRow
	secrets [][]byte
	at      time.Time
}

// New returns the service.
func New(db *sqldb.DB, keys *keyring.Keyring, recipients Recipients, now func() time.Time, opt Options) *Service {
	if opt.Timeout <= 0 {
		opt.Timeout = 15 * time.Second
	}
	if opt.InCallRetries < 0 {
		opt.InCallRetries = 0
	} else if opt.InCallRetries == 0 {
		opt.InCallRetries = 2
	}
	if opt.InCallWait <= 0 {
		opt.InCallWait = time.Second
	}
	return &Service{db: db, keys: keys, recipients: recipients, now: now, opt: opt,
		client: sendClient(opt.Client, opt.Timeout), cache: map[string]cached{}}
}

// NewSecret returns a fresh signing secret: whsec_ and the base64 of 32 random bytes.
func NewSecret() (string, []byte) {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), b
}

func secretAAD(tenantID, id string) []byte {
	return []byte("webhook_secret|" + tenantID + "|" + id)
}

func normalize(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// checkRecipient says whether a third party's recipient exists in the catalog.
func (s *Service) checkRecipient(ctx context.Context, e *Endpoint) error {
	if e.RecipientKind != ThirdParty || s.recipients == nil {
		return nil
	}
	if _, err := s.recipients.Recipient(ctx, e.TenantID, e.RecipientID); err != nil {
		if identity.IsCode(err, identity.ENotFound) {
			return identity.Unprocessable("recipient_id", "no such recipient in the catalog")
		}
		return err
	}
	return nil
}

// Create adds an endpoint and returns it with its secret, which is never shown again.
func (s *Service) Create(ctx context.Context, tenantID string, in Input, actor identity.Actor) (*Endpoint, string, error) {
	now := s.now().UTC()
	e := in.endpoint(tenantID, identity.NewID(), now)
	if err := e.Validate(); err != nil {
		return nil, "", err
	}
	if err := s.checkRecipient(ctx, e); err != nil {
		return nil, "", err
	}
	secret, raw := NewSecret()
	kid, ct, err := s.keys.Encrypt(raw, secretAAD(tenantID, e.ID))
	if err != nil {
		return nil, "", err
	}
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(endpointToRow(e, ct, kid)).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, tenantID, actor, "webhook.create", "webhook", e.ID, nil, e, now)
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// List returns the tenant's endpoints, oldest first.
func (s *Service) List(ctx context.Context, tenantID string) ([]*Endpoint, error) {
	var rows []endpointRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Endpoint, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

func (s *Service) row(ctx context.Context, db *gorm.DB, tenantID, id string) (*endpointRow, error) {
	var rows []endpointRow
	if err := db.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("webhook endpoint")
	}
	return &rows[0], nil
}

// Get returns one endpoint.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Endpoint, error) {
	r, err := s.row(ctx, s.db.Read, tenantID, id)
	if err != nil {
		return nil, err
	}
	return r.domain(), nil
}

// update changes an endpoint under a transaction and writes the audit entry.
func (s *Service) update(ctx context.Context, tenantID, id, action string, actor identity.Actor,
	change func(e *Endpoint, r *endpointRow) error) (*Endpoint, error) {
	var out *Endpoint
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		before := r.domain()
		e := r.domain()
		if err := change(e, r); err != nil {
			return err
		}
		e.UpdatedAt = s.now().UTC()
		if err := e.Validate(); err != nil {
			return err
		}
		nr := endpointToRow(e, r.Secret, r.SecretKID)
		nr.PreviousSecret, nr.PreviousSecretKID, nr.PreviousExpiresAt = r.PreviousSecret, r.PreviousSecretKID, r.PreviousExpiresAt
		if err := tx.Save(nr).Error; err != nil {
			return err
		}
		out = e
		return identity.WriteAudit(tx, tenantID, actor, action, "webhook", id, before, e, e.UpdatedAt)
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return out, err
}

// Apply sets the fields the patch has on e; a processor sent without a recipient id
// drops the one a third party had.
func (p Patch) Apply(e *Endpoint) {
	if p.URL != nil {
		e.URL = strings.TrimSpace(*p.URL)
	}
	if p.Description != nil {
		e.Description = strings.TrimSpace(*p.Description)
	}
	if p.EventTypes != nil {
		e.EventTypes = normalize(*p.EventTypes)
	}
	if p.Purposes != nil {
		e.Purposes = normalize(*p.Purposes)
	}
	if p.RecipientKind != nil {
		e.RecipientKind = *p.RecipientKind
		if e.RecipientKind == Processor && p.RecipientID == nil {
			e.RecipientID = ""
		}
	}
	if p.RecipientID != nil {
		e.RecipientID = strings.TrimSpace(*p.RecipientID)
	}
}

// Update applies a patch.
func (s *Service) Update(ctx context.Context, tenantID, id string, p Patch, actor identity.Actor) (*Endpoint, error) {
	return s.update(ctx, tenantID, id, "webhook.update", actor, func(e *Endpoint, _ *endpointRow) error {
		p.Apply(e)
		if err := e.Validate(); err != nil {
			return err
		}
		if p.RecipientID != nil || p.RecipientKind != nil {
			return s.checkRecipient(ctx, e)
		}
		return nil
	})
}

// SetStatus enables or disables an endpoint. Disabled endpoints still collect their
// deliveries; enabling one sends its backlog.
func (s *Service) SetStatus(ctx context.Context, tenantID, id, status, reason string, actor identity.Actor) (*Endpoint, error) {
	return s.update(ctx, tenantID, id, "webhook."+strings.TrimSuffix(status, "d"), actor, func(e *Endpoint, _ *endpointRow) error {
		e.Status = status
		if status == StatusEnabled {
			e.DisabledReason = ""
		} else {
			e.DisabledReason = reason
		}
		return nil
	})
}

// Disable is what the engine calls when a receiver answers 410 Gone.
func (s *Service) Disable(ctx context.Context, tenantID, id, reason string) error {
	_, err := s.SetStatus(ctx, tenantID, id, StatusDisabled, reason, identity.ActorSystem)
	return err
}

// RotateSecret makes a new secret and returns it (shown once). The old one keeps signing,
// beside the new one, for overlap.
func (s *Service) RotateSecret(ctx context.Context, tenantID, id string, overlap time.Duration, actor identity.Actor) (*Endpoint, string, error) {
	if overlap < 0 || overlap > MaxOverlap {
		return nil, "", identity.FieldErrors("validation failed", identity.FieldError{Field: "overlap_seconds",
			Message: "must be between 0 and 604800 (7 days)"})
	}
	secret, raw := NewSecret()
	kid, ct, err := s.keys.Encrypt(raw, secretAAD(tenantID, id))
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	var out *Endpoint
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		var prev []byte
		var prevKID *string
		var prevExp *int64
		if overlap > 0 {
			exp := now.Add(overlap).UnixMilli()
			prev, prevKID, prevExp = r.Secret, &r.SecretKID, &exp
		}
		if err := tx.Exec(`UPDATE webhook_endpoints SET secret = ?, secret_kid = ?, previous_secret = ?, previous_secret_kid = ?,
			previous_expires_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			ct, kid, prev, prevKID, prevExp, now.UnixMilli(), tenantID, id).Error; err != nil {
			return err
		}
		r.Secret, r.SecretKID, r.PreviousSecret, r.PreviousSecretKID, r.PreviousExpiresAt, r.UpdatedAt = ct, kid, prev, prevKID, prevExp, now.UnixMilli()
		out = r.domain()
		return identity.WriteAudit(tx, tenantID, actor, "webhook.rotate_secret", "webhook", id, nil,
			map[string]any{"previous_secret_expires_at": out.PreviousSecretExpiresAt}, now)
	})
	if err != nil {
		return nil, "", err
	}
	s.forget(tenantID, id)
	return out, secret, nil
}

// Delete removes an endpoint and its deliveries.
func (s *Service) Delete(ctx context.Context, tenantID, id string, actor identity.Actor) error {
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		for _, q := range []string{
			// Deliveries before their attempts: when a send in flight records its
			// outcome first, this waits for its row locks and then deletes its attempt
			// too; when it records later, it finds no delivery to add an attempt to.
			"DELETE FROM deliveries WHERE tenant_id = ? AND endpoint_id = ?",
			"DELETE FROM delivery_attempts WHERE tenant_id = ? AND endpoint_id = ?",
			"DELETE FROM delivery_keys WHERE tenant_id = ? AND endpoint_id = ?",
			"DELETE FROM webhook_endpoints WHERE tenant_id = ? AND id = ?",
		} {
			if err := tx.Exec(q, tenantID, id).Error; err != nil {
				return err
			}
		}
		return identity.WriteAudit(tx, tenantID, actor, "webhook.delete", "webhook", id, r.domain(), nil, s.now())
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return err
}

// Targets lists the tenant's endpoints as the engine sees them (enabled or not: a disabled
// endpoint collects its deliveries for when it is enabled again).
func (s *Service) Targets(ctx context.Context, tenantID string) ([]integrations.Target, error) {
	var rows []endpointRow
	if err := s.db.Read.WithContext(ctx).Select("tenant_id, id, event_types, purposes, recipient_kind, recipient_id").
		Where("tenant_id = ?", tenantID).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]integrations.Target, len(rows))
	for i := range rows {
		e := rows[i].domain()
		out[i] = integrations.Target{ID: e.ID, EventTypes: e.EventTypes, Purposes: e.Purposes,
			RecipientKind: e.RecipientKind, RecipientID: e.RecipientID}
	}
	return out, nil
}

func cacheKey(tenantID, id string) string { return tenantID + "/" + id }

func (s *Service) forget(tenantID, id string) {
	s.mu.Lock()
	delete(s.cache, cacheKey(tenantID, id))
	s.mu.Unlock()
}

// signing returns the endpoint's URL and the secrets that sign now (current first).
func (s *Service) signing(ctx context.Context, tenantID, id string) (*endpointRow, [][]byte, error) {
	now := s.now()
	k := cacheKey(tenantID, id)
	s.mu.Lock()
	c, ok := s.cache[k]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < 5*time.Second && now.Sub(c.at) >= 0 && !expired(c.row, now) {
		return c.row, c.secrets, nil
	}
	r, err := s.row(ctx, s.db.Read, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	cur, err := s.keys.Decrypt(ctx, r.SecretKID, r.Secret, secretAAD(tenantID, id))
	if err != nil {
		return nil, nil, errors.Join(errors.New("webhook: decrypt the secret"), err)
	}
	secrets := [][]byte{cur}
	if r.PreviousSecret != nil && r.PreviousSecretKID != nil && r.PreviousExpiresAt != nil && *r.PreviousExpiresAt > now.UnixMilli() {
		prev, err := s.keys.Decrypt(ctx, *r.PreviousSecretKID, r.PreviousSecret, secretAAD(tenantID, id))
		if err != nil {
			return nil, nil, errors.Join(errors.New("webhook: decrypt the previous secret"), err)
		}
		secrets = append(secrets, prev)
	}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		clear(s.cache)
	}
	s.cache[k] = cached{row: r, secrets: secrets, at: now}
	s.mu.Unlock()
	return r, secrets, nil
}

// expired says whether the cached previous secret has stopped signing.
func expired(r *endpointRow, now time.Time) bool {
	return r.PreviousExpiresAt != nil && *r.PreviousExpiresAt <= now.UnixMilli()
}
