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
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrBlocked is returned (wrapped) for a connection to an address that is not public.
var ErrBlocked = errors.New("safehttp: connections to internal addresses are not allowed")

// ErrTooLarge is returned (wrapped) when a response body is longer than the client's
// MaxBodyBytes: reading it stops there, so a tenant's URL cannot fill Lupa's memory.
var ErrTooLarge = errors.New("safehttp: response body too large")

// ErrDowngrade is returned (wrapped) for a redirect from https to plain http: what comes
// back could be changed on the way (keys that verify tokens), and what goes out again
// (an API key in Authorization, which net/http keeps for the same host) could be read.
var ErrDowngrade = errors.New("safehttp: redirect from https to plain http refused")

// DefaultMaxBodyBytes bounds a response body when Options.MaxBodyBytes is zero: a
// discovery document, a key set or a token answer is a few kilobytes.
const DefaultMaxBodyBytes = 1 << 20

// Options shape a client; zero values take the defaults.
type Options struct {
	// AllowPrivate turns the address check off (LUPA_ALLOW_PRIVATE_WEBHOOKS=true): for tests
	// and for installations whose identity provider lives on the internal network.
	AllowPrivate bool
	// Timeout bounds a whole request, default 10 s.
	Timeout time.Duration
	// MaxBodyBytes bounds every response body, DefaultMaxBodyBytes when zero: reading
	// past the bound fails with ErrTooLarge. (Libraries such as go-oidc read discovery
	// documents and key sets whole, however long.)
	MaxBodyBytes int64
	// MaxIdleConns and MaxIdleConnsPerHost keep connections open for reuse; zero takes
	// 50 and net/http's default (2).
	MaxIdleConns, MaxIdleConnsPerHost int
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
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address, internal ones too
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds an IPv4 address too
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
// connection for us, unchecked), following at most three redirects and none from https to
// plain http, and reading at most opt.MaxBodyBytes of any response body.
func New(opt Options) *http.Client {
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opt.MaxIdleConns <= 0 {
		opt.MaxIdleConns = 50
	}
	d := Dialer(opt.AllowPrivate)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           opt.MaxIdleConns,
		MaxIdleConnsPerHost:    opt.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  opt.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{Transport: bounded{rt: tr, max: opt.MaxBodyBytes}, Timeout: opt.Timeout, CheckRedirect: CheckRedirect}
}

// CheckRedirect is the clients' redirect policy: at most three redirects, and once any
// request of the chain went over https, none to plain http (http→https→http included).
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("safehttp: too many redirects")
	}
	if req.URL.Scheme == "https" {
		return nil
	}
	for _, r := range via {
		if r.URL.Scheme == "https" {
			return ErrDowngrade
		}
	}
	return nil
}

// bounded gives every response a body that reads at most max bytes.
type bounded struct {
	rt  http.RoundTripper
	max int64
}

func (b bounded) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := b.rt.RoundTrip(req)
	if err != nil {
		return res, err
	}
	// The status and headers still count when the body is too long (a webhook receiver's
	// 200 with a long page is a delivery): only reading past the bound fails.
	res.Body = &boundedBody{rc: res.Body, left: b.max}
	return res, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (b bounded) CloseIdleConnections() {
	if c, ok := b.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type boundedBody struct {
	rc   io.ReadCloser
	left int64 // bytes still allowed; -1 once the bound was passed
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more than allowed tells a longer body from one that ends here
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, ErrTooLarge
	}
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
