package ciam_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// eventAt is an identity event body whose envelope timestamp is at (none when zero).
func eventAt(typ string, at time.Time, data map[string]any) []byte {
	m := map[string]any{"type": typ, "data": data}
	if !at.IsZero() {
		m["timestamp"] = at.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(m)
	return b
}

// sender signs and sends identity events for one issuer.
type sender struct {
	t      *testing.T
	e      *env
	iss    *ciam.Issuer
	secret string
	n      int
}

func (s *sender) send(body []byte) map[string]any {
	s.t.Helper()
	s.n++
	h := ciamtest.WebhookHeaders(s.secret, fmt.Sprintf("msg_%d", s.n), s.e.clock.now(), body)
	res, err := s.e.svc.HandleEvent(context.Background(), s.iss.ID, ciam.WebhookRequest{ID: h[1], Timestamp: h[3], Signature: h[5], Body: body})
	if err != nil {
		s.t.Fatalf("event %s: %v", body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

// TestDeletedUserTokens: after user.deleted, the user's tokens issued at or before the
// deletion are refused, however long they still have to live; a token issued after it (the
// CIAM made the user again) and other users' tokens pass, and so does the same sub in
// another tenant.
func TestDeletedUserTokens(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		iss, secret := e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		e.issuer(t, e.other, p, ciam.IssuerInput{})
		snd := &sender{t: t, e: e, iss: iss, secret: secret}
		key := p.Current()
		now := e.clock.now()
		before := p.Sign(key, p.Claims("u-1", "lupa", now.Add(-10*time.Second)))
		if _, err := e.svc.VerifyToken(ctx, e.tenant, before); err != nil {
			t.Fatal(err)
		}
		snd.send(eventAt("user.deleted", now, map[string]any{"sub": "u-1"}))
		for name, tok := range map[string]string{
			"issued before":      before,
			"issued at the time": p.Sign(key, p.Claims("u-1", "lupa", now)),
		} {
			_, err := e.svc.VerifyToken(ctx, e.tenant, tok)
			if !identity.IsCode(err, identity.EUnauthorized) {
				t.Errorf("%s the deletion: %v, want unauthorized", name, err)
			}
		}
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, p.Claims("u-1", "lupa", now.Add(2*time.Second)))); err != nil {
			t.Errorf("a token issued after the deletion: %v", err)
		}
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, p.Claims("u-2", "lupa", now))); err != nil {
			t.Errorf("another user's token: %v", err)
		}
		if _, err := e.svc.VerifyToken(ctx, e.other, before); err != nil {
			t.Errorf("the same sub in another tenant: %v", err)
		}

		// A deletion without a timestamp counts from when it reached Lupa.
		e.clock.advance(time.Minute)
		tok := p.Sign(key, p.Claims("u-3", "lupa", e.clock.now().Add(-time.Second)))
		snd.send(eventAt("user.deleted", time.Time{}, map[string]any{"sub": "u-3"}))
		wantCode(t, func() error { _, err := e.svc.VerifyToken(ctx, e.tenant, tok); return err }(), identity.EUnauthorized)

		// The table holds no sub and no issuer in clear.
		var rows []struct {
			UserHash []byte
			HashKID  string `gorm:"column:hash_kid"`
		}
		if err := db.Read.Raw("SELECT user_hash, hash_kid FROM ciam_deleted_users").Scan(&rows).Error; err != nil || len(rows) != 2 {
			t.Fatalf("%d deleted users (%v), want 2", len(rows), err)
		}
		for _, r := range rows {
			if bytes.Contains(r.UserHash, []byte("u-1")) || len(r.UserHash) != 32 || r.HashKID == "" {
				t.Fatalf("deleted user row: %x %q", r.UserHash, r.HashKID)
			}
		}
		// Forgotten after the retention; by then every token issued before has expired.
		e.clock.advance(ciam.DeletedUserRetention + time.Hour)
		if n, err := e.svc.Housekeeping(ctx); err != nil || n < 2 {
			t.Fatalf("housekeeping: %d %v", n, err)
		}
		var left int64
		db.Read.Raw("SELECT count(*) FROM ciam_deleted_users").Scan(&left)
		if left != 0 {
			t.Fatalf("%d deleted users left after the retention", left)
		}
	})
}

// TestLateEventsAfterDeletion: events about a deleted user sent at or before the deletion
// (late, retried, out of order) or without a timestamp do nothing: no person comes back and
// no address is added. An event sent after the deletion is applied: the CIAM made the user
// again.
func TestLateEventsAfterDeletion(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		iss, secret := e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		snd := &sender{t: t, e: e, iss: iss, secret: secret}
		idp := func(sub string) identity.Identifier {
			return identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: sub}
		}
		t0 := e.clock.now().Add(-time.Minute)
		t1 := t0.Add(30 * time.Second)

		// A user Lupa never met is deleted; the user.created sent before arrives after.
		snd.send(eventAt("user.deleted", t1, map[string]any{"sub": "gone"}))
		for _, at := range []time.Time{t0, t1, {}} {
			ans := snd.send(eventAt("user.created", at, map[string]any{"sub": "gone", "email": "gone@example.fi", "email_verified": true}))
			if ans["ignored"] != "user_deleted" || ans["person_created"] == true || ans["subject"] != nil {
				t.Fatalf("user.created sent at %v after the deletion at %v: %v", at, t1, ans)
			}
		}
		wantCode(t, func() error { _, err := e.ids.FindSubject(ctx, e.tenant, idp("gone")); return err }(), identity.ENotFound)
		wantCode(t, func() error {
			_, err := e.ids.FindSubject(ctx, e.tenant, identity.Identifier{Kind: identity.IDEmail, Value: "gone@example.fi"})
			return err
		}(), identity.ENotFound)

		// A known user: a late user.updated adds no address to the deleted person.
		snd.send(eventAt("user.created", t0, map[string]any{"sub": "known"}))
		snd.send(eventAt("user.deleted", t1, map[string]any{"sub": "known"}))
		ans := snd.send(eventAt("user.updated", t0.Add(10*time.Second), map[string]any{"sub": "known", "email": "k@example.fi", "email_verified": true}))
		if ans["ignored"] != "user_deleted" {
			t.Fatalf("late user.updated: %v", ans)
		}
		wantCode(t, func() error {
			_, err := e.ids.FindSubject(ctx, e.tenant, identity.Identifier{Kind: identity.IDEmail, Value: "k@example.fi"})
			return err
		}(), identity.ENotFound)
		// A late merge into the deleted user, or of the deleted user into another, does nothing.
		snd.send(eventAt("user.created", t0, map[string]any{"sub": "other"}))
		for _, data := range []map[string]any{{"sub": "known", "merged_sub": "other"}, {"sub": "other", "merged_sub": "known"}} {
			if ans := snd.send(eventAt("user.merged", t0, data)); ans["ignored"] != "user_deleted" || ans["merged"] != nil {
				t.Fatalf("late user.merged %v: %v", data, ans)
			}
		}

		// Sent after the deletion: the CIAM made the user again.
		ans = snd.send(eventAt("user.created", t1.Add(time.Second), map[string]any{"sub": "gone"}))
		if ans["ignored"] != nil || ans["person_created"] != true {
			t.Fatalf("user.created after the deletion: %v", ans)
		}
		// A deletion is remembered at its latest time: an older one sent late moves nothing.
		snd.send(eventAt("user.deleted", t0, map[string]any{"sub": "known"}))
		if ans := snd.send(eventAt("user.created", t0.Add(20*time.Second), map[string]any{"sub": "known"})); ans["ignored"] != "user_deleted" {
			t.Fatalf("after an older deletion sent late: %v", ans)
		}
		// Users never deleted are as before.
		if ans := snd.send(eventAt("user.created", time.Time{}, map[string]any{"sub": "fresh"})); ans["person_created"] != true {
			t.Fatalf("a new user: %v", ans)
		}
	})
}

// TestTokenKindAndLifetime: only access tokens pass: a typ header that names another kind
// of token, an ID token's hash claims, Cognito's token_use id and Keycloak's typ ID are
// refused; so is a lifetime (exp - iat) over 24 hours and a token without iat.
func TestTokenKindAndLifetime(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		key := p.Current()
		now := e.clock.now()
		with := func(kv ...any) map[string]any {
			c := p.Claims("u", "lupa", now)
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(c, kv[i].(string))
				} else {
					c[kv[i].(string)] = kv[i+1]
				}
			}
			return c
		}
		for name, tok := range map[string]string{
			"at+jwt":                p.SignTyp(key, "at+jwt", with()),
			"application/at+jwt":    p.SignTyp(key, "application/AT+JWT", with()),
			"JWT":                   p.SignTyp(key, "JWT", with()),
			"no typ":                p.SignTyp(key, "", with()),
			"24 hours":              p.Sign(key, with("exp", now.Add(24*time.Hour).Unix())),
			"nonce and azp":         p.Sign(key, with("nonce", "n-0S6_WzA2Mj", "azp", "shop-app")),
			"Cognito access":        p.Sign(key, with("token_use", "access")),
			"Keycloak Bearer":       p.SignTyp(key, "JWT", with("typ", "Bearer")),
			"issued 30 s in future": p.Sign(key, with("iat", now.Add(30*time.Second).Unix())),
		} {
			if _, err := e.svc.VerifyToken(ctx, e.tenant, tok); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		for name, tok := range map[string]string{
			"typ id_token+jwt":    p.SignTyp(key, "id_token+jwt", with()),
			"typ logout+jwt":      p.SignTyp(key, "logout+jwt", with()),
			"typ dpop+jwt":        p.SignTyp(key, "dpop+jwt", with()),
			"typ secevent+jwt":    p.SignTyp(key, "secevent+jwt", with()),
			"ID token's at_hash":  p.SignTyp(key, "JWT", with("at_hash", "77QmUPtjPfzWtF2AnpK9RQ", "nonce", "n")),
			"ID token's c_hash":   p.SignTyp(key, "JWT", with("c_hash", "LDktKdoQak3Pk0cnXxCltA")),
			"Cognito id token":    p.SignTyp(key, "JWT", with("token_use", "id")),
			"Keycloak ID token":   p.SignTyp(key, "JWT", with("typ", "ID")),
			"Keycloak refresh":    p.SignTyp(key, "JWT", with("typ", "Refresh")),
			"lifetime 25 hours":   p.Sign(key, with("exp", now.Add(25*time.Hour).Unix())),
			"lifetime a year":     p.Sign(key, with("iat", now.Add(-time.Hour).Unix(), "exp", now.Add(365*24*time.Hour).Unix())),
			"no iat":              p.Sign(key, with("iat", nil)),
			"issued 2 min future": p.Sign(key, with("iat", now.Add(2*time.Minute).Unix())),
		} {
			_, err := e.svc.VerifyToken(ctx, e.tenant, tok)
			if !identity.IsCode(err, identity.EUnauthorized) {
				t.Errorf("%s: %v, want unauthorized", name, err)
			}
		}
	})
}

// TestIssuerWrittenTwoWays: https://x/ and https://x (or with another case of the host, or
// the default port) are one issuer: a tenant configures it once, so the people it names have
// one namespace (422 on issuer). Another tenant has its own; an issuer may still be changed
// to its own URL written another way.
func TestIssuerWrittenTwoWays(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		in := func(issuer string) ciam.IssuerInput {
			return ciam.IssuerInput{Name: "IdP", Issuer: issuer, Audiences: []string{"lupa"}}
		}
		first, _, err := e.svc.Create(ctx, e.tenant, in("https://id.example/realms/shop"), identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"https://id.example/realms/shop/", "https://ID.example/realms/shop", "https://id.example:443/realms/shop"} {
			_, _, err := e.svc.Create(ctx, e.tenant, in(other), identity.ActorSystem)
			var ie *identity.Error
			if !identity.IsCode(err, identity.EUnprocessable) || !errors.As(err, &ie) || len(ie.Fields) != 1 || ie.Fields[0].Field != "issuer" {
				t.Errorf("%s beside %s: %v, want 422 on issuer", other, first.Issuer, err)
			}
		}
		// Another realm of the same host is another issuer.
		second, _, err := e.svc.Create(ctx, e.tenant, in("https://id.example/realms/club"), identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		slash := "https://id.example/realms/shop/"
		_, _, err = e.svc.Update(ctx, e.tenant, second.ID, ciam.IssuerPatch{Issuer: &slash}, identity.ActorSystem)
		wantCode(t, err, identity.EUnprocessable)
		if _, _, err := e.svc.Create(ctx, e.other, in(slash), identity.ActorSystem); err != nil {
			t.Fatalf("another tenant: %v", err)
		}
		if got, _, err := e.svc.Update(ctx, e.tenant, first.ID, ciam.IssuerPatch{Issuer: &slash}, identity.ActorSystem); err != nil || got.Issuer != slash {
			t.Fatalf("the issuer's own URL written another way: %v", err)
		}
		name := "Renamed"
		if _, _, err := e.svc.Update(ctx, e.tenant, second.ID, ciam.IssuerPatch{Name: &name}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
	})
}

// TestKeyRefreshPerTenant: two tenants trust one CIAM. A flood of unknown key ids through
// one tenant uses up that tenant's refetch, not the other's: the other's customers' tokens
// signed with a key the CIAM just rotated to pass at once.
func TestKeyRefreshPerTenant(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		e.issuer(t, e.other, p, ciam.IssuerInput{})
		for _, tenant := range []string{e.tenant, e.other} {
			if _, err := e.svc.VerifyToken(ctx, tenant, p.Sign(p.Current(), p.Claims("u", "lupa", e.clock.now()))); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.advance(31 * time.Second)
		// Made-up key ids through tenant A's public property: A's keys are fetched again.
		for range 20 {
			_, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(p.NewKey("ES256"), p.Claims("u", "lupa", e.clock.now())))
			wantCode(t, err, identity.EUnauthorized)
		}
		// The CIAM rotates its keys a moment later: B's customers' new tokens pass at once.
		e.clock.advance(time.Second)
		k := p.Rotate("ES256")
		if _, err := e.svc.VerifyToken(ctx, e.other, p.Sign(k, p.Claims("u", "lupa", e.clock.now()))); err != nil {
			t.Fatalf("tenant B after tenant A's flood: %v", err)
		}
		// A itself waits for its own limit, as before.
		_, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(k, p.Claims("u", "lupa", e.clock.now())))
		wantCode(t, err, identity.EUnauthorized)
	})
}

// TestSlowKeyFetch: a request does not wait for a slow fetch of keys it does not need: past
// the keys' TTL they are fetched again in the background while tokens verify with the keys
// there are. A request that needs the fetch (an unknown key id) waits a few seconds at
// most, then is 503: the fetch goes on for the requests after it.
func TestSlowKeyFetch(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	e := newEnv(t, db, nil)
	ctx := context.Background()
	p := ciamtest.New(t)
	e.issuer(t, e.tenant, p, ciam.IssuerInput{})
	if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(p.Current(), p.Claims("u", "lupa", e.clock.now()))); err != nil {
		t.Fatal(err)
	}
	release := p.Hold()
	e.clock.advance(11 * time.Minute)
	verify := func(key *ciamtest.Key, within time.Duration) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, p.Claims("u", "lupa", e.clock.now())))
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(within):
			release()
			t.Fatalf("the request waited for the provider's slow answer longer than %v", within)
			return nil
		}
	}
	if err := verify(p.Current(), time.Second); err != nil {
		t.Fatalf("a token with a known key while the keys are being fetched: %v", err)
	}
	start := time.Now()
	wantCode(t, verify(p.NewKey("ES256"), 6*time.Second), identity.EUnavailable)
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("an unknown key id gave up after %v, before the fetch could answer", d)
	}
	// The provider rotates while the fetch is held: the held answer carries the new key.
	rotated := p.Rotate("ES256")
	release()
	// The background fetch ends and brings the keys up to date.
	for deadline := time.Now().Add(5 * time.Second); p.JWKSHits.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held fetch did not end")
		}
	}
	hits := p.JWKSHits.Load()
	// The fetched keys reached the cache: a token with the new key verifies without another fetch.
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err = verify(rotated, time.Second); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("a token with the key the held fetch brought: %v", err)
	}
	if got := p.JWKSHits.Load(); got != hits {
		t.Fatalf("the key set was fetched again (%d hits, then %d): the held fetch's keys did not reach the cache", hits, got)
	}
}
