package consent

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Row structs: the database shape of consent's types.

type purposeRow struct {
	TenantID         string `gorm:"primaryKey"`
	ID               string `gorm:"primaryKey"`
	Key              string
	Level            string
	LegalBasis       string
	DPVIRI           string `gorm:"column:dpv_iri"`
	RecipientIDs     string
	ReaskMonths      int
	ScopeBrandIDs    string
	ScopePropertyIDs string
	GPCOptOut        bool `gorm:"column:gpc_opt_out"`
	DoubleOptIn      bool `gorm:"column:double_opt_in"`
	LatestVersion    int
	MaterialVersion  int
	OutdatedSwept    int
	ReaskApplied     int
	CreatedAt        int64 `gorm:"autoCreateTime:false"`
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (purposeRow) TableName() string { return "purposes" }

func (r *purposeRow) domain() *Purpose {
	p := &Purpose{TenantID: r.TenantID, ID: r.ID, Key: r.Key, Level: r.Level, LegalBasis: r.LegalBasis,
		DPVPurpose: r.DPVIRI, ReaskMonths: r.ReaskMonths, GPCOptOut: r.GPCOptOut, DoubleOptIn: r.DoubleOptIn,
		LatestVersion: r.LatestVersion, MaterialVersion: r.MaterialVersion, OutdatedSwept: r.OutdatedSwept,
		ReaskApplied: r.ReaskApplied, CreatedAt: msTime(r.CreatedAt), UpdatedAt: msTime(r.UpdatedAt)}
	p.RecipientIDs = jsonStrings(r.RecipientIDs)
	p.ScopeBrandIDs = jsonStrings(r.ScopeBrandIDs)
	p.ScopePropertyIDs = jsonStrings(r.ScopePropertyIDs)
	return p
}

func purposeToRow(p *Purpose) *purposeRow {
	return &purposeRow{TenantID: p.TenantID, ID: p.ID, Key: p.Key, Level: p.Level, LegalBasis: p.LegalBasis,
		DPVIRI: p.DPVPurpose, RecipientIDs: toJSON(nonNilStrings(p.RecipientIDs)), ReaskMonths: p.ReaskMonths,
		ScopeBrandIDs: toJSON(nonNilStrings(p.ScopeBrandIDs)), ScopePropertyIDs: toJSON(nonNilStrings(p.ScopePropertyIDs)),
		GPCOptOut: p.GPCOptOut, DoubleOptIn: p.DoubleOptIn, LatestVersion: p.LatestVersion, MaterialVersion: p.MaterialVersion,
		OutdatedSwept: p.OutdatedSwept, ReaskApplied: p.ReaskApplied, CreatedAt: p.CreatedAt.UnixMilli(), UpdatedAt: p.UpdatedAt.UnixMilli()}
}

type versionRow struct {
	TenantID    string `gorm:"primaryKey"`
	PurposeID   string `gorm:"primaryKey"`
	Number      int    `gorm:"primaryKey;autoIncrement:false"`
	Status      string
	Material    bool
	Texts       string
	Details     string
	ContentHash string
	TextHashes  string
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
	PublishedAt *int64
}

func (versionRow) TableName() string { return "purpose_versions" }

func (r *versionRow) domain(purposeKey string) *Version {
	v := &Version{TenantID: r.TenantID, PurposeID: r.PurposeID, PurposeKey: purposeKey, Number: r.Number,
		Status: r.Status, Material: r.Material, ContentHash: r.ContentHash, CreatedAt: msTime(r.CreatedAt)}
	_ = json.Unmarshal([]byte(r.Texts), &v.Texts)
	_ = json.Unmarshal([]byte(r.Details), &v.Details)
	_ = json.Unmarshal([]byte(r.TextHashes), &v.TextHashes)
	v.Details.DataCategories = nonNilStrings(v.Details.DataCategories)
	if v.Details.Recipients == nil {
		v.Details.Recipients = []RecipientRef{}
	}
	if r.PublishedAt != nil {
		t := msTime(*r.PublishedAt)
		v.PublishedAt = &t
	}
	return v
}

func versionToRow(v *Version) *versionRow {
	r := &versionRow{TenantID: v.TenantID, PurposeID: v.PurposeID, Number: v.Number, Status: v.Status,
		Material: v.Material, Texts: toJSON(v.Texts), Details: toJSON(v.Details), ContentHash: v.ContentHash,
		TextHashes: toJSON(v.TextHashes), CreatedAt: v.CreatedAt.UnixMilli()}
	if v.PublishedAt != nil {
		ms := v.PublishedAt.UnixMilli()
		r.PublishedAt = &ms
	}
	return r
}

type recipientRow struct {
	TenantID         string `gorm:"primaryKey"`
	ID               string `gorm:"primaryKey"`
	Name             string
	LegalName        string
	Kind             string
	Country          string
	PrivacyPolicyURL string
	BrandID          string
	CreatedAt        int64 `gorm:"autoCreateTime:false"`
	UpdatedAt        int64 `gorm:"autoUpdateTime:false"`
}

func (recipientRow) TableName() string { return "recipients" }

func (r *recipientRow) domain() *Recipient {
	return &Recipient{TenantID: r.TenantID, ID: r.ID, Name: r.Name, LegalName: r.LegalName, Kind: r.Kind,
		Country: r.Country, PrivacyPolicyURL: r.PrivacyPolicyURL, BrandID: r.BrandID,
		CreatedAt: msTime(r.CreatedAt), UpdatedAt: msTime(r.UpdatedAt)}
}

func recipientToRow(r *Recipient) *recipientRow {
	return &recipientRow{TenantID: r.TenantID, ID: r.ID, Name: r.Name, LegalName: r.LegalName, Kind: r.Kind,
		Country: r.Country, PrivacyPolicyURL: r.PrivacyPolicyURL, BrandID: r.BrandID,
		CreatedAt: r.CreatedAt.UnixMilli(), UpdatedAt: r.UpdatedAt.UnixMilli()}
}

// eventColumns are consent_events' columns in the order eventPtrs gives their fields.
var eventColumns = sqldb.Cols(
	"tenant_id:text", "subject_id:text", "seq:int8", "id:text", "kind:text",
	"pseudonym:text", "purpose_key:text", "purpose_version:int8", "version_hash:text", "text_hash:text",
	"decision:text", "property_id:text", "channel:text", "method:text", "agent:text",
	"language:text", "ui_hash:text", "actor:text", "interaction_id:text", "reason:text",
	"ref:text", "server_time:int8", "client_time:int8", "prev_hash:text", "hash:text",
)

// eventSelect lists the columns to scan into an Event, in eventPtrs' order.
var eventSelect = strings.Join(sqldb.Names(eventColumns), ", ")

// eventPtrs points at e's fields in eventColumns' order: the one list of them that
// inserting (eventArgs) and scanning share.
func eventPtrs(e *Event) []any {
	return []any{&e.TenantID, &e.SubjectID, &e.Seq, &e.ID, &e.Kind, &e.Pseudonym, &e.PurposeKey, &e.PurposeVersion,
		&e.VersionHash, &e.TextHash, &e.Decision, &e.PropertyID, &e.Channel, &e.Method, &e.Agent, &e.Language, &e.UIHash,
		&e.Actor, &e.InteractionID, &e.Reason, &e.Ref, &e.ServerTime, &e.ClientTime, &e.PrevHash, &e.Hash}
}

// eventArgs is e's values in eventColumns' order, to insert.
func eventArgs(e *Event) []any {
	out := eventPtrs(e)
	for i, p := range out {
		switch p := p.(type) {
		case *string:
			out[i] = *p
		case *int64:
			out[i] = *p
		case *int:
			out[i] = *p
		default:
			panic(fmt.Sprintf("consent: eventArgs: a field of type %T", p))
		}
	}
	return out
}

var stateColumns = sqldb.Cols(
	"tenant_id:text", "subject_id:text", "purpose_id:text", "purpose_key:text", "state:text",
	"version:int8", "decided_at:int8", "expires_at:int8", "event_seq:int8", "method:text",
)

const stateUpsert = ` ON CONFLICT (tenant_id, subject_id, purpose_id) DO UPDATE SET purpose_key = excluded.purpose_key,
	state = excluded.state, version = excluded.version, decided_at = excluded.decided_at,
	expires_at = excluded.expires_at, event_seq = excluded.event_seq, method = excluded.method`

const headUpsert = ` ON CONFLICT (tenant_id, subject_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`

var headColumns = sqldb.Cols("tenant_id:text", "subject_id:text", "seq:int8", "hash:text")

var domainEventColumns = sqldb.Cols(
	"tenant_id:text", "id:text", "type:text", "schema_version:int8", "subject_id:text",
	"subject_seq:int8", "payload:text", "created_at:int8",
)

var receiptColumns = sqldb.Cols("tenant_id:text", "id:text", "subject_id:text", "jws:text", "created_at:int8")

var contextColumns = sqldb.Cols(
	"tenant_id:text", "interaction_id:text", "subject_id:text", "ip_prefix:text", "user_agent:text",
	"expires_at:int8",
)

func msTime(v int64) time.Time { return time.UnixMilli(v).UTC() }

func jsonStrings(s string) []string {
	var out []string
	_ = json.Unmarshal([]byte(s), &out)
	if out == nil {
		out = []string{}
	}
	return out
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
