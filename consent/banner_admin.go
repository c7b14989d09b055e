package consent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

type bannerRow struct {
	TenantID   string `gorm:"primaryKey"`
	PropertyID string `gorm:"primaryKey"`
	Settings   string
	UpdatedAt  int64 `gorm:"autoUpdateTime:false"`
}

func (bannerRow) TableName() string { return "banner_settings" }

func (r *bannerRow) domain() *BannerSettings {
	b := DefaultBannerSettings(r.TenantID, r.PropertyID)
	_ = json.Unmarshal([]byte(r.Settings), b)
	b.TenantID, b.PropertyID = r.TenantID, r.PropertyID
	t := msTime(r.UpdatedAt)
	b.UpdatedAt = &t
	b.normalize()
	return b
}

type inventoryRow struct {
	TenantID  string `gorm:"primaryKey"`
	PurposeID string `gorm:"primaryKey"`
	Inventory string
	UpdatedAt int64 `gorm:"autoUpdateTime:false"`
}

func (inventoryRow) TableName() string { return "purpose_inventory" }

func (r *inventoryRow) domain(purposeKey string) *Inventory {
	inv := &Inventory{}
	_ = json.Unmarshal([]byte(r.Inventory), inv)
	inv.PurposeKey = purposeKey
	t := msTime(r.UpdatedAt)
	inv.UpdatedAt = &t
	inv.normalize()
	return inv
}

func (inv *Inventory) normalize() {
	if inv.Vendors == nil {
		inv.Vendors = []Vendor{}
	}
	if inv.Storage == nil {
		inv.Storage = []StorageItem{}
	}
}

// BannerSettings returns a property's banner settings (the defaults until changed).
func (s *Service) BannerSettings(ctx context.Context, tenantID, propertyID string) (*BannerSettings, error) {
	if _, err := s.ids.Property(ctx, tenantID, propertyID); err != nil {
		return nil, err
	}
	return s.bannerSettings(s.db.Read.WithContext(ctx), tenantID, propertyID)
}

func (s *Service) bannerSettings(db *gorm.DB, tenantID, propertyID string) (*BannerSettings, error) {
	var r bannerRow
	err := db.Where("tenant_id = ? AND property_id = ?", tenantID, propertyID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return DefaultBannerSettings(tenantID, propertyID), nil
	}
	if err != nil {
		return nil, err
	}
	return r.domain(), nil
}

// PutBannerSettings replaces a property's banner settings.
func (s *Service) PutBannerSettings(ctx context.Context, b BannerSettings, actor identity.Actor) (*BannerSettings, error) {
	if _, err := s.ids.Property(ctx, b.TenantID, b.PropertyID); err != nil {
		return nil, err
	}
	b.normalize()
	if err := b.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		purposes, err := s.purposesByKey(tx, b.TenantID)
		if err != nil {
			return err
		}
		if err := b.checkAgainst(purposes); err != nil {
			return err
		}
		before, err := s.bannerSettings(tx, b.TenantID, b.PropertyID)
		if err != nil {
			return err
		}
		b.UpdatedAt = &now
		if err := tx.Save(&bannerRow{TenantID: b.TenantID, PropertyID: b.PropertyID, Settings: toJSON(&b),
			UpdatedAt: now.UnixMilli()}).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, b.TenantID, actor, "banner.update", "property", b.PropertyID, before, &b, now)
	})
	if err != nil {
		return nil, err
	}
	s.invalidate(b.TenantID)
	return &b, nil
}

// checkBannerUse refuses a change of a purpose's level or legal basis that a property's
// banner settings do not allow (422 naming the property): the settings are checked when
// saved, and must not become wrong under them. Above all, a purpose mapped to advertising
// or personalisation types must not become strictly necessary: the widget grants a
// necessary purpose's types to everyone without asking.
func checkBannerUse(tx *gorm.DB, before, p *Purpose) error {
	if p.Level == before.Level && p.LegalBasis == before.LegalBasis {
		return nil
	}
	field := "legal_basis"
	if p.LegalBasis == before.LegalBasis {
		field = "level"
	}
	var rows []bannerRow
	if err := tx.Where("tenant_id = ?", p.TenantID).Order("property_id").Find(&rows).Error; err != nil {
		return err
	}
	var v identity.Validator
	for i := range rows {
		b := rows[i].domain()
		if why := bannerConflict(b, p); why != "" {
			var name string
			if err := tx.Raw("SELECT name FROM properties WHERE tenant_id = ? AND id = ?", p.TenantID, b.PropertyID).
				Scan(&name).Error; err != nil {
				return err
			}
			v.Check(false, field, "the banner of property "+strconv.Quote(name)+" ("+b.PropertyID+") "+why+
				". Change that banner's settings first")
		}
	}
	return unprocessable(v.Err())
}

// bannerConflict says why banner b's settings would not allow purpose p as it is now, or "".
func bannerConflict(b *BannerSettings, p *Purpose) string {
	if why := askProblems(p); len(why) > 0 && slices.Contains(b.Purposes, p.Key) {
		return "asks it: " + why[0]
	}
	if types := b.ConsentMode[p.Key]; len(types) > 0 {
		if why := consentModeProblems(p, types); len(why) > 0 {
			return "maps it to Consent Mode: " + why[0]
		}
	}
	return ""
}

// askProblems says why a banner may not ask purpose p: it asks device-level purposes that
// rest on consent or legitimate interest. Saving settings (checkAgainst) and changing a
// purpose a banner uses (checkBannerUse) both keep to these rules.
func askProblems(p *Purpose) []string {
	var out []string
	if p.Level != LevelDevice {
		out = append(out, "a banner asks device-level purposes only; person-level ones are asked where the person is identified")
	}
	if p.LegalBasis == BasisNecessary {
		out = append(out, "strictly necessary storage is listed, never asked")
	}
	return out
}

// consentModeProblems says why a banner may not map purpose p to Consent Mode types: the
// types are about storage on the device, and strictly necessary storage, granted unasked,
// may stand only for functionality and security (consentModeAllowed).
func consentModeProblems(p *Purpose, types []string) []string {
	var out []string
	if p.Level != LevelDevice {
		out = append(out, "Consent Mode covers device-level purposes only")
	}
	for _, t := range types {
		switch {
		case consentModeAllowed(p.LegalBasis, t):
		case p.LegalBasis == BasisNecessary:
			out = append(out, "strictly necessary storage can stand only for functionality_storage and security_storage, never "+t)
		default:
			out = append(out, "only strictly necessary storage stands for "+t)
		}
	}
	return out
}

func (s *Service) purposesByKey(tx *gorm.DB, tenantID string) (map[string]*Purpose, error) {
	var rows []purposeRow
	if err := tx.Where("tenant_id = ?", tenantID).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string]*Purpose, len(rows))
	for i := range rows {
		out[rows[i].Key] = rows[i].domain()
	}
	return out, nil
}

// Inventory returns a purpose's vendors and storage items (empty until set).
func (s *Service) Inventory(ctx context.Context, tenantID, idOrKey string) (*Inventory, error) {
	db := s.db.Read.WithContext(ctx)
	p, err := s.purpose(db, tenantID, idOrKey)
	if err != nil {
		return nil, err
	}
	return s.inventory(db, p)
}

func (s *Service) inventory(db *gorm.DB, p *Purpose) (*Inventory, error) {
	var r inventoryRow
	err := db.Where("tenant_id = ? AND purpose_id = ?", p.TenantID, p.ID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		inv := &Inventory{PurposeKey: p.Key}
		inv.normalize()
		return inv, nil
	}
	if err != nil {
		return nil, err
	}
	return r.domain(p.Key), nil
}

// PutInventory replaces a purpose's inventory. Withdrawal in the banner deletes the
// first-party cookies it lists, so it is worth keeping complete.
func (s *Service) PutInventory(ctx context.Context, tenantID, idOrKey string, inv Inventory, actor identity.Actor) (*Inventory, error) {
	inv.normalize()
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := s.purpose(tx, tenantID, idOrKey)
		if err != nil {
			return err
		}
		if p.Level != LevelDevice && len(inv.Storage) > 0 {
			return identity.Unprocessable("storage", "storage items belong to device-level purposes")
		}
		before, err := s.inventory(tx, p)
		if err != nil {
			return err
		}
		inv.PurposeKey, inv.UpdatedAt = p.Key, &now
		if err := tx.Save(&inventoryRow{TenantID: tenantID, PurposeID: p.ID, Inventory: toJSON(&inv),
			UpdatedAt: now.UnixMilli()}).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, tenantID, actor, "inventory.update", "purpose", p.ID, before, &inv, now)
	})
	if err != nil {
		return nil, err
	}
	s.invalidate(tenantID)
	return &inv, nil
}
