// Package safehttp makes HTTP clients for URLs that tenants configure (an identity
// provider's discovery document and keys, later webhook endpoints): every connection is
// checked at dial time, after name resolution, and one to a loopback, private, link-local,
// shared or otherwise internal address — a cloud metadata service included — is refused.
// Checking at dial time rather than when the URL is saved also covers redirects and names
// that resolve differently later (DNS rebinding).
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrBlocked is returned (wrapped) for a connection to an address that is not public.
var ErrBlocked = errors.New("safehttp: connections to internal addresses are not allowed")

// Options shape a client; zero values take the defaults.
type Options struct {
	// AllowPrivate turns the address check off (LUPA_ALLOW_PRIVATE_WEBHOOKS=true): for tests
	// and for installations whose identity provider lives on the internal network.
	AllowPrivate bool
	// Timeout bounds a whole request, default 10 s.
	Timeout time.Duration
}

// internal are ranges that are not public unicast beyond what netip's predicates say.
var internal = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier NAT; some clouds' metadata)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// Public reports whether ip is a public unicast address that a tenant's URL may reach.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range internal {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// control runs after name resolution, before each connection: address is the IP and port
// about to be dialled.
func control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlocked, ap.Addr())
	}
	return nil
}

// Dialer returns a dialer that refuses internal addresses unless allowPrivate.
func Dialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = control
	}
	return d
}

// New returns a client whose connections go only to public addresses (unless
// opt.AllowPrivate), never through a proxy from the environment (the proxy would make the
// connection for us, unchecked), following at most three redirects.
func New(opt Options) *http.Client {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	d := Dialer(opt.AllowPrivate)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           50,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  opt.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{Transport: tr, Timeout: opt.Timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("safehttp: too many redirects")
		}
		return nil
	}}
}
