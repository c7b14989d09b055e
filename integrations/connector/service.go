package connector

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Consents is what the connectors need of consent's service: the catalog (legal bases,
// recipients) and recording what a person did at a vendor.
type Consents interface {
	Catalog(ctx context.Context, tenantID string) (*consent.Catalog, error)
	Recipient(ctx context.Context, tenantID, id string) (*consent.Recipient, error)
	RecordFromSystem(ctx context.Context, in consent.SystemDecision) (int, error)
	SubjectState(ctx context.Context, tenantID string, id identity.Identifier, p *identity.Property) (*consent.StateView, error)
}

// Identities finds people's addresses (identity's service).
type Identities interface {
	IdentifierValues(ctx context.Context, tenantID, subjectID, kind string) ([]identity.Identifier, error)
	FindSubject(ctx context.Context, tenantID string, id identity.Identifier) (*identity.Subject, error)
}

// MaxVendorBody is how much of a vendor's answer the HTTP client lets through (16 MiB): a
// page of a vendor's members is larger than an identity provider's documents. The vendor
// clients (integrations/internal/vendorhttp) read at most 8 MiB of it themselves.
const MaxVendorBody = 16 << 20

// Options tune the service.
type Options struct {
	// HTTPClient makes the vendor calls: an SSRF-safe client (identity/safehttp); by
	// default one that refuses internal addresses and reads up to MaxVendorBody of an answer.
	HTTPClient *http.Client
	// AllowBaseURL lets a connector name its own API base URL (a local fake in tests, a
	// proxy on premise); it goes with LUPA_ALLOW_PRIVATE_WEBHOOKS.
	AllowBaseURL bool
	// NoRetries turns the vendor clients' in-call retries off: every failure goes back to
	// the engine's schedule at once (tests).
	NoRetries bool
	// Instances is how many Lupa instances call each vendor account: each keeps to its
	// share of the vendor's documented rate and concurrency limits (1).
	Instances int
	// ReconcileEvery is how often each connector reads unsubscribes back (15 min).
	ReconcileEvery time.Duration
	// ReconcileHubSpotMembers is how many of a HubSpot connector's members one reconcile run
	// reads (10,000: 100 calls, ten seconds of HubSpot's lowest rate limit once an interval,
	// about 1 % of it at the default). A larger audience is read over several runs: a million
	// members in 100, about a day at the default interval.
	ReconcileHubSpotMembers int
	Log                     *slog.Logger
}

// Service manages connectors and acts on their deliveries.
type Service struct {
	db       *sqldb.DB
	keys     *keyring.Keyring
	consents Consents
	ids      Identities
	now      func() time.Time
	opt      Options

	mu          sync.Mutex
	clients     map[string]*clients // tenant/id → the vendor clients, rebuilt when the row changes
	reconciling map[string]bool     // tenant/id → a reconcile is running in this process
}

// New returns the service.
func New(db *sqldb.DB, keys *keyring.Keyring, consents Consents, ids Identities, now func() time.Time, opt Options) *Service {
	if opt.HTTPClient == nil {
		opt.HTTPClient = safehttp.New(safehttp.Options{Timeout: 15 * time.Second, MaxBodyBytes: MaxVendorBody})
	}
	if opt.Instances <= 0 {
		opt.Instances = 1
	}
	if opt.ReconcileHubSpotMembers <= 0 {
		opt.ReconcileHubSpotMembers = 10_000
	}
	if opt.ReconcileEvery <= 0 {
		opt.ReconcileEvery = 15 * time.Minute
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, keys: keys, consents: consents, ids: ids, now: now, opt: opt, clients: map[string]*clients{},
		reconciling: map[string]bool{}}
}

// Created is a new connector with what is shown once: the inbound webhook URL's path, which
// for Mailchimp holds a secret.
type Created struct {
	*Connector
	InboundPath string
}

// InboundPath is where the vendor's webhooks reach this connector (relative to Lupa's
// public URL); "" for vendors that send none (Klaviyo: reconcile only).
func InboundPath(c *Connector, secret string) string {
	switch c.Vendor {
	case Mailchimp:
		return "/hooks/mailchimp/" + c.TenantID + "/" + c.ID + "?secret=" + url.QueryEscape(secret)
	case HubSpot:
		return "/hooks/hubspot/" + c.TenantID + "/" + c.ID
	}
	return ""
}

func newWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) checkRecipient(ctx context.Context, c *Connector) error {
	if c.RecipientKind != "third_party" {
		return nil
	}
	if _, err := s.consents.Recipient(ctx, c.TenantID, c.RecipientID); err != nil {
		if identity.IsCode(err, identity.ENotFound) {
			return identity.Unprocessable("recipient_id", "no such recipient in the catalog")
		}
		return err
	}
	return nil
}

func (s *Service) seal(c *Connector, cr Credentials) ([]byte, string, error) {
	b, err := json.Marshal(cr)
	if err != nil {
		return nil, "", err
	}
	kid, ct, err := s.keys.Encrypt(b, credentialsAAD(c.TenantID, c.ID))
	return ct, kid, err
}

func (s *Service) unseal(ctx context.Context, r *connectorRow) (Credentials, error) {
	var cr Credentials
	b, err := s.keys.Decrypt(ctx, r.CredentialsKID, r.Credentials, credentialsAAD(r.TenantID, r.ID))
	if err != nil {
		return cr, errors.Join(errors.New("connector: decrypt the credentials"), err)
	}
	return cr, json.Unmarshal(b, &cr)
}

// AllowBaseURL says whether a connector may name its own API base URL (Options).
func (s *Service) AllowBaseURL() bool { return s.opt.AllowBaseURL }

// connector is the enabled connector in makes, as Create stores it.
func (in Input) connector(tenantID, id string, now time.Time) *Connector {
	return &Connector{TenantID: tenantID, ID: id, Vendor: strings.TrimSpace(in.Vendor), Name: strings.TrimSpace(in.Name),
		Description: strings.TrimSpace(in.Description), RecipientKind: in.RecipientKind, RecipientID: strings.TrimSpace(in.RecipientID),
		Mappings: normalizeMappings(in.Mappings), BaseURL: strings.TrimSpace(in.BaseURL), Status: StatusEnabled, CreatedAt: now, UpdatedAt: now}
}

// Validate checks the connector in makes and its credentials, as Create does before it
// asks the database; allowBaseURL is the service's (AllowBaseURL).
func (in Input) Validate(allowBaseURL bool) error {
	return in.validate(in.connector("", "", time.Time{}), allowBaseURL)
}

func (in Input) validate(c *Connector, allowBaseURL bool) error {
	return joinValidation(c.Validate(allowBaseURL), validateCredentials(c.Vendor, in.Credentials))
}

// Create adds a connector. Its credentials are sealed; the Mailchimp webhook secret is made here.
func (s *Service) Create(ctx context.Context, tenantID string, in Input, actor identity.Actor) (*Created, error) {
	now := s.now().UTC()
	c := in.connector(tenantID, IDPrefix+identity.NewID(), now)
	if err := in.validate(c, s.opt.AllowBaseURL); err != nil {
		return nil, err
	}
	if err := s.checkRecipient(ctx, c); err != nil {
		return nil, err
	}
	cr := in.Credentials
	cr.WebhookSecret = ""
	if c.Vendor == Mailchimp {
		cr.WebhookSecret = newWebhookSecret()
	}
	ct, kid, err := s.seal(c, cr)
	if err != nil {
		return nil, err
	}
	r := &connectorRow{Credentials: ct, CredentialsKID: kid}
	r.fill(c)
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(r).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, tenantID, actor, "connector.create", "connector", c.ID, nil, c, now)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Connector: c, InboundPath: InboundPath(c, cr.WebhookSecret)}, nil
}

// joinValidation merges the field errors of several checks into one problem.
func joinValidation(errs ...error) error {
	var fields []identity.FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var e *identity.Error
		if !errors.As(err, &e) || len(e.Fields) == 0 {
			return err
		}
		fields = append(fields, e.Fields...)
	}
	if len(fields) == 0 {
		return nil
	}
	return identity.FieldErrors("validation failed", fields...)
}

func normalizeMappings(in []Mapping) []Mapping {
	out := make([]Mapping, 0, len(in))
	for _, m := range in {
		m.Purpose, m.ListID = strings.TrimSpace(m.Purpose), strings.TrimSpace(m.ListID)
		out = append(out, m)
	}
	return out
}

// List returns the tenant's connectors, oldest first.
func (s *Service) List(ctx context.Context, tenantID string) ([]*Connector, error) {
	var rows []connectorRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Connector, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

func (s *Service) row(ctx context.Context, db *gorm.DB, tenantID, id string) (*connectorRow, error) {
	var rows []connectorRow
	if err := db.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("connector")
	}
	return &rows[0], nil
}

// Get returns one connector.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Connector, error) {
	r, err := s.row(ctx, s.db.Read, tenantID, id)
	if err != nil {
		return nil, err
	}
	return r.domain(), nil
}

// Apply sets the fields the patch has on c; a processor sent without a recipient id drops
// the one a third party had. New credentials are Update's to seal.
func (p Patch) Apply(c *Connector) {
	identity.PatchString(&c.Name, p.Name)
	identity.PatchString(&c.Description, p.Description)
	identity.PatchString(&c.BaseURL, p.BaseURL)
	if p.RecipientKind != nil {
		c.RecipientKind = *p.RecipientKind
		if c.RecipientKind == "processor" && p.RecipientID == nil {
			c.RecipientID = ""
		}
	}
	identity.PatchString(&c.RecipientID, p.RecipientID)
	if p.Mappings != nil {
		c.Mappings = normalizeMappings(*p.Mappings)
	}
}

// Validate checks c, a connector the patch was applied to, and the credentials the patch
// sends, by c's vendor; allowBaseURL is the service's (AllowBaseURL).
func (p Patch) Validate(c *Connector, allowBaseURL bool) error {
	var credErr error
	if p.Credentials != nil {
		credErr = validateCredentials(c.Vendor, *p.Credentials)
	}
	return joinValidation(c.Validate(allowBaseURL), credErr)
}

// Update applies a patch.
func (s *Service) Update(ctx context.Context, tenantID, id string, p Patch, actor identity.Actor) (*Connector, error) {
	var out *Connector
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		before, c := r.domain(), r.domain()
		p.Apply(c)
		c.UpdatedAt = s.now().UTC()
		if err := p.Validate(c, s.opt.AllowBaseURL); err != nil {
			return err
		}
		if p.RecipientID != nil || p.RecipientKind != nil {
			if err := s.checkRecipient(ctx, c); err != nil {
				return err
			}
		}
		if p.Credentials != nil {
			old, err := s.unseal(ctx, r)
			if err != nil {
				return err
			}
			cr := *p.Credentials
			cr.WebhookSecret = old.WebhookSecret
			if r.Credentials, r.CredentialsKID, err = s.seal(c, cr); err != nil {
				return err
			}
		}
		r.fill(c)
		if err := tx.Save(r).Error; err != nil {
			return err
		}
		out = c
		return identity.WriteAudit(tx, tenantID, actor, "connector.update", "connector", id, before,
			map[string]any{"connector": c, "credentials_replaced": p.Credentials != nil}, c.UpdatedAt)
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return out, err
}

// SetStatus enables or disables a connector. A disabled connector collects its
// deliveries; enabling it sends the backlog, in order.
func (s *Service) SetStatus(ctx context.Context, tenantID, id, status, reason string, actor identity.Actor) (*Connector, error) {
	var out *Connector
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		before := r.domain()
		r.Status, r.DisabledReason, r.UpdatedAt = status, reason, s.now().UnixMilli()
		if status == StatusEnabled {
			r.DisabledReason = ""
		}
		if err := tx.Save(r).Error; err != nil {
			return err
		}
		out = r.domain()
		return identity.WriteAudit(tx, tenantID, actor, "connector."+strings.TrimSuffix(status, "d"), "connector", id, before, out, s.now())
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return out, err
}

// Disable is what the engine calls for a target that is gone.
func (s *Service) Disable(ctx context.Context, tenantID, id, reason string) error {
	_, err := s.SetStatus(ctx, tenantID, id, StatusDisabled, reason, identity.ActorSystem)
	return err
}

// RotateInboundSecret gives a Mailchimp connector a new inbound secret and returns the new
// inbound URL (shown this once). The old URL stops working at once: register the new one at
// Mailchimp (its webhooks carry no signature, so the secret in the URL is all there is).
func (s *Service) RotateInboundSecret(ctx context.Context, tenantID, id string, actor identity.Actor) (*Created, error) {
	var out *Created
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		c := r.domain()
		if c.Vendor != Mailchimp {
			return identity.Errorf(identity.EConflict, "only Mailchimp connectors have an inbound secret; %s signs its webhooks", c.Vendor)
		}
		cr, err := s.unseal(ctx, r)
		if err != nil {
			return err
		}
		cr.WebhookSecret = newWebhookSecret()
		if r.Credentials, r.CredentialsKID, err = s.seal(c, cr); err != nil {
			return err
		}
		r.UpdatedAt = s.now().UnixMilli()
		if err := tx.Save(r).Error; err != nil {
			return err
		}
		c = r.domain()
		out = &Created{Connector: c, InboundPath: InboundPath(c, cr.WebhookSecret)}
		return identity.WriteAudit(tx, tenantID, actor, "connector.rotate_inbound_secret", "connector", id, nil, nil, s.now())
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return out, err
}

// Delete removes a connector, its deliveries and what it knew of addresses.
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
			"DELETE FROM connector_members WHERE tenant_id = ? AND connector_id = ?",
			"DELETE FROM connectors WHERE tenant_id = ? AND id = ?",
		} {
			if err := tx.Exec(q, tenantID, id).Error; err != nil {
				return err
			}
		}
		return identity.WriteAudit(tx, tenantID, actor, "connector.delete", "connector", id, r.domain(), nil, s.now())
	})
	if err == nil {
		s.forget(tenantID, id)
	}
	return err
}

func itoa(n int) string { return strconv.Itoa(n) }

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
