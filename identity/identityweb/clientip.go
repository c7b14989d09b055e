package identityweb

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"
)

// Client addresses. A request's client is the address that connected, unless that address
// is one of the trusted proxies (LUPA_TRUSTED_PROXIES): then X-Forwarded-For is read from
// the right. Each trusted proxy appended the address it took the connection from, so the
// first address from the right that is not a trusted proxy is the client, and whatever
// stands left of it the client wrote itself and is ignored. Every X-Forwarded-For line
// counts, in order: some proxies add a line of their own instead of appending to the
// client's. An entry may carry a port (Azure's gateways write "203.0.113.5:51234", IPv6 as
// "[2001:db8::1]:443"), a zone or an IPv4-mapped IPv6 form ("::ffff:203.0.113.5"): each
// names the plain address. An entry that is no address at all ends the walk at the last
// address a trusted proxy vouched for. X-Real-IP and Forwarded (RFC 7239) are not read:
// a proxy that does not set them passes on whatever the client sent.
//
// Lupa reads the client address through ClientIP and ClientAddr only (gin's ClientIP is
// switched off in routes.go): the rate limits, the sign-in throttle, the truncated address
// kept beside an event, and X-Forwarded-Proto all follow the same rule.

// ClientIPs finds the client address of requests.
type ClientIPs struct {
	trusted []netip.Prefix
}

// NewClientIPs returns the resolver for a list of trusted proxies: IP addresses or CIDR
// prefixes.
func NewClientIPs(trusted []string) (*ClientIPs, error) {
	p := &ClientIPs{}
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		var pre netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if pre, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			a := pre.Addr()
			if a.Is4In6() && pre.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
				pre = netip.PrefixFrom(a.Unmap(), pre.Bits()-96)
			}
			pre = pre.Masked()
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			a = a.Unmap().WithZone("")
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		p.trusted = append(p.trusted, pre)
	}
	return p, nil
}

// isTrusted reports whether a (unmapped, without zone) is a trusted proxy.
func (p *ClientIPs) isTrusted(a netip.Addr) bool {
	for _, t := range p.trusted {
		if t.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of r, and whether r came from a trusted proxy. The
// address is invalid only when RemoteAddr is not an address (never on a TCP listener).
func (p *ClientIPs) Resolve(r *http.Request) (client netip.Addr, viaProxy bool) {
	peer, _ := parseAddr(r.RemoteAddr)
	if p == nil || len(p.trusted) == 0 || !peer.IsValid() || !p.isTrusted(peer) {
		return peer, false
	}
	last := peer
	lines := r.Header.Values("X-Forwarded-For")
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			item := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				item, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			a, ok := parseAddr(item)
			if !ok {
				return last, true // not an address: nothing to its left can be believed
			}
			if !p.isTrusted(a) {
				return a, true
			}
			last = a
		}
	}
	// Every hop is a trusted proxy: the client is the first of them (inside the network).
	return last, true
}

// parseAddr reads an address as X-Forwarded-For and RemoteAddr write it: bare, or with a
// port ("192.0.2.1:80", "[2001:db8::1]:80", "[2001:db8::1]"). It returns the plain address:
// IPv4-mapped IPv6 as IPv4, without zone.
func parseAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	var a netip.Addr
	var err error
	switch {
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		a, err = netip.ParseAddr(s[1 : len(s)-1])
	case strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1:
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

const contextClientIPs = "lupa.client_ips"

// Middleware makes the resolver the one ClientIP and ClientAddr use for the request. It
// costs a context entry; the address is worked out only when asked for.
func (p *ClientIPs) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(contextClientIPs, p)
		c.Next()
	}
}

func clientIPsOf(c *gin.Context) *ClientIPs {
	v, _ := c.Get(contextClientIPs)
	p, _ := v.(*ClientIPs)
	return p // nil (no proxy trusted) outside the router
}

// ClientAddr returns the request's client address (see ClientIPs).
func ClientAddr(c *gin.Context) netip.Addr {
	a, _ := clientIPsOf(c).Resolve(c.Request)
	return a
}

// ClientIP returns the request's client address as text, "" when there is none.
func ClientIP(c *gin.Context) string {
	if a := ClientAddr(c); a.IsValid() {
		return a.String()
	}
	return ""
}

// fromTrustedProxy reports whether the request came through a trusted proxy, whose
// forwarding headers (X-Forwarded-Proto) may then be believed.
func fromTrustedProxy(c *gin.Context) bool {
	p := clientIPsOf(c)
	if p == nil || len(p.trusted) == 0 {
		return false
	}
	peer, ok := parseAddr(c.Request.RemoteAddr)
	return ok && p.isTrusted(peer)
}
