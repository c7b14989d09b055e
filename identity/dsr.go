package identity

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Data-subject requests. Only what opening an erasure request needs lives here for now; the
// request queue (assessment against legal retention, deadlines, answers) builds on it.

// DSR kinds and statuses.
const (
	DSRErasure = "erasure"
	DSROpen    = "open"
)

// OpenErasureRequest opens an erasure request for a subject in tx, unless one is open
// already; it returns the open request's id and whether this call opened it. source says
// where the request came from ("ciam:<issuer id>", "account").
func (s *Service) OpenErasureRequest(ctx context.Context, tx *gorm.DB, tenantID, subjectID, source string, at time.Time) (id string, opened bool, err error) {
	var open []string
	if err := tx.WithContext(ctx).Raw(`SELECT id FROM dsr_requests WHERE tenant_id = ? AND subject_id = ? AND kind = ? AND status = ?`,
		tenantID, subjectID, DSRErasure, DSROpen).Scan(&open).Error; err != nil {
		return "", false, err
	}
	if len(open) > 0 {
		return open[0], false, nil
	}
	id = NewID()
	if err := tx.WithContext(ctx).Exec(`INSERT INTO dsr_requests (tenant_id, id, subject_id, kind, status, source, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, tenantID, id, subjectID, DSRErasure, DSROpen, source, at.UnixMilli()).Error; err != nil {
		return "", false, err // a concurrent opening loses on dsr_requests_open; a retry finds it
	}
	return id, true, nil
}
