package identity

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"time"
)

// Idempotency of admin and server POSTs (the consent writer stores its own answers in the
// same table, inside its ledger transaction). A request first claims its key with a pending
// row; a concurrent duplicate then sees the claim and is told to retry; the answer replaces
// the claim when the request succeeds, and the claim is released when it fails. A claim
// left pending by a request that died with its instance is taken over by a retry after
// IdempotencyAbandoned. Stored answers are encrypted: they may hold a secret shown once.

// IdempotencyTTL is how long an answer is kept for retries.
const IdempotencyTTL = 24 * time.Hour

// IdempotencyAbandoned is how long a claim may stay pending before a retry takes it over.
// A live request has given up by then: its handler runs under IdempotencyRunLimit, so a
// claim this old belongs to an instance that crashed or was killed half-way, and would
// otherwise block its key for IdempotencyTTL. (The server's WriteTimeout is no such bound:
// it stops the answer, not the handler, nor does it cancel the handler's context.)
const IdempotencyAbandoned = 2 * time.Minute

// IdempotencyRunLimit is how long a request that holds a claim may run: the claiming
// middleware cancels the handler's context then. It is well below IdempotencyAbandoned, so
// a slow request (a connector's reconcile) cannot outlive its claim and have a retry run
// the same work a second time; the margin covers the bookkeeping and clock skew between
// instances.
const IdempotencyRunLimit = IdempotencyAbandoned / 2

const idempotencyPending = 0

// StoredAnswer is an answer kept for retries (or, while Pending, the claim of the first
// request with its key).
type StoredAnswer struct {
	RequestHash string
	Status      int
	// Header holds the answer's headers that a retry must see again (Content-Type,
	// Cache-Control); nil for answers stored before they were kept.
	Header map[string]string
	Body   []byte
}

// Pending reports whether the first request with this key is still running.
func (a *StoredAnswer) Pending() bool { return a.Status == idempotencyPending }

// IdempotencyClaim is a request's hold on its key until it completes or releases it.
type IdempotencyClaim struct {
	TenantID, Route, Key string
	// at is the claim row's created_at: once a retry has taken an abandoned claim over, the
	// request that made it can neither complete nor release it.
	at int64
}

type idempotencyRow struct {
	RequestHash string
	Status      int
	Response    []byte
	ResponseKID string `gorm:"column:response_kid"`
	CreatedAt   int64
}

// ClaimIdempotency claims (tenant, route, key) for a request. It returns the claim when the
// key is new (or its earlier claim was abandoned), else the stored answer (possibly
// pending) of an earlier request.
func (s *Service) ClaimIdempotency(ctx context.Context, tenantID, route, key, requestHash string) (*IdempotencyClaim, *StoredAnswer, error) {
	now := s.now()
	claim := &IdempotencyClaim{TenantID: tenantID, Route: route, Key: key, at: now.UnixMilli()}
	res := s.db.Write.WithContext(ctx).Exec(`INSERT INTO idempotency_keys
		(tenant_id, route, key, request_hash, status, response, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, route, key) DO NOTHING`, tenantID, route, key, requestHash, idempotencyPending, []byte{},
		claim.at, now.Add(IdempotencyTTL).UnixMilli())
	if res.Error != nil {
		return nil, nil, res.Error
	}
	if res.RowsAffected == 1 {
		return claim, nil, nil
	}
	var rows []idempotencyRow
	if err := s.db.Write.WithContext(ctx).Raw(`SELECT request_hash, status, response, COALESCE(response_kid, '') AS response_kid,
		created_at FROM idempotency_keys WHERE tenant_id = ? AND route = ? AND key = ?`, tenantID, route, key).Scan(&rows).Error; err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 { // released between our insert and select: try once more
		return s.ClaimIdempotency(ctx, tenantID, route, key, requestHash)
	}
	r := rows[0]
	if r.Status != idempotencyPending {
		header, body, err := s.OpenAnswer(ctx, tenantID, route, key, r.ResponseKID, r.Response)
		if err != nil {
			return nil, nil, err
		}
		return nil, &StoredAnswer{RequestHash: r.RequestHash, Status: r.Status, Header: header, Body: body}, nil
	}
	if now.Sub(time.UnixMilli(r.CreatedAt)) <= IdempotencyAbandoned {
		return nil, &StoredAnswer{RequestHash: r.RequestHash, Status: r.Status}, nil
	}
	// Abandoned: like a released claim, the key was never used up, so this request takes it
	// over with its own body. Only one retry wins the update; the others see its claim.
	res = s.db.Write.WithContext(ctx).Exec(`UPDATE idempotency_keys SET request_hash = ?, created_at = ?, expires_at = ?
		WHERE tenant_id = ? AND route = ? AND key = ? AND status = ? AND created_at = ?`,
		requestHash, claim.at, now.Add(IdempotencyTTL).UnixMilli(), tenantID, route, key, idempotencyPending, r.CreatedAt)
	if res.Error != nil {
		return nil, nil, res.Error
	}
	if res.RowsAffected == 1 {
		return claim, nil, nil
	}
	return s.ClaimIdempotency(ctx, tenantID, route, key, requestHash)
}

// CompleteIdempotency stores the answer of a claimed request, encrypted.
func (s *Service) CompleteIdempotency(ctx context.Context, c *IdempotencyClaim, status int, header map[string]string, body []byte) error {
	kid, ct, err := s.SealAnswer(c.TenantID, c.Route, c.Key, header, body)
	if err != nil {
		return err
	}
	return s.db.Write.WithContext(ctx).Exec(`UPDATE idempotency_keys SET status = ?, response = ?, response_kid = ?
		WHERE tenant_id = ? AND route = ? AND key = ? AND status = ? AND created_at = ?`,
		status, ct, kid, c.TenantID, c.Route, c.Key, idempotencyPending, c.at).Error
}

// ReleaseIdempotency drops the claim of a request that failed, so it can be retried.
func (s *Service) ReleaseIdempotency(ctx context.Context, c *IdempotencyClaim) error {
	return s.db.Write.WithContext(ctx).Exec(`DELETE FROM idempotency_keys
		WHERE tenant_id = ? AND route = ? AND key = ? AND status = ? AND created_at = ?`,
		c.TenantID, c.Route, c.Key, idempotencyPending, c.at).Error
}

// SealAnswer encrypts an answer for idempotency_keys.response (and response_kid) with the
// active encryption key, bound to its row. The plaintext is the headers as "Name: value"
// lines, an empty line, and the body, as in HTTP.
func (s *Service) SealAnswer(tenantID, route, key string, header map[string]string, body []byte) (kid string, ciphertext []byte, err error) {
	names := make([]string, 0, len(header))
	size := len(body) + 2
	for name, value := range header {
		if strings.ContainsAny(name, ":\r\n") || strings.ContainsAny(value, "\r\n") {
			return "", nil, errors.New("idempotency: header " + name + " cannot be stored")
		}
		names = append(names, name)
		size += len(name) + len(value) + 4
	}
	sort.Strings(names)
	plain := make([]byte, 0, size)
	for _, name := range names {
		plain = append(append(append(append(plain, name...), ": "...), header[name]...), "\r\n"...)
	}
	plain = append(append(plain, "\r\n"...), body...)
	return s.keys.Encrypt(plain, answerAAD(tenantID, route, key))
}

// OpenAnswer decrypts a stored answer with the key it names (old keys stay readable after
// a rotation). An answer stored before answers were encrypted has no kid: it is the plain
// body, without headers.
func (s *Service) OpenAnswer(ctx context.Context, tenantID, route, key, kid string, stored []byte) (header map[string]string, body []byte, err error) {
	if kid == "" {
		return nil, stored, nil
	}
	plain, err := s.keys.Decrypt(ctx, kid, stored, answerAAD(tenantID, route, key))
	if err != nil {
		return nil, nil, err
	}
	header = map[string]string{}
	for {
		line, rest, ok := bytes.Cut(plain, []byte("\r\n"))
		if !ok {
			return nil, nil, errors.New("idempotency: stored answer is damaged")
		}
		plain = rest
		if len(line) == 0 {
			return header, plain, nil
		}
		name, value, _ := strings.Cut(string(line), ": ")
		header[name] = value
	}
}

func answerAAD(tenantID, route, key string) []byte {
	return []byte("idempotency|" + tenantID + "|" + route + "|" + key)
}
