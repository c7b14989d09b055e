package consent

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/lupa-cmp/lupa/identity"
)

// BannerCookie is the banner's first-party cookie as the server sets it when Lupa is served
// on a subdomain of the site: a cookie set by the server is not cut to 7 days as Safari cuts
// cookies set by scripts. It holds the same JSON the widget writes (docs/banner.md).
type BannerCookie struct {
	Name, Value, Domain string
	MaxAge              int // seconds
}

// bannerCookieValue is the widget's cookie format: decisions per purpose as [letter,
// version, unix seconds] with a fourth element 1 when the Global Privacy Control signal
// made the decision, and the Consent Mode types granted.
type bannerCookieValue struct {
	V  int              `json:"v"`
	ID string           `json:"id"`
	T  int64            `json:"t"`
	P  map[string][]any `json:"p"`
	G  []string         `json:"g"`
	R  string           `json:"r"`
}

var decisionLetters = map[string]string{Granted: "g", Denied: "d", Withdrawn: "w", Objected: "o"}

// BannerCookie returns the cookie for an interaction recorded on a web property whose
// banner shares its cookie across a domain that host (Lupa's own) belongs to; nil when
// the server should leave the cookie to the widget.
func (s *Service) BannerCookie(ctx context.Context, p *identity.Property, host string, out *Outcome) (*BannerCookie, error) {
	if p == nil || p.Kind != identity.PropertyWeb || out.DeviceID == "" {
		return nil, nil
	}
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	b := c.Banners[p.ID]
	if b == nil || b.CookieDomain == "" || !withinDomain(host, b.CookieDomain) {
		return nil, nil
	}
	v := bannerCookieValue{V: 1, ID: out.DeviceID, T: out.RecordedAt.Unix(), P: map[string][]any{}, G: []string{}, R: out.InteractionID}
	granted := map[string]bool{}
	for _, st := range out.State {
		letter, ok := decisionLetters[st.State]
		if !ok || st.DecidedAt == nil {
			continue // not asked, expired or outdated: the widget asks again
		}
		e := []any{letter, st.Version, st.DecidedAt.Unix()}
		if st.Method == MethodGPCSignal {
			e = append(e, 1)
		}
		v.P[st.Purpose] = e
		granted[st.Purpose] = st.State == Granted
	}
	v.G = grantedConsentModeTypes(askedOnBanner(c, p, b), c, p, b, granted)
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &BannerCookie{Name: b.CookieName, Value: string(raw), Domain: b.CookieDomain, MaxAge: b.CookieDays * 86400}, nil
}

// grantedConsentModeTypes follows the widget: a type is granted when purposes map to it and
// all of them are granted, or when only strictly necessary storage maps to it.
func grantedConsentModeTypes(asked []*CatalogPurpose, c *Catalog, p *identity.Property, b *BannerSettings, granted map[string]bool) []string {
	out := []string{}
	for _, t := range ConsentModeTypes {
		if t == CMSecurityStorage {
			continue // always granted; the stub and the widget say so themselves
		}
		mapped, all := 0, true
		for _, cp := range asked {
			if standsFor(b, cp.Purpose, t) {
				mapped++
				all = all && granted[cp.Key]
			}
		}
		necessary := false
		for _, cp := range c.Purposes {
			if cp.LegalBasis == BasisNecessary && cp.Latest != nil && cp.InScope(p.ID, p.BrandID) && standsFor(b, cp.Purpose, t) {
				necessary = true
			}
		}
		if (mapped > 0 && all) || (mapped == 0 && necessary) {
			out = append(out, t)
		}
	}
	return out
}

// standsFor reports whether t is among consentModeOf(b, p), without building that list:
// it is asked for every type and purpose on each recording.
func standsFor(b *BannerSettings, p *Purpose, t string) bool {
	return consentModeAllowed(p.LegalBasis, t) && slices.Contains(b.ConsentMode[p.Key], t)
}

// withinDomain reports whether host (without port) is domain or a subdomain of it.
func withinDomain(host, domain string) bool {
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	host, domain = strings.ToLower(host), strings.TrimPrefix(strings.ToLower(domain), ".")
	return host == domain || strings.HasSuffix(host, "."+domain)
}
