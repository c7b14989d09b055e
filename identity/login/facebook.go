package login

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/lupa-cmp/lupa/identity/accounts"
)

// Facebook Login is OAuth 2.0, not OpenID Connect, on the web: the code is exchanged for
// an access token, and the person is read from the Graph API's /me with the fields Lupa
// needs and nothing more (id, name, email). Every Graph call carries appsecret_proof, the
// HMAC-SHA256 of the access token keyed by the app secret, so a leaked token is of no use
// without the secret. Facebook does not say whether the address is verified, so it never
// is here: an address that belongs to an account never lets a Facebook sign-in in.

func withQuery(base string, q url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}

// facebookAuthURL is the login dialog, with state and a PKCE challenge.
func (s *Service) facebookAuthURL(r *providerRow, state, verifier, redirect string) string {
	return withQuery(s.opt.FacebookDialogURL, url.Values{
		"client_id": {r.ClientID}, "redirect_uri": {redirect}, "state": {state}, "response_type": {"code"},
		"scope":          {strings.Join(r.domain().Scopes, ",")},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	})
}

// AppSecretProof is the Graph API's appsecret_proof of an access token.
func AppSecretProof(secret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// withoutURL is err without the URL a *url.Error quotes: the query of the token exchange
// holds the app secret and the code, and these errors end up in the log.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// graphGet calls the Graph API and decodes its JSON answer into v. A 4xx answer is the
// Graph API refusing (a bad code, a bad proof); anything else unexpected is unavailability.
func (s *Service) graphGet(ctx context.Context, path string, q url.Values, bearer string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, withQuery(s.opt.FacebookGraphURL+path, q), nil)
	if err != nil {
		return unavailable(fmt.Errorf("graph API %s: %w", path, withoutURL(err)))
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := s.opt.Client.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("graph API %s: %w", path, withoutURL(err)))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return unavailable(fmt.Errorf("graph API %s: %w", path, err))
	}
	if res.StatusCode >= 400 && res.StatusCode < 500 {
		return refuse("the Graph API refused "+path, fmt.Errorf("status %d", res.StatusCode))
	}
	if res.StatusCode != http.StatusOK {
		return unavailable(fmt.Errorf("graph API %s: status %d", path, res.StatusCode))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return unavailable(fmt.Errorf("graph API %s: %w", path, err))
	}
	return nil
}

// facebookIdentity exchanges the code for an access token and reads id, name and email.
func (s *Service) facebookIdentity(ctx context.Context, r *providerRow, secret, code, redirect string, fd flowData) (accounts.External, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := s.graphGet(ctx, "/oauth/access_token", url.Values{"client_id": {r.ClientID}, "client_secret": {secret},
		"redirect_uri": {redirect}, "code": {code}, "code_verifier": {fd.Verifier}}, "", &tok); err != nil {
		return accounts.External{}, err
	}
	if tok.AccessToken == "" {
		return accounts.External{}, refuse("no access token", nil)
	}
	var me struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := s.graphGet(ctx, "/me", url.Values{"fields": {"id,name,email"},
		"appsecret_proof": {AppSecretProof(secret, tok.AccessToken)}}, tok.AccessToken, &me); err != nil {
		return accounts.External{}, err
	}
	if me.ID == "" {
		return accounts.External{}, refuse("no id from /me", errors.New("empty id"))
	}
	return accounts.External{Issuer: FacebookIssuer, Subject: me.ID, Email: me.Email, EmailVerified: false,
		Name: me.Name, Language: fd.Lang}, nil
}
