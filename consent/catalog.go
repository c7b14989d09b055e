package consent

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// Catalog is a tenant's published purposes, as every request that records or reads
// consent needs them. It is cached for a short time per tenant (catalogTTL); a change on
// this instance refreshes it at once, other instances within catalogTTL.
type Catalog struct {
	Tenant     *identity.Tenant
	Purposes   []*CatalogPurpose // sorted by key
	Brands     map[string]*identity.Brand
	Banners    map[string]*BannerSettings // by property id; absent means the defaults
	byKey      map[string]*CatalogPurpose
	byID       map[string]*CatalogPurpose
	loadedAt   time.Time
	generation uint64
}

// CatalogPurpose is a purpose with its published versions.
type CatalogPurpose struct {
	*Purpose
	Versions map[int]*Version // published versions by number
	Latest   *Version         // the newest published version, nil when none
	// Inventory lists the purpose's vendors and storage items (empty lists until set).
	Inventory *Inventory
}

// Purpose returns the purpose with this key.
func (c *Catalog) Purpose(key string) (*CatalogPurpose, bool) {
	p, ok := c.byKey[key]
	return p, ok
}

// PurposeByID returns the purpose with this id.
func (c *Catalog) PurposeByID(id string) (*CatalogPurpose, bool) {
	p, ok := c.byID[id]
	return p, ok
}

const catalogTTL = 2 * time.Second

type catalogCache struct {
	mu         sync.Mutex
	byTenant   map[string]*Catalog
	generation map[string]uint64
}

// Catalog returns the tenant's catalog.
func (s *Service) Catalog(ctx context.Context, tenantID string) (*Catalog, error) {
	now := s.now()
	s.catalogs.mu.Lock()
	c := s.catalogs.byTenant[tenantID]
	gen := s.catalogs.generation[tenantID]
	s.catalogs.mu.Unlock()
	if c != nil && c.generation == gen && now.Sub(c.loadedAt) < catalogTTL {
		return c, nil
	}
	c, err := s.loadCatalog(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	c.loadedAt, c.generation = now, gen
	s.catalogs.mu.Lock()
	if s.catalogs.generation[tenantID] == gen {
		s.catalogs.byTenant[tenantID] = c
	}
	s.catalogs.mu.Unlock()
	return c, nil
}

// invalidate drops the cached catalog after a change.
func (s *Service) invalidate(tenantID string) {
	s.catalogs.mu.Lock()
	s.catalogs.generation[tenantID]++
	delete(s.catalogs.byTenant, tenantID)
	s.catalogs.mu.Unlock()
}

func (s *Service) loadCatalog(ctx context.Context, tenantID string) (*Catalog, error) {
	t, err := s.ids.Tenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	brands, err := s.ids.Brands(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	db := s.db.Read.WithContext(ctx)
	var prow []purposeRow
	if err := db.Where("tenant_id = ?", tenantID).Order("key").Find(&prow).Error; err != nil {
		return nil, err
	}
	var vrows []versionRow
	if err := db.Where("tenant_id = ? AND status = ?", tenantID, VersionPublished).Find(&vrows).Error; err != nil {
		return nil, err
	}
	var brows []bannerRow
	if err := db.Where("tenant_id = ?", tenantID).Find(&brows).Error; err != nil {
		return nil, err
	}
	var irows []inventoryRow
	if err := db.Where("tenant_id = ?", tenantID).Find(&irows).Error; err != nil {
		return nil, err
	}
	c := &Catalog{Tenant: t, Brands: map[string]*identity.Brand{}, Banners: map[string]*BannerSettings{}, byKey: map[string]*CatalogPurpose{}, byID: map[string]*CatalogPurpose{}}
	for _, b := range brands {
		c.Brands[b.ID] = b
	}
	for i := range prow {
		cp := &CatalogPurpose{Purpose: prow[i].domain(), Versions: map[int]*Version{}, Inventory: &Inventory{PurposeKey: prow[i].Key}}
		cp.Inventory.normalize()
		c.Purposes = append(c.Purposes, cp)
		c.byKey[cp.Key] = cp
		c.byID[cp.ID] = cp
	}
	for i := range vrows {
		cp := c.byID[vrows[i].PurposeID]
		if cp == nil {
			continue
		}
		v := vrows[i].domain(cp.Key)
		cp.Versions[v.Number] = v
		if cp.Latest == nil || v.Number > cp.Latest.Number {
			cp.Latest = v
		}
	}
	for i := range brows {
		c.Banners[brows[i].PropertyID] = brows[i].domain()
	}
	for i := range irows {
		if cp := c.byID[irows[i].PurposeID]; cp != nil {
			cp.Inventory = irows[i].domain(cp.Key)
		}
	}
	sort.Slice(c.Purposes, func(i, j int) bool { return c.Purposes[i].Key < c.Purposes[j].Key })
	return c, nil
}

// Asked returns the purposes people decide about on a property (published, not strictly
// necessary, in scope), restricted to one level when level is not empty.
func (c *Catalog) Asked(p *identity.Property, level string) []*CatalogPurpose {
	var out []*CatalogPurpose
	for _, cp := range c.Purposes {
		if cp.Latest == nil || cp.LegalBasis == BasisNecessary || (level != "" && cp.Level != level) {
			continue
		}
		if p != nil && !cp.InScope(p.ID, p.BrandID) {
			continue
		}
		out = append(out, cp)
	}
	return out
}
