package identity_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

const idemRoute = "/v1/admin/api-keys"

// A stored answer is encrypted under the active key, replayed with its headers, readable
// after a rotation; an answer stored in the clear before encryption still replays.
func TestIdempotencyAnswerEncrypted(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		ids, keys := openService(t, db)
		claim, stored, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-1")
		if err != nil || claim == nil || stored != nil {
			t.Fatalf("claim: %v %v %v", claim, stored, err)
		}
		body := []byte(`{"id":"key_1","secret":"sk_top_secret"}`)
		header := map[string]string{"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
		if err := ids.CompleteIdempotency(ctx, claim, 201, header, body); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := db.Write.Raw("SELECT response FROM idempotency_keys WHERE key = 'k1'").Row().Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("sk_top_secret")) || bytes.Contains(raw, []byte("no-store")) {
			t.Fatalf("stored answer is readable: %q", raw)
		}
		replay := func(when string) {
			t.Helper()
			claim, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-1")
			if err != nil || claim != nil || a == nil || a.Pending() || a.Status != 201 || !bytes.Equal(a.Body, body) ||
				a.Header["Cache-Control"] != "no-store" || a.Header["Content-Type"] != header["Content-Type"] || a.RequestHash != "hash-1" {
				t.Fatalf("%s: %v %+v %v", when, claim, a, err)
			}
		}
		replay("before rotation")
		if _, err := keys.Rotate(ctx, keyring.Encryption); err != nil {
			t.Fatal(err)
		}
		replay("after rotation")

		// Moved to another key's row, the ciphertext does not open.
		if err := db.Write.Exec(`INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, status, response, response_kid,
			created_at, expires_at) SELECT tenant_id, route, 'k2', request_hash, status, response, response_kid, created_at, expires_at
			FROM idempotency_keys WHERE key = 'k1'`).Error; err != nil {
			t.Fatal(err)
		}
		if _, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k2", "hash-1"); err == nil {
			t.Fatalf("a copied row replayed: %+v", a)
		}

		// Written before answers were encrypted: no kid, the plain body.
		if err := db.Write.Exec(`INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, status, response, created_at, expires_at)
			VALUES ('t1', ?, 'old', 'hash-old', 200, ?, ?, ?)`, idemRoute, []byte(`{"ok":true}`), now().UnixMilli(),
			now().Add(time.Hour).UnixMilli()).Error; err != nil {
			t.Fatal(err)
		}
		if _, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "old", "hash-old"); err != nil || a == nil || a.Status != 200 ||
			string(a.Body) != `{"ok":true}` || len(a.Header) != 0 {
			t.Fatalf("plaintext answer: %+v %v", a, err)
		}
	})
}

// A claim still pending after IdempotencyAbandoned is taken over by a retry; the request
// that made it can then neither release nor complete the new claim.
func TestIdempotencyAbandonedClaimTakenOver(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := now()
		_, keys := openService(t, db)
		ids := identity.New(db, keys, func() time.Time { return clock })
		dead, _, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-1")
		if err != nil || dead == nil {
			t.Fatalf("claim: %v %v", dead, err)
		}
		clock = clock.Add(identity.IdempotencyAbandoned)
		if c, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-1"); err != nil || c != nil || a == nil || !a.Pending() {
			t.Fatalf("a claim within the bound is in progress: %v %+v %v", c, a, err)
		}
		clock = clock.Add(time.Second)
		retry, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-2")
		if err != nil || retry == nil || a != nil {
			t.Fatalf("abandoned claim not taken over: %v %+v %v", retry, a, err)
		}
		// The dead request wakes up: its release and its answer touch nothing.
		if err := ids.ReleaseIdempotency(ctx, dead); err != nil {
			t.Fatal(err)
		}
		if err := ids.CompleteIdempotency(ctx, dead, 201, nil, []byte(`"dead"`)); err != nil {
			t.Fatal(err)
		}
		if c, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-2"); err != nil || c != nil || a == nil || !a.Pending() {
			t.Fatalf("the retry's claim is gone: %v %+v %v", c, a, err)
		}
		if err := ids.CompleteIdempotency(ctx, retry, 201, nil, []byte(`"retry"`)); err != nil {
			t.Fatal(err)
		}
		if _, a, err := ids.ClaimIdempotency(ctx, "t1", idemRoute, "k1", "hash-2"); err != nil || a == nil || string(a.Body) != `"retry"` {
			t.Fatalf("stored answer: %+v %v", a, err)
		}
	})
}
