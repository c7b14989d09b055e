package ciam_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// clock is a test clock: the real time plus an offset the test moves.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// fakeWithdrawer records what it was asked to withdraw.
type fakeWithdrawer struct {
	mu    sync.Mutex
	calls []identity.Identifier
}

func (f *fakeWithdrawer) WithdrawAll(_ context.Context, _ string, id identity.Identifier, method, reason string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if method != "system" || reason == "" {
		return 0, errors.New("unexpected method or reason")
	}
	f.calls = append(f.calls, id)
	return 2, nil
}

type env struct {
	db     *sqldb.DB
	ids    *identity.Service
	svc    *ciam.Service
	clock  *clock
	wd     *fakeWithdrawer
	tenant string
	other  string
}

func newEnv(t *testing.T, db *sqldb.DB, client *http.Client) *env {
	t.Helper()
	ctx := context.Background()
	c := &clock{}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := keyring.Open(ctx, db, master, c.now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, c.now)
	if client == nil {
		client = safehttp.New(safehttp.Options{AllowPrivate: true})
	}
	wd := &fakeWithdrawer{}
	svc := ciam.New(db, ids, keys, c.now, ciam.Options{Client: client, Withdrawer: wd, MinRefresh: 30 * time.Second})
	a, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Tenant A"}, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Tenant B"}, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, ids: ids, svc: svc, clock: c, wd: wd, tenant: a.ID, other: b.ID}
}

func (e *env) issuer(t *testing.T, tenant string, p *ciamtest.Provider, in ciam.IssuerInput) (*ciam.Issuer, string) {
	t.Helper()
	if in.Name == "" {
		in.Name = "Test IdP"
	}
	in.Issuer = p.Issuer()
	if in.Audiences == nil {
		in.Audiences = []string{"lupa"}
	}
	iss, secret, err := e.svc.Create(context.Background(), tenant, in, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	return iss, secret
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if !identity.IsCode(err, code) {
		t.Fatalf("err %v, want code %s", err, code)
	}
}

func TestIssuerValidation(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		skew := 301
		for _, in := range []ciam.IssuerInput{
			{Name: "x", Issuer: "http://idp.example", Audiences: []string{"a"}},
			{Name: "x", Issuer: "https://idp.example?x=1", Audiences: []string{"a"}},
			{Name: "x", Issuer: "https://idp.example", Audiences: nil},
			{Name: "x", Issuer: "https://idp.example", Audiences: []string{"a"}, Algorithms: []string{"none"}},
			{Name: "x", Issuer: "https://idp.example", Audiences: []string{"a"}, Algorithms: []string{"HS256"}},
			{Name: "x", Issuer: "https://idp.example", Audiences: []string{"a"}, JWKSURL: "ftp://idp.example/keys"},
			{Name: "x", Issuer: "https://idp.example", Audiences: []string{"a"}, ClockSkewSeconds: &skew},
		} {
			if _, _, err := e.svc.Create(ctx, e.tenant, in, identity.ActorSystem); !identity.IsCode(err, identity.EInvalid) {
				t.Errorf("%+v: %v, want invalid", in, err)
			}
		}
		iss, secret, err := e.svc.Create(ctx, e.tenant, ciam.IssuerInput{Name: "Keycloak", Issuer: "https://id.example/realms/shop",
			Audiences: []string{"lupa", "lupa"}}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(secret, iss.WebhookSecretPrefix) || len(iss.Audiences) != 1 ||
			strings.Join(iss.Algorithms, ",") != "RS256,ES256" || iss.ClockSkewSeconds != 60 {
			t.Fatalf("defaults: %+v %s", iss, secret)
		}
		if _, _, err := e.svc.Create(ctx, e.tenant, ciam.IssuerInput{Name: "Again", Issuer: iss.Issuer, Audiences: []string{"x"}}, identity.ActorSystem); !identity.IsCode(err, identity.EConflict) {
			t.Fatalf("duplicate issuer: %v", err)
		}
		// The same issuer in another tenant is that tenant's own.
		if _, _, err := e.svc.Create(ctx, e.other, ciam.IssuerInput{Name: "Same", Issuer: iss.Issuer, Audiences: []string{"x"}}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		wantCode(t, func() error { _, err := e.svc.Get(ctx, e.other, iss.ID); return err }(), identity.ENotFound)
		_, rotated, err := e.svc.Update(ctx, e.tenant, iss.ID, ciam.IssuerPatch{RotateWebhookSecret: true}, identity.ActorSystem)
		if err != nil || rotated == "" || rotated == secret {
			t.Fatalf("rotate: %v %q", err, rotated)
		}
		wantCode(t, e.svc.Delete(ctx, e.other, iss.ID, identity.ActorSystem), identity.ENotFound)
		if err := e.svc.Delete(ctx, e.tenant, iss.ID, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		entries, _, err := e.ids.Audit(ctx, e.tenant, identity.AuditFilter{ObjectType: "ciam_issuer"})
		if err != nil || len(entries) != 3 {
			t.Fatalf("audit: %v %d entries", err, len(entries))
		}
		for _, en := range entries {
			if strings.Contains(string(en.After), secret) || strings.Contains(string(en.After), rotated) {
				t.Fatalf("the audit log holds a webhook secret: %s", en.After)
			}
		}
	})
}

func TestVerifyToken(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		key := p.Current()
		now := e.clock.now()
		good := p.Claims("user-1", "lupa", now)
		with := func(k string, v any) map[string]any {
			c := map[string]any{}
			for kk, vv := range good {
				c[kk] = vv
			}
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
			return c
		}
		person, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, good))
		if err != nil {
			t.Fatal(err)
		}
		if person.Identifier != (identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "user-1"}) {
			t.Fatalf("person: %+v", person.Identifier)
		}
		// An audience list that holds the configured one passes; a skew within the issuer's too.
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, with("aud", []string{"other", "lupa"}))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(key, with("exp", now.Add(-30*time.Second).Unix()))); err != nil {
			t.Fatalf("expired 30 s ago, within the 60 s skew: %v", err)
		}
		es := p.NewKey("ES256")
		unknown := p.NewKey("RS256")
		for name, tok := range map[string]string{
			"wrong signature":      p.Sign(p.Impostor(key), good),
			"unknown kid":          p.Sign(unknown, good),
			"wrong issuer":         p.Sign(key, with("iss", "https://evil.example")),
			"issuer with slash":    p.Sign(key, with("iss", p.Issuer()+"/")),
			"wrong audience":       p.Sign(key, with("aud", "someone-else")),
			"no audience":          p.Sign(key, with("aud", nil)),
			"expired":              p.Sign(key, with("exp", now.Add(-2*time.Minute).Unix())),
			"no expiry":            p.Sign(key, with("exp", nil)),
			"not yet valid":        p.Sign(key, with("nbf", now.Add(10*time.Minute).Unix())),
			"issued in future":     p.Sign(key, with("iat", now.Add(10*time.Minute).Unix())),
			"no subject":           p.Sign(key, with("sub", nil)),
			"alg none":             ciamtest.Unsigned(good),
			"HS256 w/ public":      ciamtest.HMACWithPublicKey(key, good),
			"ES256 key not in set": p.Sign(es, good),
			"garbage":              "not.a.token",
			"JWE shape":            "a.b.c.d.e",
			"control in subject":   p.Sign(key, with("sub", "a\x00b")),
		} {
			_, err := e.svc.VerifyToken(ctx, e.tenant, tok)
			if !identity.IsCode(err, identity.EUnauthorized) {
				t.Errorf("%s: %v, want unauthorized", name, err)
				continue
			}
			var ie *identity.Error
			if errors.As(err, &ie) && strings.Contains(ie.Message, tok) {
				t.Errorf("%s: the error message echoes the token", name)
			}
		}
		// Tenant B has not configured the issuer: A's token is nothing to B.
		wantCode(t, func() error { _, err := e.svc.VerifyToken(ctx, e.other, p.Sign(key, good)); return err }(), identity.EUnauthorized)

		// Only the algorithms the issuer allows: restricted to ES256, an RS256 token fails.
		iss2 := ciamtest.New(t)
		rsKey := iss2.Current()
		esKey := iss2.NewKey("ES256")
		iss2.Publish(esKey)
		e.issuer(t, e.tenant, iss2, ciam.IssuerInput{Algorithms: []string{"ES256"}})
		if _, err := e.svc.VerifyToken(ctx, e.tenant, iss2.Sign(esKey, iss2.Claims("u2", "lupa", now))); err != nil {
			t.Fatalf("ES256: %v", err)
		}
		wantCode(t, func() error {
			_, err := e.svc.VerifyToken(ctx, e.tenant, iss2.Sign(rsKey, iss2.Claims("u2", "lupa", now)))
			return err
		}(), identity.EUnauthorized)
	})
}

// TestKeyRefresh: keys are fetched once and cached; a token with a new kid (rotation) makes
// Lupa fetch them again at once; a flood of unknown kids fetches at most once per minimum
// interval; a provider that is down is 503, not 401.
func TestKeyRefresh(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		for range 5 {
			if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Token("u", "lupa")); err != nil {
				t.Fatal(err)
			}
		}
		if d, j := p.DiscoveryHits.Load(), p.JWKSHits.Load(); d != 1 || j != 1 {
			t.Fatalf("discovery %d, keys %d fetches for five tokens, want 1 and 1", d, j)
		}
		// Rotation: the new key is found by fetching again at once.
		e.clock.advance(31 * time.Second)
		p.Rotate("ES256")
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Token("u", "lupa")); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		if j := p.JWKSHits.Load(); j != 2 {
			t.Fatalf("keys fetched %d times, want 2", j)
		}
		// A flood of made-up kids right after: no fetch at all within the minimum interval.
		for range 50 {
			_, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(p.NewKey("ES256"), p.Claims("u", "lupa", e.clock.now())))
			wantCode(t, err, identity.EUnauthorized)
		}
		if j := p.JWKSHits.Load(); j != 2 {
			t.Fatalf("a flood of unknown kids fetched the keys %d times, want still 2", j)
		}
		e.clock.advance(31 * time.Second)
		for range 50 {
			_, _ = e.svc.VerifyToken(ctx, e.tenant, p.Sign(p.NewKey("ES256"), p.Claims("u", "lupa", e.clock.now())))
		}
		if j := p.JWKSHits.Load(); j != 3 {
			t.Fatalf("after the interval: %d fetches, want 3", j)
		}
		// The provider goes down: cached keys go on working past their TTL.
		p.Down.Store(true)
		e.clock.advance(11 * time.Minute)
		if _, err := e.svc.VerifyToken(ctx, e.tenant, p.Token("u", "lupa")); err != nil {
			t.Fatalf("stale keys while the provider is down: %v", err)
		}
		// A new issuer whose provider is down has no keys at all: 503.
		q := ciamtest.New(t)
		q.Down.Store(true)
		e.issuer(t, e.tenant, q, ciam.IssuerInput{})
		_, err := e.svc.VerifyToken(ctx, e.tenant, q.Token("u", "lupa"))
		wantCode(t, err, identity.EUnavailable)
	})
}

// TestKeysFromPrivateAddressRefused: with the SSRF-safe client and private addresses not
// allowed, an issuer on loopback gets no keys fetched at all.
func TestKeysFromPrivateAddressRefused(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	e := newEnv(t, db, safehttp.New(safehttp.Options{}))
	p := ciamtest.New(t)
	e.issuer(t, e.tenant, p, ciam.IssuerInput{})
	_, err := e.svc.VerifyToken(context.Background(), e.tenant, p.Token("u", "lupa"))
	wantCode(t, err, identity.EUnavailable)
	if !errors.Is(err, safehttp.ErrBlocked) {
		t.Fatalf("err %v, want the dialer's refusal", err)
	}
	if p.DiscoveryHits.Load() != 0 {
		t.Fatal("the provider was reached")
	}
}

func event(typ string, data map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": time.Now().UTC().Format(time.RFC3339), "data": data})
	return b
}

func TestIdentityEvents(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		p := ciamtest.New(t)
		iss, secret := e.issuer(t, e.tenant, p, ciam.IssuerInput{})
		send := func(id string, body []byte, at time.Time, key string) (*ciam.EventResult, error) {
			h := ciamtest.WebhookHeaders(key, id, at, body)
			return e.svc.HandleEvent(ctx, iss.ID, ciam.WebhookRequest{ID: h[1], Timestamp: h[3], Signature: h[5], Body: body})
		}
		created := event("user.created", map[string]any{"sub": "u-1", "email": " Jane.Doe@Example.COM ", "email_verified": true, "name": "Jane"})
		res, err := send("msg_1", created, e.clock.now(), secret)
		if err != nil {
			t.Fatal(err)
		}
		var ans ciam.EventAnswer
		if err := json.Unmarshal(res.Body, &ans); err != nil || !ans.PersonCreated || ans.Email != "added" || ans.Subject == "" {
			t.Fatalf("user.created: %v %s", err, res.Body)
		}
		byEmail, err := e.ids.FindSubject(ctx, e.tenant, identity.Identifier{Kind: identity.IDEmail, Value: "jane.doe@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		byIdP, err := e.ids.FindSubject(ctx, e.tenant, identity.Identifier{Kind: identity.IDIdP, Namespace: p.Issuer(), Value: "u-1"})
		if err != nil || byIdP.ID != byEmail.ID || byIdP.Kind != identity.SubjectPerson {
			t.Fatalf("the email and the idp identity name different subjects: %v %+v %+v", err, byIdP, byEmail)
		}
		// The same webhook-id again: the same answer, nothing done twice.
		again, err := send("msg_1", created, e.clock.now(), secret)
		if err != nil || !again.Replayed || string(again.Body) != string(res.Body) {
			t.Fatalf("replay: %v %+v", err, again)
		}
		_, err = send("msg_1", event("user.updated", map[string]any{"sub": "u-1"}), e.clock.now(), secret)
		wantCode(t, err, identity.EUnprocessable)

		// Refusals: each is unauthorized and changes nothing.
		_, other := e.issuer(t, e.other, p, ciam.IssuerInput{})
		for name, try := range map[string]func() error{
			"bad signature":    func() error { _, err := send("msg_2", created, e.clock.now(), other); return err },
			"old timestamp":    func() error { _, err := send("msg_3", created, e.clock.now().Add(-6*time.Minute), secret); return err },
			"future timestamp": func() error { _, err := send("msg_4", created, e.clock.now().Add(6*time.Minute), secret); return err },
			"body changed": func() error {
				h := ciamtest.WebhookHeaders(secret, "msg_5", e.clock.now(), created)
				_, err := e.svc.HandleEvent(ctx, iss.ID, ciam.WebhookRequest{ID: h[1], Timestamp: h[3], Signature: h[5], Body: append(created, ' ')})
				return err
			},
			"no signature": func() error {
				_, err := e.svc.HandleEvent(ctx, iss.ID, ciam.WebhookRequest{ID: "msg_6", Timestamp: "1", Body: created})
				return err
			},
			"unknown issuer": func() error {
				h := ciamtest.WebhookHeaders(secret, "msg_7", e.clock.now(), created)
				_, err := e.svc.HandleEvent(ctx, identity.NewID(), ciam.WebhookRequest{ID: h[1], Timestamp: h[3], Signature: h[5], Body: created})
				return err
			},
		} {
			if err := try(); !identity.IsCode(err, identity.EUnauthorized) {
				t.Errorf("%s: %v, want unauthorized", name, err)
			}
		}
		// A second signature in the header may be the good one (secret rotation on the sender's side).
		h := ciamtest.WebhookHeaders(secret, "msg_8", e.clock.now(), event("user.updated", map[string]any{"sub": "u-1"}))
		bad := ciamtest.WebhookHeaders(other, "msg_8", e.clock.now(), event("user.updated", map[string]any{"sub": "u-1"}))
		if _, err := e.svc.HandleEvent(ctx, iss.ID, ciam.WebhookRequest{ID: h[1], Timestamp: h[3], Signature: bad[5] + " " + h[5],
			Body: event("user.updated", map[string]any{"sub": "u-1"})}); err != nil {
			t.Fatalf("two signatures, the second good: %v", err)
		}

		// An unverified address is not added; an address another subject has is never moved.
		res, err = send("msg_9", event("user.created", map[string]any{"sub": "u-2", "email": "x@example.com"}), e.clock.now(), secret)
		if err != nil || !strings.Contains(string(res.Body), `"email":"unverified"`) {
			t.Fatalf("unverified: %v %s", err, res.Body)
		}
		wantCode(t, func() error {
			_, err := e.ids.FindSubject(ctx, e.tenant, identity.Identifier{Kind: identity.IDEmail, Value: "x@example.com"})
			return err
		}(), identity.ENotFound)
		res, err = send("msg_10", event("user.updated", map[string]any{"sub": "u-2", "email": "jane.doe@example.com", "email_verified": true}), e.clock.now(), secret)
		if err != nil || !strings.Contains(string(res.Body), `"email":"linked_elsewhere"`) {
			t.Fatalf("another subject's address: %v %s", err, res.Body)
		}

		// Types Lupa does not take, and bodies that are not events.
		_, err = send("msg_11", event("user.renamed", map[string]any{"sub": "u-1"}), e.clock.now(), secret)
		wantCode(t, err, identity.EUnprocessable)
		_, err = send("msg_11b", event("user.merged", map[string]any{"sub": "u-1"}), e.clock.now(), secret)
		wantCode(t, err, identity.EInvalid)
		for _, body := range []string{`{"type":"user.created"}`, `{"type":"user.created","data":{}}`, `[]`,
			`{"type":"user.created","data":{"sub":"u"},"extra":1}`, `{"type":"user.created","data":{"sub":"u","email":"nope"}}`} {
			_, err = send("msg_12", []byte(body), e.clock.now(), secret)
			wantCode(t, err, identity.EInvalid)
		}

		// user.deleted: consents withdrawn through the withdrawer, an erasure request opened —
		// once, however often the CIAM says so.
		res, err = send("msg_13", event("user.deleted", map[string]any{"sub": "u-1"}), e.clock.now(), secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(res.Body, &ans); err != nil || ans.Withdrawn != 2 || ans.ErasureRequest == "" {
			t.Fatalf("user.deleted: %v %s", err, res.Body)
		}
		if len(e.wd.calls) != 1 || e.wd.calls[0].Value != "u-1" {
			t.Fatalf("withdrawals: %+v", e.wd.calls)
		}
		res2, err := send("msg_14", event("user.deleted", map[string]any{"sub": "u-1"}), e.clock.now(), secret)
		var ans2 ciam.EventAnswer
		if err != nil || json.Unmarshal(res2.Body, &ans2) != nil || ans2.ErasureRequest != ans.ErasureRequest {
			t.Fatalf("second deletion: %v %s", err, res2.Body)
		}
		var n int64
		db.Read.Raw("SELECT count(*) FROM dsr_requests WHERE tenant_id = ? AND subject_id = ? AND kind = 'erasure' AND status = 'open' AND source = ?",
			e.tenant, byIdP.ID, "ciam:"+iss.ID).Scan(&n)
		if n != 1 {
			t.Fatalf("%d open erasure requests, want 1", n)
		}
		// Deleting someone Lupa never knew: nothing to withdraw, no request.
		res, err = send("msg_15", event("user.deleted", map[string]any{"sub": "stranger"}), e.clock.now(), secret)
		if err != nil || strings.Contains(string(res.Body), "erasure_request") {
			t.Fatalf("unknown user deleted: %v %s", err, res.Body)
		}
		// Old webhook ids are forgotten after a day.
		e.clock.advance(25 * time.Hour)
		if n, err := e.svc.Housekeeping(ctx); err != nil || n == 0 {
			t.Fatalf("housekeeping: %d %v", n, err)
		}
	})
}

// TestKeysRedirectNoDowngrade: an https key URL that redirects to plain http is refused —
// keys that crossed the network in clear could have been swapped — while a redirect that
// stays on https is followed.
func TestKeysRedirectNoDowngrade(t *testing.T) {
	p := ciamtest.New(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p.URL+"/jwks", http.StatusFound)
	})
	mux.HandleFunc("GET /to-https", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/keys", http.StatusFound)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[` + string(p.Current().PublicJSON()) + `]}`))
	})
	tls := httptest.NewTLSServer(mux)
	t.Cleanup(tls.Close)
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db, tls.Client())
		ctx := context.Background()
		verify := func(jwksPath string) error {
			in := ciam.IssuerInput{Name: "TLS IdP", Issuer: tls.URL + jwksPath, JWKSURL: tls.URL + jwksPath, Audiences: []string{"lupa"}}
			if _, _, err := e.svc.Create(ctx, e.tenant, in, identity.ActorSystem); err != nil {
				t.Fatal(err)
			}
			claims := p.Claims("u", "lupa", e.clock.now())
			claims["iss"] = in.Issuer
			_, err := e.svc.VerifyToken(ctx, e.tenant, p.Sign(p.Current(), claims))
			return err
		}
		before := p.JWKSHits.Load()
		wantCode(t, verify("/to-http"), identity.EUnavailable)
		if p.JWKSHits.Load() != before {
			t.Fatal("the keys were fetched over plain http after a redirect")
		}
		if err := verify("/to-https"); err != nil {
			t.Fatalf("a redirect within https: %v", err)
		}
	})
}
