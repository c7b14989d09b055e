package datamap

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"golang.org/x/text/collate"
	"golang.org/x/text/language"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Purposes is where the service finds the tenant's purposes (consent's service).
type Purposes interface {
	Purposes(ctx context.Context, tenantID string) ([]*consent.Purpose, error)
}

// Service keeps the tenants' data maps.
type Service struct {
	db       *sqldb.DB
	purposes Purposes
	now      func() time.Time
}

// New returns the data map service.
func New(db *sqldb.DB, purposes Purposes, now func() time.Time) *Service {
	return &Service{db: db, purposes: purposes, now: now}
}

const objectType = "data_map_system"

func notFoundOr(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return identity.NotFound("system")
	}
	return err
}

// prepare expands a preset, normalises and validates s (Prepare), and checks its purposes
// against the tenant's.
func (s *Service) prepare(ctx context.Context, sys *System) error {
	if err := sys.Prepare(); err != nil {
		return err
	}
	if len(sys.Purposes) == 0 {
		return nil
	}
	ps, err := s.purposes.Purposes(ctx, sys.TenantID)
	if err != nil {
		return err
	}
	known := make(map[string]*consent.Purpose, len(ps))
	for _, p := range ps {
		known[p.Key] = p
	}
	var fields []identity.FieldError
	for i, key := range sys.Purposes {
		if known[key] == nil {
			fields = append(fields, identity.FieldError{Field: idx("purposes", i), Message: "the tenant has no purpose " + strconv.Quote(key)})
		}
	}
	if len(fields) > 0 {
		return &identity.Error{Code: identity.EUnprocessable, Message: "unknown purpose", Fields: fields}
	}
	// A purpose people consent to (or may object to) is processed under that basis in
	// every system that serves it.
	for _, key := range sys.Purposes {
		basis := known[key].LegalBasis
		if (basis == consent.BasisConsent || basis == consent.BasisLegitimateInterest) && !slices.Contains(sys.LegalBases, basis) {
			fields = append(fields, identity.FieldError{Field: "legal_bases",
				Message: "the purpose " + strconv.Quote(key) + " rests on " + basis + ": list " + basis})
		}
	}
	if len(fields) > 0 {
		return &identity.Error{Code: identity.EUnprocessable, Message: "the legal bases do not cover the purposes", Fields: fields}
	}
	return nil
}

func writeErr(err error) error {
	if sqldb.IsUniqueViolation(err) {
		return &identity.Error{Code: identity.EConflict, Message: "the data map has a system with this name or connection",
			Fields: []identity.FieldError{{Field: "name", Message: "the name and the connection must each be unique in the data map"}}, Err: err}
	}
	return err
}

// conflictOf tells which of the unique keys a new or changed system clashes with, so the
// answer names the field.
func conflictOf(tx *gorm.DB, sys *System) error {
	var n int64
	if err := tx.Model(&systemRow{}).Where("tenant_id = ? AND name = ? AND id <> ?", sys.TenantID, sys.Name, sys.ID).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return &identity.Error{Code: identity.EConflict, Message: "the data map has a system with this name",
			Fields: []identity.FieldError{{Field: "name", Message: "is already the name of another system"}}}
	}
	if c := sys.Connection; c != nil {
		if err := tx.Model(&systemRow{}).Where("tenant_id = ? AND connection_kind = ? AND connection_id = ? AND id <> ?",
			sys.TenantID, c.Kind, c.ID, sys.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return &identity.Error{Code: identity.EConflict, Message: "this connection is already another system of the data map",
				Fields: []identity.FieldError{{Field: "connection.id", Message: "is already the connection of another system"}}}
		}
	}
	return nil
}

// Create adds a system to the tenant's data map.
func (s *Service) Create(ctx context.Context, sys System, actor identity.Actor) (*System, error) {
	now := s.now().Truncate(time.Millisecond) // as stored: the answer equals a later read
	sys.ID, sys.CreatedAt, sys.UpdatedAt = identity.NewID(), now, now
	if err := s.prepare(ctx, &sys); err != nil {
		return nil, err
	}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&systemRow{}).Where("tenant_id = ?", sys.TenantID).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxSystems {
			return identity.Errorf(identity.EConflict, "a data map holds at most %d systems", MaxSystems)
		}
		if err := checkConnection(tx, &sys, nil); err != nil {
			return err
		}
		if err := conflictOf(tx, &sys); err != nil {
			return err
		}
		if err := tx.Create(systemToRow(&sys)).Error; err != nil {
			return writeErr(err)
		}
		return identity.WriteAudit(tx, sys.TenantID, actor, objectType+".create", objectType, sys.ID, nil, &sys, now)
	})
	if err != nil {
		return nil, err
	}
	return &sys, nil
}

// Get returns one system of the tenant's data map.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*System, error) {
	var r systemRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
		return nil, notFoundOr(err)
	}
	return r.domain(), nil
}

// Page limits of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// List returns a page of the tenant's systems, newest first, and the cursor of the next
// page ("" on the last): before is the id of the last system of the previous page.
func (s *Service) List(ctx context.Context, tenantID, before string, limit int) ([]*System, string, error) {
	if limit <= 0 || limit > MaxPageSize {
		limit = DefaultPageSize
	}
	q := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID)
	if before != "" {
		q = q.Where("id < ?", before) // ids are time-ordered (UUIDv7)
	}
	var rows []systemRow
	if err := q.Order("id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[len(rows)-1].ID
	}
	out := make([]*System, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, next, nil
}

// Map returns the tenant's whole data map: every system by name, which systems hold data
// for each purpose, and the countries outside the EEA the data goes to.
func (s *Service) Map(ctx context.Context, tenantID string) (*Map, error) {
	var rows []systemRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	// By name in the Unicode collation, the same on every database (PostgreSQL's order
	// depends on the server's locale, SQLite's is byte order).
	cl := collate.New(language.Und, collate.IgnoreCase)
	slices.SortStableFunc(rows, func(a, b systemRow) int { return cl.CompareString(a.Name, b.Name) })
	m := &Map{TenantID: tenantID, Systems: make([]*System, len(rows)), Purposes: map[string][]string{}, ThirdCountries: []string{}}
	for i := range rows {
		sys := rows[i].domain()
		m.Systems[i] = sys
		for _, p := range sys.Purposes {
			m.Purposes[p] = append(m.Purposes[p], sys.ID)
		}
		for _, t := range sys.Transfers {
			if !slices.Contains(m.ThirdCountries, t.Country) {
				m.ThirdCountries = append(m.ThirdCountries, t.Country)
			}
		}
	}
	slices.Sort(m.ThirdCountries)
	return m, nil
}

// Update applies a patch to a system.
func (s *Service) Update(ctx context.Context, tenantID, id string, p Patch, actor identity.Actor) (*System, error) {
	var out *System
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r systemRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			return notFoundOr(err)
		}
		before := r.domain()
		sys := *r.domain()
		p.Apply(&sys)
		if p.Retention == nil && sys.Retention.Preset != "" {
			// The stored rule is the preset expanded; expanding it again needs the preset's form.
			sys.Retention = Retention{Preset: sys.Retention.Preset, FinancialYearEnd: sys.Retention.FinancialYearEnd, Notes: sys.Retention.Notes}
		}
		if err := s.prepare(ctx, &sys); err != nil {
			return err
		}
		sys.UpdatedAt = s.now().Truncate(time.Millisecond)
		if err := checkConnection(tx, &sys, before.Connection); err != nil {
			return err
		}
		if err := conflictOf(tx, &sys); err != nil {
			return err
		}
		if err := tx.Save(systemToRow(&sys)).Error; err != nil {
			return writeErr(err)
		}
		out = &sys
		return identity.WriteAudit(tx, tenantID, actor, objectType+".update", objectType, id, before, &sys, sys.UpdatedAt)
	})
	return out, err
}

// Delete removes a system from the tenant's data map.
func (s *Service) Delete(ctx context.Context, tenantID, id string, actor identity.Actor) error {
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r systemRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			return notFoundOr(err)
		}
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Delete(&systemRow{}).Error; err != nil {
			return err
		}
		now := s.now()
		if err := identity.WriteAudit(tx, tenantID, actor, objectType+".delete", objectType, id, r.domain(), nil, now); err != nil {
			return err
		}
		// The systems left may all have confirmed an erasure this one had not.
		return s.recheckErasures(tx, tenantID, actor, now)
	})
}
