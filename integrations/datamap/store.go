package datamap

import (
	"encoding/json"
	"time"
)

// Row structs: the database shape of the domain types, unexported and kept here.

type systemRow struct {
	TenantID            string `gorm:"primaryKey"`
	ID                  string `gorm:"primaryKey"`
	Name                string
	Description         string
	ConnectionKind      *string
	ConnectionID        *string
	DataCategories      string
	OtherDataCategories string
	Purposes            string
	OtherPurposes       string
	LegalBases          string
	Recipients          string
	Locations           string
	Transfers           string
	RetentionPreset     string
	RetentionYears      int
	RetentionMonths     int
	RetentionDays       int
	RetentionAnchor     string
	RetentionFyEnd      string `gorm:"column:retention_fy_end"`
	RetentionReference  string
	RetentionNotes      string
	DSRMethod           string `gorm:"column:dsr_method"`
	DSROwnerName        string `gorm:"column:dsr_owner_name"`
	DSROwnerEmail       string `gorm:"column:dsr_owner_email"`
	DSRInstructions     string `gorm:"column:dsr_instructions"`
	CreatedAt           int64  `gorm:"autoCreateTime:false"`
	UpdatedAt           int64  `gorm:"autoUpdateTime:false"`
}

func (systemRow) TableName() string { return "data_map_systems" }

func list[T any](s string) []T {
	out := []T{}
	_ = json.Unmarshal([]byte(s), &out)
	if out == nil {
		out = []T{}
	}
	return out
}

func text(v any) string {
	b, _ := json.Marshal(v)
	if string(b) == "null" {
		return "[]"
	}
	return string(b)
}

func (r *systemRow) domain() *System {
	s := &System{TenantID: r.TenantID, ID: r.ID, Name: r.Name, Description: r.Description,
		DataCategories: list[string](r.DataCategories), OtherDataCategories: list[string](r.OtherDataCategories),
		Purposes: list[string](r.Purposes), OtherPurposes: list[string](r.OtherPurposes),
		LegalBases: list[string](r.LegalBases), Recipients: list[Recipient](r.Recipients),
		Locations: list[string](r.Locations), Transfers: list[Transfer](r.Transfers),
		Retention: Retention{Preset: r.RetentionPreset, Years: r.RetentionYears, Months: r.RetentionMonths,
			Days: r.RetentionDays, Anchor: r.RetentionAnchor, FinancialYearEnd: r.RetentionFyEnd,
			LegalReference: r.RetentionReference, Notes: r.RetentionNotes},
		DSR:       DSRRoute{Method: r.DSRMethod, Instructions: r.DSRInstructions},
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	if r.ConnectionKind != nil && r.ConnectionID != nil {
		s.Connection = &Connection{Kind: *r.ConnectionKind, ID: *r.ConnectionID}
	}
	if r.DSROwnerName != "" || r.DSROwnerEmail != "" {
		s.DSR.Owner = &Owner{Name: r.DSROwnerName, Email: r.DSROwnerEmail}
	}
	return s
}

func systemToRow(s *System) *systemRow {
	r := &systemRow{TenantID: s.TenantID, ID: s.ID, Name: s.Name, Description: s.Description,
		DataCategories: text(s.DataCategories), OtherDataCategories: text(s.OtherDataCategories),
		Purposes: text(s.Purposes), OtherPurposes: text(s.OtherPurposes), LegalBases: text(s.LegalBases),
		Recipients: text(s.Recipients), Locations: text(s.Locations), Transfers: text(s.Transfers),
		RetentionPreset: s.Retention.Preset, RetentionYears: s.Retention.Years, RetentionMonths: s.Retention.Months,
		RetentionDays: s.Retention.Days, RetentionAnchor: s.Retention.Anchor, RetentionFyEnd: s.Retention.FinancialYearEnd,
		RetentionReference: s.Retention.LegalReference, RetentionNotes: s.Retention.Notes,
		DSRMethod: s.DSR.Method, DSRInstructions: s.DSR.Instructions,
		CreatedAt: s.CreatedAt.UnixMilli(), UpdatedAt: s.UpdatedAt.UnixMilli()}
	if c := s.Connection; c != nil {
		kind, id := c.Kind, c.ID
		r.ConnectionKind, r.ConnectionID = &kind, &id
	}
	if o := s.DSR.Owner; o != nil {
		r.DSROwnerName, r.DSROwnerEmail = o.Name, o.Email
	}
	return r
}
