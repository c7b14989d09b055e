package consent

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Idempotency: a POST with an Idempotency-Key is answered once; a retry with the same key
// (per tenant and route) gets the same answer and the same receipt and writes nothing; the
// same key with a different body is refused. The key and the answer are written in the
// same transaction as the ledger entries, so there is no window where one exists without
// the other. Keys are kept for at least idempotencyTTL.

const idempotencyTTL = 24 * time.Hour

// errIdempotencyMismatch is the admin routes' answer too (identityweb.Idempotent): one
// problem type for one mistake, whichever route it is made on.
var errIdempotencyMismatch = &identity.Error{Code: identity.EIdempotency,
	Message: "this Idempotency-Key was used with a different request",
	Fields:  []identity.FieldError{{Field: "Idempotency-Key", Message: "was used with a different request body"}}}

type storedAnswer struct {
	RequestHash string
	// Status is 0 while the key is only claimed (identity.ClaimIdempotency): its first
	// request is still running, and there is no answer to give yet.
	Status      int
	Response    []byte
	ResponseKID string `gorm:"column:response_kid"`
}

// storedAnswer reads the stored answer of a key, decrypted.
func (s *Service) storedAnswer(ctx context.Context, db *gorm.DB, tenantID string, k *IdempotencyKey) (*storedAnswer, error) {
	var rows []storedAnswer
	if err := db.WithContext(ctx).Raw(`SELECT request_hash, status, response, COALESCE(response_kid, '') AS response_kid
		FROM idempotency_keys WHERE tenant_id = ? AND route = ? AND key = ?`, tenantID, k.Route, k.Key).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("idempotency key")
	}
	a := &rows[0]
	if a.Status == 0 {
		return a, nil
	}
	_, body, err := s.ids.OpenAnswer(ctx, tenantID, k.Route, k.Key, a.ResponseKID, a.Response)
	if err != nil {
		return nil, err
	}
	a.Response = body
	return a, nil
}

// answer rebuilds the outcome of a stored answer: the answer itself, and the receipt of its
// interaction from the receipts table (gone once the evidence has been erased).
func (s *Service) answer(ctx context.Context, db *gorm.DB, tenantID string, a *storedAnswer, k *IdempotencyKey) (*Outcome, error) {
	if a.RequestHash != k.RequestHash {
		return nil, errIdempotencyMismatch
	}
	if a.Status == 0 {
		return nil, identity.ErrIdempotencyInProgress
	}
	var out Outcome
	if err := json.Unmarshal(a.Response, &out); err != nil {
		return nil, err
	}
	var jws []string
	if err := db.WithContext(ctx).Raw("SELECT jws FROM receipts WHERE tenant_id = ? AND id = ?", tenantID, out.InteractionID).
		Scan(&jws).Error; err != nil {
		return nil, err
	}
	out.Replayed, out.JSON = true, a.Response
	if len(jws) == 1 {
		out.Receipt, out.JSON = jws[0], withReceipt(a.Response, jws[0])
	}
	return &out, nil
}

// replayAfterConflict answers a job whose key another request took, before or while it
// was in flight. A key taken but without an answer (yet, or any more) is in progress:
// the same answer, 409 with Retry-After, as the admin routes give.
func (s *Service) replayAfterConflict(in *interaction) (*Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := s.storedAnswer(ctx, s.db.Write, in.tenantID, in.idem)
	if identity.IsCode(err, identity.ENotFound) {
		return nil, identity.ErrIdempotencyInProgress
	}
	if err != nil {
		return nil, err
	}
	return s.answer(ctx, s.db.Write, in.tenantID, a, in.idem)
}

const idempotencyReturning = " ON CONFLICT (tenant_id, route, key) DO NOTHING RETURNING tenant_id, route, key"

var idempotencyColumns = sqldb.Cols(
	"tenant_id:text", "route:text", "key:text", "request_hash:text", "status:int8",
	"response:bytea", "created_at:int8", "expires_at:int8", "response_kid:text",
)
