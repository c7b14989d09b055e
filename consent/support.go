package consent

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// SubjectLookup is what support (a call-centre agent, the DPO) sees of a person or device
// found by one of its identifiers.
type SubjectLookup struct {
	Subject     string                `json:"subject"`
	Kind        string                `json:"kind"`
	Identifiers []identity.Identifier `json:"identifiers"`
	State       []PurposeState        `json:"state"`
	History     []*Event              `json:"history"` // the newest events, its own and merged devices', oldest first
	AccessID    string                `json:"access_id"`
}

// AccessEntry is one lookup in the access log.
type AccessEntry struct {
	ID             string    `json:"id"`
	At             time.Time `json:"at"`
	Actor          string    `json:"actor"`
	Subject        string    `json:"subject,omitempty"`
	IdentifierKind string    `json:"identifier_kind"`
	Reason         string    `json:"reason"`
	Found          bool      `json:"found"`
}

const lookupHistory = 50

// LookupSubject finds a subject by any identifier, with its identifiers (decrypted), its
// state and its newest events. Every lookup, found or not, is written to the access log
// first — who looked, when, with which kind of identifier and why — so no lookup is ever
// unrecorded.
func (s *Service) LookupSubject(ctx context.Context, tenantID string, id identity.Identifier, reason string, actor identity.Actor) (*SubjectLookup, error) {
	id = id.Normalized()
	var v identity.Validator
	reason = strings.TrimSpace(reason)
	v.Check(len([]rune(reason)) >= 3 && len([]rune(reason)) <= 500, "reason", "say why you look this person up (3–500 characters): it is kept in the access log")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := id.Validate("identifier"); err != nil {
		return nil, err
	}
	subj, err := s.ids.FindSubject(ctx, tenantID, id)
	found := err == nil
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return nil, err
	}
	entry := accessRow{TenantID: tenantID, ID: identity.NewID(), At: s.now().UnixMilli(), Actor: string(actor),
		IdentifierKind: id.Kind, Reason: reason, Found: found}
	if found {
		entry.SubjectID = subj.ID
	}
	if err := s.db.Write.WithContext(ctx).Create(&entry).Error; err != nil {
		return nil, err
	}
	if !found {
		return nil, identity.NotFound("subject")
	}
	out := &SubjectLookup{Subject: subj.Pseudonym, Kind: subj.Kind, Identifiers: []identity.Identifier{}, AccessID: entry.ID}
	for _, kind := range identity.IdentifierKinds {
		vals, err := s.ids.IdentifierValues(ctx, tenantID, subj.ID, kind)
		if err != nil {
			return nil, err
		}
		out.Identifiers = append(out.Identifiers, vals...)
	}
	st, err := s.SubjectState(ctx, tenantID, id, nil)
	if err != nil {
		return nil, err
	}
	out.State = st.State
	if out.History, err = s.newestEvents(ctx, tenantID, subj.ID, lookupHistory); err != nil {
		return nil, err
	}
	return out, nil
}

// newestEvents returns the newest events of the subject's chain and of the chains merged
// into it (a device's anonymous history), in time order; each event names its chain's
// pseudonym.
func (s *Service) newestEvents(ctx context.Context, tenantID, subjectID string, n int) ([]*Event, error) {
	db := s.db.Read.WithContext(ctx)
	var merged []string
	if err := db.Raw("SELECT id FROM subjects WHERE tenant_id = ? AND merged_into = ?", tenantID, subjectID).Scan(&merged).Error; err != nil {
		return nil, err
	}
	var events []*Event
	if err := db.Table("consent_events").Select(eventSelect).Where("tenant_id = ? AND subject_id IN ?", tenantID, append(merged, subjectID)).
		Order("server_time DESC, seq DESC").Limit(n).Scan(&events).Error; err != nil {
		return nil, err
	}
	slices.Reverse(events)
	if events == nil {
		events = []*Event{}
	}
	return events, nil
}

type accessRow struct {
	TenantID       string `gorm:"primaryKey"`
	ID             string `gorm:"primaryKey"`
	At             int64
	Actor          string
	SubjectID      string
	IdentifierKind string
	Reason         string
	Found          bool
}

func (accessRow) TableName() string { return "subject_access_log" }

// AccessLog returns lookups, newest first: all of the tenant's, or those of one subject
// (named by its pseudonym). before is the id of the last entry of the previous page.
func (s *Service) AccessLog(ctx context.Context, tenantID, subject, before string, limit int) ([]*AccessEntry, string, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	q := s.db.Read.WithContext(ctx).Table("subject_access_log AS l").
		Select("l.id, l.at, l.actor, l.identifier_kind, l.reason, l.found, COALESCE(s.pseudonym, '') AS pseudonym").
		Joins("LEFT JOIN subjects s ON s.tenant_id = l.tenant_id AND s.id = l.subject_id").
		Where("l.tenant_id = ?", tenantID)
	if subject != "" {
		q = q.Where("s.pseudonym = ?", subject)
	}
	if before != "" {
		q = q.Where("l.id < ?", before)
	}
	var rows []struct {
		ID, Actor, IdentifierKind, Reason, Pseudonym string
		At                                           int64
		Found                                        bool
	}
	if err := q.Order("l.id DESC").Limit(limit + 1).Scan(&rows).Error; err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	out := make([]*AccessEntry, len(rows))
	for i, r := range rows {
		out[i] = &AccessEntry{ID: r.ID, At: msTime(r.At), Actor: r.Actor, Subject: r.Pseudonym, IdentifierKind: r.IdentifierKind,
			Reason: r.Reason, Found: r.Found}
	}
	return out, next, nil
}
