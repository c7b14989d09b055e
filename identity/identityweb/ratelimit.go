package identityweb

import (
	"hash/maphash"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/lupa-cmp/lupa/identity"
)

// RateLimiter limits requests per client IP with a token bucket per address. Buckets live
// in this process: behind a load balancer each instance allows the limit, which is a bound
// on abuse, not an exact quota. The client IP is gin's, which trusts forwarding headers only
// from the configured proxies.
type RateLimiter struct {
	rate   rate.Limit
	burst  int
	shards [64]shard
	seed   maphash.Seed
	now    func() time.Time
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter allows perSecond requests per IP on average, bursts of burst.
func NewRateLimiter(perSecond float64, burst int, now func() time.Time) *RateLimiter {
	r := &RateLimiter{rate: rate.Limit(perSecond), burst: burst, seed: maphash.MakeSeed(), now: now}
	for i := range r.shards {
		r.shards[i].buckets = map[string]*bucket{}
	}
	return r
}

const maxBucketsPerShard = 20_000

// Allow takes a token for ip, or says how long to wait.
func (r *RateLimiter) Allow(ip string) (bool, time.Duration) {
	now := r.now()
	s := &r.shards[maphash.String(r.seed, ip)%uint64(len(r.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[ip]
	if b == nil {
		if len(s.buckets) >= maxBucketsPerShard {
			r.evict(s, now)
		}
		b = &bucket{lim: rate.NewLimiter(r.rate, r.burst)}
		s.buckets[ip] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict drops buckets idle long enough to be full again; if none are, it drops them all
// (a flood of distinct addresses must not grow memory without bound).
func (r *RateLimiter) evict(s *shard, now time.Time) {
	idle := time.Duration(float64(r.burst)/float64(r.rate)*float64(time.Second)) + time.Second
	for ip, b := range s.buckets {
		if now.Sub(b.seen) > idle {
			delete(s.buckets, ip)
		}
	}
	if len(s.buckets) >= maxBucketsPerShard {
		clear(s.buckets)
	}
}

// clientKey is the bucket of a client address: the address itself for IPv4, its /64 for
// IPv6, since one subscriber commonly holds a whole /64.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// AllowClient is Allow for the request's client: its address, or its /64 for IPv6.
func (r *RateLimiter) AllowClient(c *gin.Context) (bool, time.Duration) {
	return r.Allow(clientKey(c.ClientIP()))
}

// Middleware answers 429 with Retry-After when the client is over its limit.
func (r *RateLimiter) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		ok, wait := r.AllowClient(c)
		if !ok {
			if origin := c.GetHeader("Origin"); origin != "" {
				// Let a widget read the 429 and its Retry-After instead of a network error.
				allowCORS(c, origin)
				c.Header("Vary", "Origin")
			}
			RetryAfter(c, wait.Seconds())
			WriteProblem(c, http.StatusTooManyRequests, identity.ERateLimited, "Too Many Requests",
				"slow down: too many requests from this address", nil)
			return
		}
		c.Next()
	}
}
