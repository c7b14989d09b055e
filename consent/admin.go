package consent

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// ---- recipients ----

// CreateRecipient adds a recipient.
func (s *Service) CreateRecipient(ctx context.Context, r Recipient, actor identity.Actor) (*Recipient, error) {
	now := s.now()
	r.ID, r.CreatedAt, r.UpdatedAt = identity.NewID(), now, now
	if err := r.Validate(); err != nil {
		return nil, err
	}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if r.BrandID != "" {
			if err := checkExists(tx, "brands", r.TenantID, []string{r.BrandID}, "brand_id", "no such brand"); err != nil {
				return err
			}
		}
		if err := tx.Create(recipientToRow(&r)).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, r.TenantID, actor, "recipient.create", "recipient", r.ID, nil, &r, now)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Recipients lists the tenant's recipients.
func (s *Service) Recipients(ctx context.Context, tenantID string) ([]*Recipient, error) {
	var rows []recipientRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Recipient, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// Recipient returns one recipient.
func (s *Service) Recipient(ctx context.Context, tenantID, id string) (*Recipient, error) {
	var r recipientRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "recipient")
	}
	return r.domain(), nil
}

// RecipientPatch changes some of a recipient's details.
type RecipientPatch struct {
	Name, LegalName, Kind, Country, PrivacyPolicyURL, BrandID *string
}

// Apply sets the fields the patch has on r.
func (p RecipientPatch) Apply(r *Recipient) {
	identity.PatchString(&r.Name, p.Name)
	identity.PatchString(&r.LegalName, p.LegalName)
	identity.PatchString(&r.Kind, p.Kind)
	identity.PatchString(&r.Country, p.Country)
	identity.PatchString(&r.PrivacyPolicyURL, p.PrivacyPolicyURL)
	identity.PatchString(&r.BrandID, p.BrandID)
}

// UpdateRecipient applies a patch. Published versions keep the recipient as it was when
// they were published; a new version shows the change.
func (s *Service) UpdateRecipient(ctx context.Context, tenantID, id string, p RecipientPatch, actor identity.Actor) (*Recipient, error) {
	var out *Recipient
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row recipientRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&row).Error; err != nil {
			return notFoundOr(err, "recipient")
		}
		before := row.domain()
		r := *before
		p.Apply(&r)
		if err := r.Validate(); err != nil {
			return err
		}
		if r.BrandID != "" && r.BrandID != before.BrandID {
			if err := checkExists(tx, "brands", tenantID, []string{r.BrandID}, "brand_id", "no such brand"); err != nil {
				return err
			}
		}
		r.UpdatedAt = s.now()
		if err := tx.Save(recipientToRow(&r)).Error; err != nil {
			return err
		}
		out = &r
		return identity.WriteAudit(tx, tenantID, actor, "recipient.update", "recipient", id, before, &r, r.UpdatedAt)
	})
	return out, err
}

func notFoundOr(err error, kind string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return identity.NotFound(kind)
	}
	return err
}

// checkExists makes sure every id names a row of table in the tenant.
func checkExists(tx *gorm.DB, table, tenantID string, ids []string, field, message string) error {
	if len(ids) == 0 {
		return nil
	}
	var n int64
	if err := tx.Raw("SELECT count(*) FROM "+table+" WHERE tenant_id = ? AND id IN ?", tenantID, ids).Scan(&n).Error; err != nil {
		return err
	}
	if int(n) != len(uniq(ids)) {
		return identity.Unprocessable(field, message)
	}
	return nil
}

// uniq returns the sorted distinct values of s, never nil: the API shows an empty list as [].
func uniq(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return slices.Compact(out)
}

// ---- purposes ----

func (s *Service) checkPurposeRefs(tx *gorm.DB, p *Purpose) error {
	if err := checkExists(tx, "recipients", p.TenantID, p.RecipientIDs, "recipient_ids", "names a recipient that does not exist"); err != nil {
		return err
	}
	if err := checkExists(tx, "brands", p.TenantID, p.ScopeBrandIDs, "scope_brand_ids", "names a brand that does not exist"); err != nil {
		return err
	}
	return checkExists(tx, "properties", p.TenantID, p.ScopePropertyIDs, "scope_property_ids", "names a property that does not exist")
}

// checkScope refuses a scope whose two lists contradict each other. Both narrow it
// (InScope): a property of a brand the brand list leaves out would never be in it, which
// nobody means.
func checkScope(tx *gorm.DB, p *Purpose) error {
	if len(p.ScopeBrandIDs) == 0 || len(p.ScopePropertyIDs) == 0 {
		return nil
	}
	var outside []string
	if err := tx.Raw("SELECT id FROM properties WHERE tenant_id = ? AND id IN ? AND brand_id NOT IN ? ORDER BY id",
		p.TenantID, p.ScopePropertyIDs, p.ScopeBrandIDs).Scan(&outside).Error; err != nil {
		return err
	}
	if len(outside) > 0 {
		return identity.Unprocessable("scope_property_ids", "names a property of a brand that scope_brand_ids leaves out: "+
			strings.Join(outside, ", ")+"; the purpose would never be asked there")
	}
	return nil
}

// ValidateNew fills in a new purpose's defaults, drops repeated ids and checks its
// invariants: what CreatePurpose checks before it asks the database.
func (p *Purpose) ValidateNew() error {
	if p.ReaskMonths == 0 {
		p.ReaskMonths = 12
	}
	p.RecipientIDs, p.ScopeBrandIDs, p.ScopePropertyIDs = uniq(p.RecipientIDs), uniq(p.ScopeBrandIDs), uniq(p.ScopePropertyIDs)
	return p.Validate()
}

// CreatePurpose adds a purpose. It is asked only once a version is published.
func (s *Service) CreatePurpose(ctx context.Context, p Purpose, actor identity.Actor) (*Purpose, error) {
	now := s.now()
	p.ID, p.CreatedAt, p.UpdatedAt, p.LatestVersion, p.MaterialVersion = identity.NewID(), now, now, 0, 0
	if err := p.ValidateNew(); err != nil {
		return nil, err
	}
	p.ReaskApplied = p.ReaskMonths // no decisions yet: nothing to rewrite
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.checkPurposeRefs(tx, &p); err != nil {
			return err
		}
		if err := checkScope(tx, &p); err != nil {
			return err
		}
		if err := tx.Create(purposeToRow(&p)).Error; err != nil {
			if isUnique(err) {
				return &identity.Error{Code: identity.EConflict, Message: "a purpose with this key exists",
					Fields: []identity.FieldError{{Field: "key", Message: "is already used"}}}
			}
			return err
		}
		return identity.WriteAudit(tx, p.TenantID, actor, "purpose.create", "purpose", p.ID, nil, &p, now)
	})
	if err != nil {
		return nil, err
	}
	s.invalidate(p.TenantID)
	return &p, nil
}

// Purposes lists the tenant's purposes.
func (s *Service) Purposes(ctx context.Context, tenantID string) ([]*Purpose, error) {
	var rows []purposeRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("key").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Purpose, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// Purpose returns a purpose by id or key.
func (s *Service) Purpose(ctx context.Context, tenantID, idOrKey string) (*Purpose, error) {
	return s.purpose(s.db.Read.WithContext(ctx), tenantID, idOrKey)
}

func (s *Service) purpose(db *gorm.DB, tenantID, idOrKey string) (*Purpose, error) {
	var r purposeRow
	if err := db.Where("tenant_id = ? AND (id = ? OR key = ?)", tenantID, idOrKey, idOrKey).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "purpose")
	}
	return r.domain(), nil
}

// lockPurpose reads a purpose in tx and locks its row until tx ends. Every change of a
// purpose or its versions saves the whole row (latest and material version, the sweeps'
// marks) as it read it: without the lock, on PostgreSQL, a change made at the same time (a
// version published while the purpose is patched) would be overwritten by the older row,
// and a material version would stop counting. SQLite's write transaction excludes other
// writers already.
func (s *Service) lockPurpose(tx *gorm.DB, tenantID, idOrKey string) (*Purpose, error) {
	if s.db.Dialect == sqldb.Postgres {
		tx = tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return s.purpose(tx, tenantID, idOrKey)
}

// PurposePatch changes a purpose. Level and legal basis are fixed once a version is
// published: changing them is a different purpose.
type PurposePatch struct {
	Level, LegalBasis, DPVPurpose                 *string
	RecipientIDs, ScopeBrandIDs, ScopePropertyIDs *[]string
	ReaskMonths                                   *int
	GPCOptOut, DoubleOptIn                        *bool
}

// Apply sets the fields the patch has on p, its lists without repeated ids.
func (patch PurposePatch) Apply(p *Purpose) {
	identity.PatchString(&p.Level, patch.Level)
	identity.PatchString(&p.LegalBasis, patch.LegalBasis)
	identity.PatchString(&p.DPVPurpose, patch.DPVPurpose)
	if patch.RecipientIDs != nil {
		p.RecipientIDs = uniq(*patch.RecipientIDs)
	}
	if patch.ScopeBrandIDs != nil {
		p.ScopeBrandIDs = uniq(*patch.ScopeBrandIDs)
	}
	if patch.ScopePropertyIDs != nil {
		p.ScopePropertyIDs = uniq(*patch.ScopePropertyIDs)
	}
	if patch.ReaskMonths != nil && *patch.ReaskMonths != p.ReaskMonths {
		// The new interval applies to every decision at once (Effective); the sweeper
		// moves the stored expiries, the expiry sweep's index, after it (RewriteExpiries).
		p.ReaskMonths, p.ReaskApplied = *patch.ReaskMonths, 0
	}
	if patch.GPCOptOut != nil {
		p.GPCOptOut = *patch.GPCOptOut
	}
	if patch.DoubleOptIn != nil {
		p.DoubleOptIn = *patch.DoubleOptIn
	}
}

// UpdatePurpose applies a patch.
func (s *Service) UpdatePurpose(ctx context.Context, tenantID, idOrKey string, patch PurposePatch, actor identity.Actor) (*Purpose, error) {
	var out *Purpose
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		before, err := s.lockPurpose(tx, tenantID, idOrKey)
		if err != nil {
			return err
		}
		p := *before
		patch.Apply(&p)
		if before.LatestVersion > 0 && (p.Level != before.Level || p.LegalBasis != before.LegalBasis) {
			// People decided about this level and basis: another one is another purpose.
			var fields []identity.FieldError
			if p.Level != before.Level {
				fields = append(fields, identity.FieldError{Field: "level", Message: "is fixed once a version is published: create a new purpose"})
			}
			if p.LegalBasis != before.LegalBasis {
				fields = append(fields, identity.FieldError{Field: "legal_basis", Message: "is fixed once a version is published: create a new purpose"})
			}
			return &identity.Error{Code: identity.EConflict,
				Message: "level and legal_basis cannot change once a version is published; create a new purpose", Fields: fields}
		}
		if err := p.Validate(); err != nil {
			return err
		}
		if err := s.checkPurposeRefs(tx, &p); err != nil {
			return err
		}
		if !slices.Equal(p.ScopeBrandIDs, before.ScopeBrandIDs) || !slices.Equal(p.ScopePropertyIDs, before.ScopePropertyIDs) {
			if err := checkScope(tx, &p); err != nil {
				return err
			}
		}
		if err := checkBannerUse(tx, before, &p); err != nil {
			return err
		}
		p.UpdatedAt = s.now()
		if err := tx.Save(purposeToRow(&p)).Error; err != nil {
			return err
		}
		out = &p
		return identity.WriteAudit(tx, tenantID, actor, "purpose.update", "purpose", p.ID, before, &p, p.UpdatedAt)
	})
	if err == nil {
		s.invalidate(tenantID)
	}
	return out, err
}

// ---- versions ----

// VersionInput is the content of a draft version.
type VersionInput struct {
	Material *bool
	Texts    map[string]Text
	Details  *VersionDetails
}

// Apply sets on v the content the input has: all of a new draft's, what a change sends.
func (in VersionInput) Apply(v *Version) {
	if in.Material != nil {
		v.Material = *in.Material
	}
	if in.Texts != nil {
		v.Texts = in.Texts
	}
	if in.Details != nil {
		v.Details = *in.Details
	}
}

// CreateVersion adds a draft version with the next number. A purpose has at most one draft.
func (s *Service) CreateVersion(ctx context.Context, tenantID, idOrKey string, in VersionInput, actor identity.Actor) (*Version, error) {
	var out *Version
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.lockPurpose(tx, tenantID, idOrKey)
		if err != nil {
			return err
		}
		var last []versionRow
		if err := tx.Where("tenant_id = ? AND purpose_id = ?", tenantID, p.ID).Order("number DESC").Limit(1).Find(&last).Error; err != nil {
			return err
		}
		number := 1
		if len(last) == 1 {
			if last[0].Status == VersionDraft {
				return identity.Errorf(identity.EConflict, "version %d is still a draft: change or publish it first", last[0].Number)
			}
			number = last[0].Number + 1
		}
		v := &Version{TenantID: tenantID, PurposeID: p.ID, PurposeKey: p.Key, Number: number, Status: VersionDraft,
			Material: true, CreatedAt: s.now()}
		in.Apply(v)
		if err := s.prepareDraft(tx, p, v); err != nil {
			return err
		}
		if err := tx.Create(versionToRow(v)).Error; err != nil {
			return err
		}
		out = v
		return identity.WriteAudit(tx, tenantID, actor, "purpose_version.create", "purpose_version", versionRef(p, v), nil, v, v.CreatedAt)
	})
	return out, err
}

func versionRef(p *Purpose, v *Version) string { return p.ID + "/" + itoa(v.Number) }

func (s *Service) prepareDraft(tx *gorm.DB, p *Purpose, v *Version) error {
	if v.Number == 1 {
		v.Material = true // the first version is what people decide about at all
	}
	v.Details.DataCategories = nonNilStrings(v.Details.DataCategories)
	v.Details.Recipients = []RecipientRef{}
	if err := v.Validate(); err != nil {
		return err
	}
	refs, err := s.recipientRefs(tx, p)
	if err != nil {
		return err
	}
	v.Details.Recipients = refs
	if v.Details.Controllers, err = s.controllerRefs(tx.Statement.Context, p); err != nil {
		return err
	}
	v.Seal(p)
	return nil
}

// controllerRefs lists the purpose's controllers as they are now: the tenant, and each
// brand in the purpose's scope (every brand when it is not scoped) that is a legal entity
// other than the tenant, by brand id.
func (s *Service) controllerRefs(ctx context.Context, p *Purpose) ([]ControllerRef, error) {
	t, err := s.ids.Tenant(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	brands, err := s.ids.Brands(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	propertyBrand := map[string]string{}
	if len(p.ScopePropertyIDs) > 0 {
		props, err := s.ids.Properties(ctx, p.TenantID)
		if err != nil {
			return nil, err
		}
		for _, pr := range props {
			propertyBrand[pr.ID] = pr.BrandID
		}
	}
	tenant := ControllerRef{LegalName: t.LegalName, BusinessID: t.BusinessID}
	refs := []ControllerRef{tenant}
	for _, b := range brands {
		ref := ControllerRef{BrandID: b.ID, LegalName: b.LegalName, BusinessID: b.BusinessID}
		if ref.entity() == tenant.entity() || !brandInScope(p, b.ID, propertyBrand) {
			continue
		}
		refs = append(refs, ref)
	}
	slices.SortFunc(refs[1:], func(a, b ControllerRef) int { return strings.Compare(a.BrandID, b.BrandID) })
	return refs, nil
}

// brandInScope reports whether a purpose can be offered on some property of the brand, by
// the purpose's own rule (InScope).
func brandInScope(p *Purpose, brandID string, propertyBrand map[string]string) bool {
	if len(p.ScopePropertyIDs) == 0 {
		return p.InScope("", brandID)
	}
	return slices.ContainsFunc(p.ScopePropertyIDs, func(id string) bool {
		return propertyBrand[id] == brandID && p.InScope(id, brandID)
	})
}

func (s *Service) recipientRefs(tx *gorm.DB, p *Purpose) ([]RecipientRef, error) {
	refs := []RecipientRef{}
	if len(p.RecipientIDs) == 0 {
		return refs, nil
	}
	var rows []recipientRow
	if err := tx.Where("tenant_id = ? AND id IN ?", p.TenantID, p.RecipientIDs).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		refs = append(refs, RecipientRef{ID: r.ID, Name: r.Name, LegalName: r.LegalName, Kind: r.Kind, Country: r.Country})
	}
	return refs, nil
}

// Versions lists a purpose's versions, newest first.
func (s *Service) Versions(ctx context.Context, tenantID, idOrKey string) ([]*Version, error) {
	db := s.db.Read.WithContext(ctx)
	p, err := s.purpose(db, tenantID, idOrKey)
	if err != nil {
		return nil, err
	}
	var rows []versionRow
	if err := db.Where("tenant_id = ? AND purpose_id = ?", tenantID, p.ID).Order("number DESC").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Version, len(rows))
	for i := range rows {
		out[i] = rows[i].domain(p.Key)
	}
	return out, nil
}

// Version returns one version of a purpose.
func (s *Service) Version(ctx context.Context, tenantID, idOrKey string, number int) (*Version, error) {
	db := s.db.Read.WithContext(ctx)
	p, err := s.purpose(db, tenantID, idOrKey)
	if err != nil {
		return nil, err
	}
	return s.version(db, p, number)
}

func (s *Service) version(db *gorm.DB, p *Purpose, number int) (*Version, error) {
	var r versionRow
	if err := db.Where("tenant_id = ? AND purpose_id = ? AND number = ?", p.TenantID, p.ID, number).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "purpose version")
	}
	return r.domain(p.Key), nil
}

// UpdateVersion changes a draft. A published version never changes.
func (s *Service) UpdateVersion(ctx context.Context, tenantID, idOrKey string, number int, in VersionInput, actor identity.Actor) (*Version, error) {
	var out *Version
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.lockPurpose(tx, tenantID, idOrKey)
		if err != nil {
			return err
		}
		before, err := s.version(tx, p, number)
		if err != nil {
			return err
		}
		if before.Status != VersionDraft {
			return identity.Errorf(identity.EConflict, "version %d is published and never changes; create a new version", number)
		}
		v := *before
		in.Apply(&v)
		if err := s.prepareDraft(tx, p, &v); err != nil {
			return err
		}
		if err := tx.Save(versionToRow(&v)).Error; err != nil {
			return err
		}
		out = &v
		return identity.WriteAudit(tx, tenantID, actor, "purpose_version.update", "purpose_version", versionRef(p, &v), before, &v, s.now())
	})
	return out, err
}

// PublishVersion publishes a draft: from now on it is what people are asked about. A
// material version makes earlier grants outdated (the sweep records that); a non-material
// one must not change the facts of the version before it.
func (s *Service) PublishVersion(ctx context.Context, tenantID, idOrKey string, number int, actor identity.Actor) (*Version, error) {
	var out *Version
	var material bool
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.lockPurpose(tx, tenantID, idOrKey)
		if err != nil {
			return err
		}
		before, err := s.version(tx, p, number)
		if err != nil {
			return err
		}
		if before.Status != VersionDraft {
			return identity.Errorf(identity.EConflict, "version %d is already published", number)
		}
		v := *before
		// Recipients are fixed as they are now, at publication.
		if err := s.prepareDraft(tx, p, &v); err != nil {
			return err
		}
		if !v.Material && p.LatestVersion > 0 {
			prev, err := s.version(tx, p, p.LatestVersion)
			if err != nil {
				return err
			}
			if err := checkNonMaterial(prev, &v); err != nil {
				return err
			}
		}
		now := s.now()
		v.Status, v.PublishedAt = VersionPublished, &now
		if err := tx.Save(versionToRow(&v)).Error; err != nil {
			return err
		}
		np := *p
		np.LatestVersion = v.Number
		if v.Material {
			np.MaterialVersion = v.Number
		}
		np.UpdatedAt = now
		if err := tx.Save(purposeToRow(&np)).Error; err != nil {
			return err
		}
		out, material = &v, v.Material && v.Number > 1
		return identity.WriteAudit(tx, tenantID, actor, "purpose_version.publish", "purpose_version", versionRef(p, &v), before, &v, now)
	})
	if err != nil {
		return nil, err
	}
	s.invalidate(tenantID)
	if material && s.onMaterial != nil {
		s.onMaterial()
	}
	return out, nil
}

// checkNonMaterial refuses a version marked non-material whose facts differ from the
// previous version: new recipients, controllers, data, retention or transfers are material
// by law.
func checkNonMaterial(prev, next *Version) error {
	var v identity.Validator
	// A version published before controllers were recorded has nothing to compare with.
	v.Check(prev.Details.Controllers == nil || slices.Equal(controllerEntities(prev), controllerEntities(next)),
		"material", "the controller changed: this version is material")
	sameIDs := reflect.DeepEqual(recipientIDs(prev.Details.Recipients), recipientIDs(next.Details.Recipients))
	v.Check(sameIDs, "material", "the recipients changed: this version is material")
	// The same recipients, but one of them is now somewhere else (a transfer) or receives in
	// another role (a processor become a partner that uses the data for itself). A new legal
	// name of the same recipient is not a change, as for controllers; another company is
	// another recipient.
	v.Check(!sameIDs || slices.Equal(recipientFacts(prev.Details.Recipients), recipientFacts(next.Details.Recipients)),
		"material", "the recipients changed (a recipient's country or kind): this version is material")
	v.Check(slices.Equal(sortedSet(prev.Details.DataCategories), sortedSet(next.Details.DataCategories)), "material",
		"the data categories changed: this version is material")
	v.Check(prev.Details.Retention == next.Details.Retention, "material", "the retention changed: this version is material")
	v.Check(prev.Details.Transfers == next.Details.Transfers, "material", "the transfers changed: this version is material")
	if err := v.Err(); err != nil {
		e := err.(*identity.Error)
		e.Code = identity.EUnprocessable
		return e
	}
	return nil
}

// controllerEntities lists the version's controllers as legal entities, in order.
func controllerEntities(v *Version) []string {
	out := make([]string, len(v.Details.Controllers))
	for i, c := range v.Details.Controllers {
		out[i] = c.BrandID + "|" + c.entity()
	}
	slices.Sort(out)
	return out
}

// recipientFacts lists, in order, what makes each recipient's receiving what it is besides
// who it is: its kind and country.
func recipientFacts(refs []RecipientRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.ID + "|" + r.Kind + "|" + r.Country
	}
	slices.Sort(out)
	return out
}

// sortedSet returns the distinct values of s in order: the order a list of data categories
// is written in says nothing about the data.
func sortedSet(s []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(s)))
}

func recipientIDs(refs []RecipientRef) []string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	return ids
}
