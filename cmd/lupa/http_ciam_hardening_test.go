package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
)

// eventAt is an identity event body whose envelope timestamp is at.
func eventAt(typ, sub string, at time.Time, data map[string]any) []byte {
	d := map[string]any{"sub": sub}
	for k, v := range data {
		d[k] = v
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": at.UTC().Format(time.RFC3339), "data": d})
	return b
}

// TestHTTPCIAMDeletedUserToken: after the CIAM's user.deleted, a token of that user issued
// before the deletion — still an hour from expiring — records nothing and reads nothing on
// any route that takes customer tokens: a generic 401 problem. A late user.created sent
// before the deletion brings no one back.
func TestHTTPCIAMDeletedUserToken(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		issuerID, secret := s.newIssuer(t, s.demo.AdminKey, p, nil)
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		web := "/v1/consents?property=" + s.demo.WebShop.PublicKey
		body := map[string]any{"method": "checkbox", "decisions": []map[string]any{decision("marketing_email", 1, "granted")}}
		issued := time.Now().Add(-5 * time.Second)
		tok := p.Sign(p.Current(), p.Claims("cust-del", "lupa", issued))
		recorded(t, s.request(http.MethodPost, app, body, bearerTo(tok)...))

		deletedAt := time.Now()
		if r := s.postEvent(issuerID, secret, "msg_del", time.Now(), eventAt("user.deleted", "cust-del", deletedAt, nil)); r.Status != http.StatusOK {
			t.Fatalf("user.deleted: %d %s", r.Status, r.Body)
		}
		before := s.ledger(t, s.demo.AdminKey)
		for _, try := range []struct {
			method, path string
			body         any
			extra        []string
		}{
			{http.MethodPost, app, body, nil},
			{http.MethodGet, app, nil, nil},
			{http.MethodPost, web, body, []string{"Origin", s.Origin}},
			{http.MethodGet, web, nil, []string{"Origin", s.Origin}},
		} {
			r := s.request(try.method, try.path, try.body, append(bearerTo(tok), try.extra...)...)
			pr := wantProblem(t, r, http.StatusUnauthorized)
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
				pr.Detail != "the bearer token is not valid: check its issuer, audience, lifetime and signature" {
				t.Errorf("%s %s: %v %s", try.method, try.path, r.Header, r.Body)
			}
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("a deleted user's token changed the ledger: %+v → %+v", before, after)
		}
		// The CIAM's retry of a user.created sent before the deletion does nothing.
		late := s.postEvent(issuerID, secret, "msg_late", time.Now(), eventAt("user.created", "cust-new-del", deletedAt.Add(-time.Minute), nil))
		if late.Status != http.StatusOK {
			t.Fatal(late.Status)
		}
		s.postEvent(issuerID, secret, "msg_del2", time.Now(), eventAt("user.deleted", "cust-new-del", deletedAt, nil))
		late = s.postEvent(issuerID, secret, "msg_late2", time.Now(), eventAt("user.created", "cust-new-del", deletedAt.Add(-time.Minute), nil))
		if late.Status != http.StatusOK || late.Map(t)["ignored"] != "user_deleted" || late.Map(t)["person_created"] != false {
			t.Fatalf("a late user.created: %d %s", late.Status, late.Body)
		}
		// Another customer's token still works.
		recorded(t, s.request(http.MethodPost, app, body, bearerTo(p.Token("cust-alive", "lupa"))...))
	})
}

// TestHTTPCIAMTokenKinds: an ID token whose aud is a configured audience, and a token that
// lives longer than 24 hours, are 401 like every bad token.
func TestHTTPCIAMTokenKinds(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		s.newIssuer(t, s.demo.AdminKey, p, nil)
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		now := time.Now()
		claims := func(kv ...any) map[string]any {
			c := p.Claims("cust-kind", "lupa", now)
			for i := 0; i < len(kv); i += 2 {
				c[kv[i].(string)] = kv[i+1]
			}
			return c
		}
		key := p.Current()
		for name, tok := range map[string]string{
			"ID token typ":     p.SignTyp(key, "id_token+jwt", claims()),
			"ID token at_hash": p.SignTyp(key, "JWT", claims("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")),
			"Keycloak ID":      p.SignTyp(key, "JWT", claims("typ", "ID")),
			"a week":           p.Sign(key, claims("exp", now.Add(7*24*time.Hour).Unix())),
		} {
			r := s.request(http.MethodGet, app, nil, bearerTo(tok)...)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("%s: %d %s, want 401", name, r.Status, r.Body)
				continue
			}
			wantProblem(t, r, http.StatusUnauthorized)
		}
		if r := s.request(http.MethodGet, app, nil, bearerTo(p.SignTyp(key, "JWT", claims()))...); r.Status != http.StatusOK {
			t.Fatalf("an access token with typ JWT: %d %s", r.Status, r.Body)
		}
	})
}

// TestHTTPCIAMIssuerWrittenTwoWays: a tenant cannot configure https://x/ beside https://x:
// 422 naming issuer; its existing issuer keeps working.
func TestHTTPCIAMIssuerWrittenTwoWays(t *testing.T) {
	eachServer(t, ciamEnv, func(t *testing.T, s *testServer) {
		p := ciamtest.New(t)
		id, _ := s.newIssuer(t, s.demo.AdminKey, p, nil)
		r := s.admin(http.MethodPost, "/v1/admin/ciam-issuers", map[string]any{"name": "Again", "issuer": p.Issuer() + "/", "audiences": []string{"lupa"}})
		wantProblem(t, r, http.StatusUnprocessableEntity, "issuer")
		other := s.admin(http.MethodPost, "/v1/admin/ciam-issuers", map[string]any{"name": "Other", "issuer": "https://other.example", "audiences": []string{"lupa"}})
		otherID, _ := other.Map(t)["id"].(string)
		wantProblem(t, s.admin(http.MethodPatch, "/v1/admin/ciam-issuers/"+otherID, map[string]any{"issuer": p.Issuer() + "/"}),
			http.StatusUnprocessableEntity, "issuer")
		g := s.admin(http.MethodGet, "/v1/admin/ciam-issuers/"+id, nil)
		if g.Status != http.StatusOK || g.Map(t)["issuer"] != p.Issuer() {
			t.Fatalf("the issuer: %d %s", g.Status, g.Body)
		}
		app := "/v1/consents?property=" + s.demo.App.PublicKey
		if r := s.request(http.MethodGet, app, nil, bearerTo(p.Token("cust-one", "lupa"))...); r.Status != http.StatusOK {
			t.Fatalf("the issuer's token: %d %s", r.Status, r.Body)
		}
	})
}
