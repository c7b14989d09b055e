package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Service owns tenants, brands, properties, API keys, the audit log, subjects and their
// identifiers.
type Service struct {
	db   *sqldb.DB
	keys *keyring.Keyring
	now  func() time.Time

	// Credentials are looked up on every request; they are cached for a few seconds.
	// A change on this instance drops the entry at once; other instances see it within
	// cacheTTL.
	cacheTTL   time.Duration
	mu         sync.Mutex
	properties map[string]cached[*Property] // by public key
	apiKeys    map[string]cached[*APIKey]   // by key hash
	onChange   []func(tenantID string)
}

// OnTenantChange registers fn to hear that a tenant's details or brands changed, so caches
// built from them (consent's catalog) refresh at once on this instance.
func (s *Service) OnTenantChange(fn func(tenantID string)) {
	s.mu.Lock()
	s.onChange = append(s.onChange, fn)
	s.mu.Unlock()
}

func (s *Service) changed(tenantID string) {
	s.mu.Lock()
	fns := s.onChange
	s.mu.Unlock()
	for _, fn := range fns {
		fn(tenantID)
	}
}

type cached[T any] struct {
	value   T
	err     error
	expires time.Time
}

// New returns the identity service.
func New(db *sqldb.DB, keys *keyring.Keyring, now func() time.Time) *Service {
	return &Service{db: db, keys: keys, now: now, cacheTTL: 5 * time.Second,
		properties: map[string]cached[*Property]{}, apiKeys: map[string]cached[*APIKey]{}}
}

// NewID returns a new time-ordered unique id.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewPublicKey returns a new property public key: pk_ and 128 random bits.
func NewPublicKey() string { return "pk_" + randomToken(16) }

// Actor names who did something: "api_key:<id>", "cli", "system".
type Actor string

// ActorSystem is Lupa itself (sweeps, the demo set-up).
const ActorSystem Actor = "system"

// ActorAPIKey names an API key as the actor.
func ActorAPIKey(id string) Actor { return Actor("api_key:" + id) }

// ---- tenants ----

// TenantInput is what creates a tenant.
type TenantInput struct {
	Slug, Name, LegalName, ContactEmail, Jurisdiction, DefaultLanguage string
	BusinessID, Phone, Address, Website, PrivacyPolicyURL              string
}

// SlugFrom makes a tenant slug from a name ("Demo Retail Oy" → "demo-retail-oy").
func SlugFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case r == 'ä' || r == 'å':
			b.WriteRune('a')
			dash = false
		case r == 'ö':
			b.WriteRune('o')
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// CreateTenant creates a tenant and its first admin API key, whose secret it returns once.
func (s *Service) CreateTenant(ctx context.Context, in TenantInput, actor Actor) (*Tenant, string, error) {
	now := s.now()
	t := &Tenant{ID: NewID(), Slug: in.Slug, Name: in.Name, LegalName: in.LegalName, BusinessID: in.BusinessID,
		ContactEmail: in.ContactEmail, Phone: in.Phone, Address: in.Address, Website: in.Website,
		PrivacyPolicyURL: in.PrivacyPolicyURL, Jurisdiction: in.Jurisdiction, DefaultLanguage: in.DefaultLanguage,
		EvidenceYears: 3, MarketingAge: 15, CreatedAt: now, UpdatedAt: now}
	if t.Slug == "" {
		t.Slug = SlugFrom(t.Name)
	}
	if t.LegalName == "" {
		t.LegalName = t.Name
	}
	if t.Jurisdiction == "" {
		t.Jurisdiction = "FI"
	}
	if t.DefaultLanguage == "" {
		t.DefaultLanguage = "fi"
	}
	if err := t.Validate(); err != nil {
		return nil, "", err
	}
	var secret string
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(tenantToRow(t)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return Errorf(EConflict, "a tenant with slug %q exists", t.Slug)
			}
			return err
		}
		if err := WriteAudit(tx, t.ID, actor, "tenant.create", "tenant", t.ID, nil, t, now); err != nil {
			return err
		}
		var err error
		_, secret, err = s.createAPIKey(tx, t.ID, "first admin key", []string{ScopeAdmin}, actor, now)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// Tenant returns a tenant by id.
func (s *Service) Tenant(ctx context.Context, id string) (*Tenant, error) {
	var r tenantRow
	err := s.db.Read.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, NotFound("tenant")
	}
	if err != nil {
		return nil, err
	}
	return r.domain(), nil
}

// TenantBySlug returns a tenant by slug.
func (s *Service) TenantBySlug(ctx context.Context, slug string) (*Tenant, error) {
	var r tenantRow
	err := s.db.Read.WithContext(ctx).Where("slug = ?", slug).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, NotFound("tenant")
	}
	if err != nil {
		return nil, err
	}
	return r.domain(), nil
}

// TenantIDs lists every tenant's id (for sweeps and the ledger check).
func (s *Service) TenantIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.Read.WithContext(ctx).Raw("SELECT id FROM tenants ORDER BY id").Scan(&ids).Error
	return ids, err
}

// CountTenants returns how many tenants exist.
func (s *Service) CountTenants(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.Read.WithContext(ctx).Raw("SELECT count(*) FROM tenants").Scan(&n).Error
	return n, err
}

// TenantPatch changes some of a tenant's details; nil fields stay.
type TenantPatch struct {
	Name, LegalName, BusinessID, ContactEmail, Phone, Address, Website, PrivacyPolicyURL *string
	Jurisdiction, DefaultLanguage                                                        *string
	EvidenceYears                                                                        *int
	KeepClientContext                                                                    *bool
	AgeOfConsent, MarketingAge                                                           *int
}

// Apply sets the fields the patch has on t.
func (p TenantPatch) Apply(t *Tenant) {
	PatchString(&t.Name, p.Name)
	PatchString(&t.LegalName, p.LegalName)
	PatchString(&t.BusinessID, p.BusinessID)
	PatchString(&t.ContactEmail, p.ContactEmail)
	PatchString(&t.Phone, p.Phone)
	PatchString(&t.Address, p.Address)
	PatchString(&t.Website, p.Website)
	PatchString(&t.PrivacyPolicyURL, p.PrivacyPolicyURL)
	PatchString(&t.Jurisdiction, p.Jurisdiction)
	PatchString(&t.DefaultLanguage, p.DefaultLanguage)
	setInt(&t.EvidenceYears, p.EvidenceYears)
	if p.KeepClientContext != nil {
		t.KeepClientContext = *p.KeepClientContext
	}
	setInt(&t.AgeOfConsent, p.AgeOfConsent)
	setInt(&t.MarketingAge, p.MarketingAge)
}

// UpdateTenant applies a patch to the tenant.
func (s *Service) UpdateTenant(ctx context.Context, id string, p TenantPatch, actor Actor) (*Tenant, error) {
	var out *Tenant
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r tenantRow
		if err := tx.Where("id = ?", id).Take(&r).Error; err != nil {
			return notFoundOr(err, "tenant")
		}
		before := r.domain()
		t := *before
		p.Apply(&t)
		if err := t.Validate(); err != nil {
			return err
		}
		t.UpdatedAt = s.now()
		if err := tx.Save(tenantToRow(&t)).Error; err != nil {
			return err
		}
		out = &t
		return WriteAudit(tx, id, actor, "tenant.update", "tenant", id, before, &t, t.UpdatedAt)
	})
	if err == nil {
		s.changed(id)
	}
	return out, err
}

// PatchString sets *dst to a patch's member v, trimmed, when the patch has it (v is not nil).
func PatchString(dst *string, v *string) {
	if v != nil {
		*dst = strings.TrimSpace(*v)
	}
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func notFoundOr(err error, kind string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return NotFound(kind)
	}
	return err
}

// ---- brands ----

// CreateBrand adds a brand to the tenant.
func (s *Service) CreateBrand(ctx context.Context, b Brand, actor Actor) (*Brand, error) {
	now := s.now()
	b.ID, b.CreatedAt, b.UpdatedAt = NewID(), now, now
	if err := b.Validate(); err != nil {
		return nil, err
	}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(brandToRow(&b)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return &Error{Code: EConflict, Message: "a brand with this name exists",
					Fields: []FieldError{{Field: "name", Message: "is already used by another brand"}}}
			}
			return err
		}
		return WriteAudit(tx, b.TenantID, actor, "brand.create", "brand", b.ID, nil, &b, now)
	})
	if err != nil {
		return nil, err
	}
	s.changed(b.TenantID)
	return &b, nil
}

// Brands lists the tenant's brands.
func (s *Service) Brands(ctx context.Context, tenantID string) ([]*Brand, error) {
	var rows []brandRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Brand, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// Brand returns one of the tenant's brands.
func (s *Service) Brand(ctx context.Context, tenantID, id string) (*Brand, error) {
	var r brandRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "brand")
	}
	return r.domain(), nil
}

// BrandPatch changes some of a brand's details.
type BrandPatch struct {
	Name, LegalName, BusinessID, ContactEmail, Address, Website *string
}

// Apply sets the fields the patch has on b.
func (p BrandPatch) Apply(b *Brand) {
	PatchString(&b.Name, p.Name)
	PatchString(&b.LegalName, p.LegalName)
	PatchString(&b.BusinessID, p.BusinessID)
	PatchString(&b.ContactEmail, p.ContactEmail)
	PatchString(&b.Address, p.Address)
	PatchString(&b.Website, p.Website)
}

// UpdateBrand applies a patch to a brand.
func (s *Service) UpdateBrand(ctx context.Context, tenantID, id string, p BrandPatch, actor Actor) (*Brand, error) {
	var out *Brand
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r brandRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			return notFoundOr(err, "brand")
		}
		before := r.domain()
		b := *before
		p.Apply(&b)
		if err := b.Validate(); err != nil {
			return err
		}
		b.UpdatedAt = s.now()
		if err := tx.Save(brandToRow(&b)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return Errorf(EConflict, "a brand with this name exists")
			}
			return err
		}
		out = &b
		return WriteAudit(tx, tenantID, actor, "brand.update", "brand", id, before, &b, b.UpdatedAt)
	})
	if err == nil {
		s.changed(tenantID)
	}
	return out, err
}

// ---- properties ----

// CreateProperty adds a property with a new public key.
func (s *Service) CreateProperty(ctx context.Context, p Property, actor Actor) (*Property, error) {
	now := s.now()
	p.ID, p.PublicKey, p.CreatedAt, p.UpdatedAt = NewID(), NewPublicKey(), now, now
	if err := p.ValidateNew(); err != nil {
		return nil, err
	}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.checkBrand(tx, p.TenantID, p.BrandID); err != nil {
			return err
		}
		if err := tx.Create(propertyToRow(&p)).Error; err != nil {
			return err
		}
		return WriteAudit(tx, p.TenantID, actor, "property.create", "property", p.ID, nil, &p, now)
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ValidateNew makes a new property active, brings its origins to the form they are stored
// in and checks the property's invariants: what CreateProperty checks before it asks the
// database.
func (p *Property) ValidateNew() error {
	p.Status = PropertyActive
	p.AllowedOrigins = normalizeOrigins(p.AllowedOrigins)
	return p.Validate()
}

func (s *Service) checkBrand(tx *gorm.DB, tenantID, brandID string) error {
	var n int64
	if err := tx.Raw("SELECT count(*) FROM brands WHERE tenant_id = ? AND id = ?", tenantID, brandID).Scan(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return Unprocessable("brand_id", "no such brand")
	}
	return nil
}

func normalizeOrigins(in []string) []string {
	out := make([]string, 0, len(in))
	for _, o := range in {
		n := NormalizeOrigin(o)
		if n == "" {
			n = o // keep it, so Validate names the field
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Properties lists the tenant's properties.
func (s *Service) Properties(ctx context.Context, tenantID string) ([]*Property, error) {
	var rows []propertyRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Property, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// Property returns one of the tenant's properties.
func (s *Service) Property(ctx context.Context, tenantID, id string) (*Property, error) {
	var r propertyRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "property")
	}
	return r.domain(), nil
}

// PropertyByKey finds an active property by its public key (cached briefly).
func (s *Service) PropertyByKey(ctx context.Context, publicKey string) (*Property, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.properties[publicKey]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.value, c.err
	}
	var rows []propertyRow
	err := s.db.Read.WithContext(ctx).Where("public_key = ? AND status = ?", publicKey, PropertyActive).Limit(1).Find(&rows).Error
	if err != nil {
		return nil, err
	}
	var p *Property
	if len(rows) == 1 {
		p = rows[0].domain()
	} else {
		err = NotFound("property")
	}
	s.mu.Lock()
	if len(s.properties) > 100_000 {
		clear(s.properties) // unknown keys from probing must not grow memory without bound
	}
	s.properties[publicKey] = cached[*Property]{value: p, err: err, expires: now.Add(s.cacheTTL)}
	s.mu.Unlock()
	return p, err
}

// PropertyPatch changes some of a property's settings.
type PropertyPatch struct {
	Name, BrandID, DefaultLanguage, Status *string
	AllowedOrigins                         *[]string
}

// Apply sets the fields the patch has on p, its origins in the form they are stored in.
func (pp PropertyPatch) Apply(p *Property) {
	PatchString(&p.Name, pp.Name)
	PatchString(&p.BrandID, pp.BrandID)
	PatchString(&p.DefaultLanguage, pp.DefaultLanguage)
	if pp.Status != nil {
		p.Status = *pp.Status
	}
	if pp.AllowedOrigins != nil {
		p.AllowedOrigins = normalizeOrigins(*pp.AllowedOrigins)
	}
}

// UpdateProperty applies a patch to a property.
func (s *Service) UpdateProperty(ctx context.Context, tenantID, id string, p PropertyPatch, actor Actor) (*Property, error) {
	var out *Property
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r propertyRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			return notFoundOr(err, "property")
		}
		before := r.domain()
		np := *before
		p.Apply(&np)
		if err := np.Validate(); err != nil {
			return err
		}
		if np.BrandID != before.BrandID {
			if err := s.checkBrand(tx, tenantID, np.BrandID); err != nil {
				return err
			}
		}
		np.UpdatedAt = s.now()
		if err := tx.Save(propertyToRow(&np)).Error; err != nil {
			return err
		}
		out = &np
		return WriteAudit(tx, tenantID, actor, "property.update", "property", id, before, &np, np.UpdatedAt)
	})
	if err == nil {
		s.mu.Lock()
		delete(s.properties, out.PublicKey)
		s.mu.Unlock()
	}
	return out, err
}

// ---- audit ----

// AuditEntry records one admin action: who did what to which object, with the object
// before and after.
type AuditEntry struct {
	TenantID   string          `json:"tenant_id"`
	ID         string          `json:"id"`
	At         time.Time       `json:"at"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
}

// WriteAudit writes an audit entry inside the transaction of the change it records.
func WriteAudit(tx *gorm.DB, tenantID string, actor Actor, action, objectType, objectID string, before, after any, at time.Time) error {
	row := auditRow{TenantID: tenantID, ID: NewID(), At: at.UnixMilli(), Actor: string(actor), Action: action,
		ObjectType: objectType, ObjectID: objectID}
	var err error
	if row.BeforeJSON, err = jsonPtr(before); err != nil {
		return err
	}
	if row.AfterJSON, err = jsonPtr(after); err != nil {
		return err
	}
	return tx.Create(&row).Error
}

func jsonPtr(v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s := string(b)
	return &s, nil
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	ObjectType, ObjectID, Action string
	Before                       string // cursor: the id of the last entry of the previous page
	Limit                        int
}

// Audit lists the tenant's audit entries, newest first, and the cursor of the next page.
func (s *Service) Audit(ctx context.Context, tenantID string, f AuditFilter) ([]*AuditEntry, string, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	q := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID)
	if f.ObjectType != "" {
		q = q.Where("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != "" {
		q = q.Where("object_id = ?", f.ObjectID)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Before != "" {
		q = q.Where("id < ?", f.Before) // ids are time-ordered (UUIDv7)
	}
	var rows []auditRow
	if err := q.Order("id DESC").Limit(f.Limit + 1).Find(&rows).Error; err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		next = rows[len(rows)-1].ID
	}
	out := make([]*AuditEntry, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, next, nil
}
