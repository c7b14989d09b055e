package login

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// Button is one "Continue with …" button of the sign-in and registration pages.
type Button struct {
	ProviderID, Label string
}

// discoveryWait bounds how long a page waits for a discovery document it has not cached.
const discoveryWait = 2 * time.Second

// Buttons returns the tenant's login buttons in a language, and the origins their forms
// end up at. A form's POST is answered with a redirect to the provider, and browsers hold
// that redirect to the page's CSP form-action, so the page must name those origins: the
// provider's authorization endpoint (from its discovery document, fetched now when it is
// not cached), else its issuer's origin.
func (s *Service) Buttons(ctx context.Context, tenant *identity.Tenant, lang string) ([]Button, []string, error) {
	list, err := s.List(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	var buttons []Button
	var origins []string
	add := func(o string) {
		if o != "" && !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	for _, p := range list {
		buttons = append(buttons, Button{ProviderID: p.ID, Label: p.LabelIn(lang)})
		switch p.Kind {
		case KindFacebook:
			add(origin(s.opt.FacebookDialogURL))
		case KindOIDC:
			r, err := s.row(ctx, s.db.Read, tenant.ID, p.ID)
			if err != nil {
				return nil, nil, err
			}
			if s.recentlyFailed(r) {
				add(origin(p.Issuer))
				continue
			}
			wait, cancel := context.WithTimeout(ctx, discoveryWait)
			d, err := s.discover(wait, r)
			cancel()
			if err == nil {
				add(origin(d.authURL))
			} else {
				add(origin(p.Issuer))
			}
		}
	}
	return buttons, origins, nil
}

// ConnectedProvider is one of the tenant's providers whose identity the person has.
type ConnectedProvider struct {
	ID, Label string
}

// Connected returns the tenant's providers (labels in lang) whose identities the person has.
func (s *Service) Connected(ctx context.Context, tenant *identity.Tenant, subjectID, lang string) ([]ConnectedProvider, error) {
	list, err := s.List(ctx, tenant)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	ids, err := s.ids.IdentifierValues(ctx, tenant.ID, subjectID, identity.IDIdP)
	if err != nil {
		return nil, err
	}
	var out []ConnectedProvider
	for _, p := range list {
		issuer := strings.TrimSuffix(p.Issuer, "/")
		for _, id := range ids {
			if id.Namespace == issuer {
				out = append(out, ConnectedProvider{ID: p.ID, Label: p.LabelIn(lang)})
				break
			}
		}
	}
	return out, nil
}

// Disconnect removes the signed-in person's identity from one of the tenant's providers
// (accounts.DisconnectExternal says when it may not).
func (s *Service) Disconnect(ctx context.Context, tenant *identity.Tenant, sess *accounts.Session, providerID string) (*Provider, error) {
	p, err := s.Get(ctx, tenant, providerID)
	if err != nil {
		return nil, err
	}
	return p, s.acc.DisconnectExternal(ctx, sess, p.Issuer)
}
