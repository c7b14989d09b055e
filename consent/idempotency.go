package consent

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Idempotency: a POST with an Idempotency-Key is answered once; a retry with the same key
// (per tenant and route) gets the same answer and the same receipt and writes nothing; the
// same key with a different body is refused. The key and the answer are written in the
// same transaction as the ledger entries, so there is no window where one exists without
// the other. Keys are kept for at least idempotencyTTL.

const idempotencyTTL = 24 * time.Hour

var errIdempotencyMismatch = &identity.Error{Code: identity.EUnprocessable,
	Message: "this Idempotency-Key was used with a different request",
	Fields:  []identity.FieldError{{Field: "Idempotency-Key", Message: "was used with a different request body"}}}

type storedAnswer struct {
	RequestHash string
	Response    []byte
}

func (s *Service) storedAnswer(ctx context.Context, db *gorm.DB, tenantID string, k *IdempotencyKey) (*storedAnswer, error) {
	var rows []storedAnswer
	if err := db.WithContext(ctx).Raw("SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = ? AND route = ? AND key = ?",
		tenantID, k.Route, k.Key).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func answer(a *storedAnswer, k *IdempotencyKey) (*Outcome, error) {
	if a.RequestHash != k.RequestHash {
		return nil, errIdempotencyMismatch
	}
	var out Outcome
	if err := json.Unmarshal(a.Response, &out); err != nil {
		return nil, err
	}
	out.Replayed, out.JSON = true, a.Response
	return &out, nil
}

// replay answers a retried request from its stored answer; found is false when the key
// is new.
func (s *Service) replay(ctx context.Context, tenantID string, k *IdempotencyKey) (out *Outcome, found bool, err error) {
	a, err := s.storedAnswer(ctx, s.db.Read, tenantID, k)
	if err != nil || a == nil {
		return nil, false, err
	}
	out, err = answer(a, k)
	return out, true, err
}

// replayAfterConflict answers a job whose key another request took while both were in
// flight.
func (s *Service) replayAfterConflict(in *interaction) (*Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := s.storedAnswer(ctx, s.db.Write, in.tenantID, in.idem)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, identity.Errorf(identity.EConflict, "a request with this Idempotency-Key is in progress; retry")
	}
	return answer(a, in.idem)
}

// insertIdempotency stores the answers and returns the keys that were already taken.
func insertIdempotency(tx *gorm.DB, rows [][]any) (map[string]bool, error) {
	var b strings.Builder
	b.WriteString("INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, status, response, created_at, expires_at) VALUES ")
	args := make([]any, 0, len(rows)*8)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r...)
	}
	b.WriteString(" ON CONFLICT (tenant_id, route, key) DO NOTHING RETURNING tenant_id, route, key")
	var inserted []struct{ TenantID, Route, Key string }
	if err := tx.Raw(b.String(), args...).Scan(&inserted).Error; err != nil {
		return nil, err
	}
	if len(inserted) == len(rows) {
		return nil, nil
	}
	ok := map[string]bool{}
	for _, r := range inserted {
		ok[r.TenantID+"\x00"+r.Route+"\x00"+r.Key] = true
	}
	taken := map[string]bool{}
	for _, r := range rows {
		k := r[0].(string) + "\x00" + r[1].(string) + "\x00" + r[2].(string)
		if !ok[k] {
			taken[k] = true
		}
	}
	return taken, nil
}
