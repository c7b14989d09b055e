package identity

import (
	"context"
	"time"
)

// Idempotency of admin and server POSTs (the consent writer stores its own answers in the
// same table, inside its ledger transaction). A request first claims its key with a pending
// row; a concurrent duplicate then sees the claim and is told to retry; the answer replaces
// the claim when the request succeeds, and the claim is released when it fails.

// IdempotencyTTL is how long an answer is kept for retries.
const IdempotencyTTL = 24 * time.Hour

const idempotencyPending = 0

// StoredAnswer is an answer kept for retries.
type StoredAnswer struct {
	RequestHash string
	Status      int
	Response    []byte
}

// Pending reports whether the first request with this key is still running.
func (a *StoredAnswer) Pending() bool { return a.Status == idempotencyPending }

// ClaimIdempotency claims (tenant, route, key) for a request. It returns nil when the claim
// is new, or the stored answer (possibly pending) of an earlier request.
func (s *Service) ClaimIdempotency(ctx context.Context, tenantID, route, key, requestHash string) (*StoredAnswer, error) {
	now := s.now()
	res := s.db.Write.WithContext(ctx).Exec(`INSERT INTO idempotency_keys
		(tenant_id, route, key, request_hash, status, response, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, route, key) DO NOTHING`, tenantID, route, key, requestHash, idempotencyPending, []byte{},
		now.UnixMilli(), now.Add(IdempotencyTTL).UnixMilli())
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 1 {
		return nil, nil
	}
	var rows []StoredAnswer
	if err := s.db.Write.WithContext(ctx).Raw(`SELECT request_hash, status, response FROM idempotency_keys
		WHERE tenant_id = ? AND route = ? AND key = ?`, tenantID, route, key).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 { // released between our insert and select: try once more
		return s.ClaimIdempotency(ctx, tenantID, route, key, requestHash)
	}
	return &rows[0], nil
}

// CompleteIdempotency stores the answer of a claimed request.
func (s *Service) CompleteIdempotency(ctx context.Context, tenantID, route, key string, status int, response []byte) error {
	return s.db.Write.WithContext(ctx).Exec(`UPDATE idempotency_keys SET status = ?, response = ?
		WHERE tenant_id = ? AND route = ? AND key = ? AND status = ?`, status, response, tenantID, route, key, idempotencyPending).Error
}

// ReleaseIdempotency drops the claim of a request that failed, so it can be retried.
func (s *Service) ReleaseIdempotency(ctx context.Context, tenantID, route, key string) error {
	return s.db.Write.WithContext(ctx).Exec(`DELETE FROM idempotency_keys
		WHERE tenant_id = ? AND route = ? AND key = ? AND status = ?`, tenantID, route, key, idempotencyPending).Error
}
