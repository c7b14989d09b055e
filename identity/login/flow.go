package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// CookieName is the cookie that binds a sign-in under way to the browser that began it:
// __Host- (Secure, host-only, Path=/), HttpOnly, SameSite=Lax (the provider's redirect
// back is a top-level GET, which Lax lets through). It holds a random value; the flow's
// state, nonce and PKCE verifier stay on the server.
const CookieName = "__Host-lupa_oidc"

// Lifetimes: a flow must come back within FlowTTL; an identity waiting to be connected
// (its address named another account) waits PendingTTL for the person to sign in to it.
const (
	FlowTTL    = 10 * time.Minute
	PendingTTL = 30 * time.Minute
)

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// validBinding reports whether a cookie value has the form of a binding (256 bits).
func validBinding(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

func flowAAD(tenantID string, bindingHash []byte) []byte {
	return []byte("login_flow|" + tenantID + "|" + hex.EncodeToString(bindingHash))
}

func (s *Service) seal(tenantID string, bindingHash []byte, fd flowData) (string, []byte, error) {
	b, err := json.Marshal(fd)
	if err != nil {
		return "", nil, err
	}
	return s.keys.Encrypt(b, flowAAD(tenantID, bindingHash))
}

func (s *Service) unseal(ctx context.Context, f *flowRow) (flowData, error) {
	var fd flowData
	b, err := s.keys.Decrypt(ctx, f.DataKID, f.Data, flowAAD(f.TenantID, f.BindingHash))
	if err != nil {
		return fd, err
	}
	return fd, json.Unmarshal(b, &fd)
}

// Start is a sign-in begun: send the browser to URL with the cookie set to Binding.
type Start struct {
	URL, Binding string
	MaxAge       time.Duration
}

// Begin starts a sign-in with one of the tenant's providers: a new random state, nonce,
// PKCE verifier and browser binding, kept server-side for FlowTTL. extra (nil, or at most
// MaxExtra bytes) is sealed with the flow and returned in the Outcome of its callback.
func (s *Service) Begin(ctx context.Context, tenant *identity.Tenant, providerID, lang string, extra []byte) (*Start, error) {
	if len(extra) > MaxExtra {
		return nil, identity.Errorf(identity.EInternal, "login: %d bytes of extra flow data", len(extra))
	}
	r, err := s.row(ctx, s.db.Read, tenant.ID, providerID)
	if err != nil {
		return nil, err
	}
	state, binding := random(), random()
	fd := flowData{Verifier: oauth2.GenerateVerifier(), Lang: accounts.Language(lang), Extra: extra}
	redirect := s.redirectURI(tenant.Slug, r.ID)
	var authURL string
	switch r.Kind {
	case KindOIDC:
		d, err := s.discover(ctx, r)
		if err != nil {
			return nil, err
		}
		fd.Nonce = random()
		authURL = s.oauthConfig(r, d, "", redirect).AuthCodeURL(state, oauth2.S256ChallengeOption(fd.Verifier), oidc.Nonce(fd.Nonce))
	case KindFacebook:
		authURL = s.facebookAuthURL(r, state, fd.Verifier, redirect)
	default:
		return nil, identity.NotFound("login provider")
	}
	bh := hash(binding)
	kid, data, err := s.seal(tenant.ID, bh, fd)
	if err != nil {
		return nil, err
	}
	now := s.now()
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Flows of the past go as new ones come: there is no other sweep.
		if err := tx.Exec("DELETE FROM login_flows WHERE tenant_id = ? AND expires_at < ?", tenant.ID, now.UnixMilli()).Error; err != nil {
			return err
		}
		return tx.Create(&flowRow{TenantID: tenant.ID, BindingHash: bh, ProviderID: r.ID, StateHash: hash(state), Status: flowStarted,
			Data: data, DataKID: kid, CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(FlowTTL).UnixMilli()}).Error
	})
	if err != nil {
		return nil, err
	}
	return &Start{URL: authURL, Binding: binding, MaxAge: FlowTTL}, nil
}

// CallbackInput is what came back from the provider, and the browser's cookie.
type CallbackInput struct {
	Binding, State, Code, Error string
}

// Outcome is what a callback did: signed someone in (Session), or found that the
// identity's address belongs to an account it may not enter (Pending: the provider whose
// identity now waits PendingTTL to be connected, in this browser, after the person signs
// in to that account).
type Outcome struct {
	Session  *accounts.Session
	Pending  *Provider
	Provider *Provider
	Lang     string
	Created  bool
	Linked   bool
	// Identity is the provider's identity of the person: (issuer, sub).
	Identity identity.Identifier
	// Extra is what Begin was given.
	Extra []byte
}

// MaxExtra bounds the extra data a flow carries.
const MaxExtra = 8 << 10

// Callback finishes a sign-in. The flow must be this browser's (cookie), for this
// provider, with this state, not expired, and not used before: it is used up first, so a
// replayed callback fails whatever happens next. Then the code is exchanged and the
// identity verified, and the accounts service signs the person in.
func (s *Service) Callback(ctx context.Context, tenant *identity.Tenant, providerID string, in CallbackInput) (*Outcome, error) {
	if !validBinding(in.Binding) || in.State == "" || len(in.State) > 512 {
		return nil, refuse("no flow in this browser, or no state", nil)
	}
	bh, now := hash(in.Binding), s.now()
	res := s.db.Write.WithContext(ctx).Model(&flowRow{}).
		Where("tenant_id = ? AND binding_hash = ? AND provider_id = ? AND state_hash = ? AND status = ? AND expires_at > ?",
			tenant.ID, bh, providerID, hash(in.State), flowStarted, now.UnixMilli()).
		Update("status", flowUsed)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected != 1 {
		return nil, refuse("the state is not this browser's open flow (wrong, used or expired)", nil)
	}
	var f flowRow
	if err := s.db.Write.WithContext(ctx).Where("tenant_id = ? AND binding_hash = ?", tenant.ID, bh).Take(&f).Error; err != nil {
		return nil, err
	}
	fd, err := s.unseal(ctx, &f)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Lang: fd.Lang, Extra: fd.Extra}
	if in.Error != "" {
		return out, refuse("the provider answered an error (the person may have cancelled)", nil)
	}
	if in.Code == "" || len(in.Code) > 2048 {
		return out, refuse("no code", nil)
	}
	r, err := s.row(ctx, s.db.Read, tenant.ID, providerID)
	if identity.IsCode(err, identity.ENotFound) {
		return out, refuse("the provider was removed", nil)
	}
	if err != nil {
		return out, err
	}
	out.Provider = r.domain()
	secret, err := s.secret(ctx, r)
	if err != nil {
		return out, err
	}
	redirect := s.redirectURI(tenant.Slug, r.ID)
	var ext accounts.External
	switch r.Kind {
	case KindOIDC:
		ext, err = s.oidcIdentity(ctx, r, secret, in.Code, redirect, fd)
	case KindFacebook:
		ext, err = s.facebookIdentity(ctx, r, secret, in.Code, redirect, fd)
	}
	if err != nil {
		return out, err
	}
	signed, err := s.acc.SignInExternal(ctx, tenant.ID, ext)
	if errors.Is(err, accounts.ErrExternal) {
		return out, refuse("the identity cannot sign in", err)
	}
	if err != nil {
		return out, err
	}
	out.Identity = identity.Identifier{Kind: identity.IDIdP, Namespace: ext.Issuer, Value: ext.Subject}
	if !signed.Collision {
		out.Session, out.Created, out.Linked = signed.Session, signed.Created, signed.Linked
		return out, nil
	}
	fd.Issuer, fd.Subject, fd.Person = ext.Issuer, ext.Subject, signed.SubjectID
	kid, data, err := s.seal(tenant.ID, bh, fd)
	if err != nil {
		return out, err
	}
	if err := s.db.Write.WithContext(ctx).Model(&flowRow{}).Where("tenant_id = ? AND binding_hash = ? AND status = ?", tenant.ID, bh, flowUsed).
		Updates(map[string]any{"status": flowPending, "data": data, "data_kid": kid, "pending_at": now.UnixMilli(),
			"expires_at": now.Add(PendingTTL).UnixMilli()}).Error; err != nil {
		return out, err
	}
	out.Pending = out.Provider
	return out, nil
}

// pending is the identity waiting in this browser to be connected to the session's
// account, or nil.
func (s *Service) pending(ctx context.Context, sess *accounts.Session, binding string) (*flowRow, *flowData, error) {
	if !validBinding(binding) {
		return nil, nil, nil
	}
	var rows []flowRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND binding_hash = ? AND status = ? AND expires_at > ?",
		sess.TenantID, hash(binding), flowPending, s.now().UnixMilli()).Limit(1).Find(&rows).Error; err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	fd, err := s.unseal(ctx, &rows[0])
	if err != nil {
		return nil, nil, err
	}
	if fd.Person != sess.SubjectID {
		return nil, nil, nil // it waits for another account, not this one
	}
	return &rows[0], &fd, nil
}

// Offer is an identity waiting to be connected to the signed-in account.
type Offer struct {
	Provider *Provider
	// SignInAgain: the session began before the identity was offered; connecting needs a
	// fresh sign-in.
	SignInAgain bool
}

// PendingFor returns the identity waiting in this browser (binding: its cookie) to be
// connected to the session's account, or nil.
func (s *Service) PendingFor(ctx context.Context, tenant *identity.Tenant, sess *accounts.Session, binding string) (*Offer, error) {
	f, _, err := s.pending(ctx, sess, binding)
	if err != nil || f == nil {
		return nil, err
	}
	p, err := s.Get(ctx, tenant, f.ProviderID)
	if identity.IsCode(err, identity.ENotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Offer{Provider: p, SignInAgain: f.PendingAt != nil && sess.CreatedAt.Before(time.UnixMilli(*f.PendingAt))}, nil
}

// Connect joins the identity waiting in this browser to the signed-in person's account:
// only the account its address named, only in a session begun after the identity was
// offered, and only once.
func (s *Service) Connect(ctx context.Context, tenant *identity.Tenant, sess *accounts.Session, providerID, binding string) (*Provider, error) {
	f, fd, err := s.pending(ctx, sess, binding)
	if err != nil {
		return nil, err
	}
	if f == nil || f.ProviderID != providerID || f.PendingAt == nil {
		return nil, refuse("no identity waits in this browser for this account", nil)
	}
	p, err := s.Get(ctx, tenant, providerID)
	if err != nil {
		return nil, err
	}
	claim := func(tx *gorm.DB) error {
		res := tx.Model(&flowRow{}).Where("tenant_id = ? AND binding_hash = ? AND status = ? AND expires_at > ?",
			f.TenantID, f.BindingHash, flowPending, s.now().UnixMilli()).Update("status", flowConnected)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return refuse("the identity was connected or expired meanwhile", nil)
		}
		return nil
	}
	err = s.acc.ConnectExternal(ctx, sess, fd.Issuer, fd.Subject, time.UnixMilli(*f.PendingAt), claim)
	if errors.Is(err, accounts.ErrExternal) {
		return nil, refuse("the identity cannot be connected", err)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}
