package identityweb

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// clientCtx is a gin context for a request that arrived from remoteAddr.
func clientCtx(remoteAddr string) *gin.Context {
	gin.SetMode(gin.TestMode)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/v1/consents", nil)
	c.Request.RemoteAddr = remoteAddr
	return c
}

// TestClientIPsResolve: the rightmost address that is not a trusted proxy is the client;
// what the client wrote left of it, X-Real-IP and Forwarded never count; ports, brackets,
// zones and IPv4-mapped forms name the plain address.
func TestClientIPsResolve(t *testing.T) {
	ips, err := NewClientIPs([]string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, remote string
		xff          []string
		other        [2]string // another header, name and value
		want         string
		via          bool
	}{
		{"direct client", "198.51.100.1:5000", nil, [2]string{}, "198.51.100.1", false},
		{"untrusted peer's XFF is its own claim", "198.51.100.1:5000", []string{"203.0.113.9"}, [2]string{}, "198.51.100.1", false},
		{"trusted proxy", "10.0.0.2:80", []string{"203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"spoofed entries left of the real one", "10.0.0.2:80", []string{"1.1.1.1, 8.8.8.8, 203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"chain of trusted proxies", "10.0.0.2:80", []string{"6.6.6.6, 203.0.113.9, 10.1.1.1, 192.0.2.7"}, [2]string{}, "203.0.113.9", true},
		{"a proxy's own header line", "10.0.0.2:80", []string{"6.6.6.6", "203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"lines in order", "10.0.0.2:80", []string{"6.6.6.6, 203.0.113.9", "10.0.0.9"}, [2]string{}, "203.0.113.9", true},
		{"IPv4 with a port", "10.0.0.2:80", []string{"203.0.113.9:51234"}, [2]string{}, "203.0.113.9", true},
		{"IPv6 with a port", "10.0.0.2:80", []string{"[2001:db8::1]:443"}, [2]string{}, "2001:db8::1", true},
		{"IPv6 in brackets", "10.0.0.2:80", []string{"[2001:db8::1]"}, [2]string{}, "2001:db8::1", true},
		{"IPv6 with a zone", "10.0.0.2:80", []string{"fe80::1%eth0"}, [2]string{}, "fe80::1", true},
		{"IPv4-mapped", "10.0.0.2:80", []string{"::ffff:203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"IPv4-mapped proxy", "[::ffff:10.0.0.2]:80", []string{"203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"mapped trusted prefix", "172.16.3.4:80", []string{"203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"IPv6 proxy", "[2001:db8:ffff::5]:80", []string{"2001:db8:1::7"}, [2]string{}, "2001:db8:1::7", true},
		{"garbage stops at the last vouched address", "10.0.0.2:80", []string{"203.0.113.9, unknown, 10.3.3.3"}, [2]string{}, "10.3.3.3", true},
		{"garbage rightmost: the proxy", "10.0.0.2:80", []string{"203.0.113.9, garbage"}, [2]string{}, "10.0.0.2", true},
		{"garbage left of the client", "10.0.0.2:80", []string{"garbage, 203.0.113.9"}, [2]string{}, "203.0.113.9", true},
		{"empty entry", "10.0.0.2:80", []string{"203.0.113.9,,"}, [2]string{}, "10.0.0.2", true},
		{"all trusted: the first", "10.0.0.2:80", []string{"10.9.9.9, 10.0.0.3"}, [2]string{}, "10.9.9.9", true},
		{"no XFF: the proxy", "10.0.0.2:80", nil, [2]string{}, "10.0.0.2", true},
		{"X-Real-IP is not read", "10.0.0.2:80", nil, [2]string{"X-Real-IP", "203.0.113.50"}, "10.0.0.2", true},
		{"X-Real-IP is not read beside bad XFF", "10.0.0.2:80", []string{"nonsense"}, [2]string{"X-Real-IP", "203.0.113.50"}, "10.0.0.2", true},
		{"Forwarded is not read", "10.0.0.2:80", nil, [2]string{"Forwarded", "for=203.0.113.51"}, "10.0.0.2", true},
		{"huge port", "10.0.0.2:80", []string{"203.0.113.9:999999"}, [2]string{}, "10.0.0.2", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if c.other[0] != "" {
				r.Header.Set(c.other[0], c.other[1])
			}
			got, via := ips.Resolve(r)
			if got.String() != c.want || via != c.via {
				t.Fatalf("Resolve = %s, %v; want %s, %v", got, via, c.want, c.via)
			}
		})
	}
	if _, err := NewClientIPs([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("a bad prefix was taken")
	}
}

// TestRateLimiterBucket: a burst, then one request per interval, with Retry-After until the
// next token; a client that stays away gets its burst back.
func TestRateLimiterBucket(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := NewRateLimiter(0.5, 3, func() time.Time { return now }) // a token every 2 s
	a := netip.MustParseAddr("198.51.100.1")
	for i := range 3 {
		if ok, _ := r.Allow(a); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := r.Allow(a)
	if ok || wait != 2*time.Second {
		t.Fatalf("over the burst: %v, wait %s; want refused, 2s", ok, wait)
	}
	if ok, _ := r.Allow(netip.MustParseAddr("198.51.100.2")); !ok {
		t.Fatal("another client limited by the first")
	}
	now = now.Add(1500 * time.Millisecond)
	if ok, wait := r.Allow(a); ok || wait != 500*time.Millisecond {
		t.Fatalf("before the next token: %v, wait %s", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := r.Allow(a); !ok {
		t.Fatal("the next token was refused")
	}
	if ok, _ := r.Allow(a); ok {
		t.Fatal("two tokens from one interval")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if ok, _ := r.Allow(a); !ok {
			t.Fatalf("burst after a rest: request %d refused", i+1)
		}
	}
	// A clock set back by an hour costs the client one interval, not the hour.
	for ok := true; ok; ok, _ = r.Allow(a) {
	}
	now = now.Add(-time.Hour)
	if ok, wait := r.Allow(a); ok || wait > 2*time.Second {
		t.Fatalf("after the clock went back: %v, wait %s", ok, wait)
	}
	now = now.Add(2 * time.Second)
	if ok, _ := r.Allow(a); !ok {
		t.Fatal("locked out after the clock went back")
	}
	// Absurd settings stay in range.
	tiny := NewRateLimiter(1e-12, 1_000_000, func() time.Time { return now })
	if ok, _ := tiny.Allow(a); !ok {
		t.Fatal("a tiny rate refused the first request")
	}
}

// TestRateLimiterKeys: IPv4 per address, in whatever form it came; IPv6 per /64.
func TestRateLimiterKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := NewRateLimiter(0.01, 2, func() time.Time { return now })
	allowed := func(remote string) bool {
		ok, _ := r.AllowClient(clientCtx(remote))
		return ok
	}
	for _, same := range [][]string{
		{"198.51.100.1:1000", "[::ffff:198.51.100.1]:2000", "198.51.100.1:3000"},
		{"[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:2000", "[2001:db8:1:2::1%eth0]:3000"},
	} {
		if !allowed(same[0]) || !allowed(same[1]) {
			t.Fatalf("%v: burst refused", same)
		}
		if allowed(same[2]) {
			t.Fatalf("%v: one client got two buckets", same)
		}
	}
	if !allowed("198.51.100.2:1") || !allowed("[2001:db8:1:3::1]:1") {
		t.Fatal("a neighbour shares a bucket")
	}
}

// TestRateLimiterMemoryBound: a flood of distinct IPv6 /64s (anyone with a /48 has 65,536
// of them, and tunnel brokers hand out /48s for free) keeps the limiter's memory bounded,
// well below what the server may use in all.
func TestRateLimiterMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a flood")
	}
	now := time.Unix(1_800_000_000, 0)
	// The account pages' mail limit: a bucket takes 5 s per token to refill, so every
	// flooding address is still limited when the next arrives.
	r := NewRateLimiter(0.2, 20, func() time.Time { return now })
	c := clientCtx("")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const flood = 400_000
	for i := range flood {
		c.Request.RemoteAddr = "[2001:db8:" + strconv.FormatUint(uint64(i>>16), 16) + ":" + strconv.FormatUint(uint64(i&0xffff), 16) + "::1]:443"
		if ok, _ := r.AllowClient(c); !ok {
			t.Fatalf("request %d of the flood refused: every one is a new client", i)
		}
		now = now.Add(time.Microsecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d distinct /64s: the limiter holds %.1f MB", flood, float64(grew)/(1<<20))
	if grew > 24<<20 {
		t.Fatalf("a flood of %d /64s grew the heap by %.1f MB", flood, float64(grew)/(1<<20))
	}
	runtime.KeepAlive(r)
	// The limit still works for a client that keeps coming.
	a := netip.MustParseAddr("198.51.100.1")
	for range 20 {
		r.Allow(a)
	}
	if ok, _ := r.Allow(a); ok {
		t.Fatal("after the flood, a client over its burst is allowed")
	}
}

// BenchmarkRateLimiterFlood measures a request of a flood of new clients into a full
// limiter (eviction included) and of a known client.
func BenchmarkRateLimiterFlood(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	r := NewRateLimiter(0.2, 20, func() time.Time { return now })
	addr := func(i int) netip.Addr {
		var a [16]byte
		a[0], a[1] = 0x20, 0x01
		a[4], a[5], a[6], a[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(a)
	}
	for i := range 64 * maxBucketsPerShard {
		r.Allow(addr(i))
	}
	b.Run("new client", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			r.Allow(addr(1<<30 + i))
			now = now.Add(time.Microsecond)
		}
	})
	b.Run("known client", func(b *testing.B) {
		known := netip.MustParseAddr("198.51.100.1")
		for b.Loop() {
			r.Allow(known)
			now = now.Add(time.Second)
		}
	})
}

// BenchmarkClientAddrAndLimit is what the collection path adds per request for the client
// address: the limiter's token and the address kept beside the event, behind a trusted
// proxy (the benchmark's set-up: clients spread over 1,000 addresses).
func BenchmarkClientAddrAndLimit(b *testing.B) {
	gin.SetMode(gin.TestMode)
	ips, err := NewClientIPs([]string{"127.0.0.1/32"})
	if err != nil {
		b.Fatal(err)
	}
	r := NewRateLimiter(1e6, 1e6, time.Now)
	c := clientCtx("127.0.0.1:54321")
	c.Set(contextClientIPs, ips)
	xff := make([]string, 1000)
	for i := range xff {
		xff[i] = "10." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ".7"
	}
	for i := 0; b.Loop(); i++ {
		c.Request.Header["X-Forwarded-For"] = xff[i%len(xff) : i%len(xff)+1]
		r.AllowClient(c)
		_ = ClientIP(c)
	}
}
