package identityweb

import (
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
)

// RateLimiter limits requests per client: a token bucket of burst tokens that refills at
// perSecond, per IPv4 address or IPv6 /64 (one subscriber commonly holds a whole /64, and
// gets a new address in it whenever it likes). Buckets live in this process: behind a load
// balancer each instance allows the limit, which is a bound on abuse, not an exact quota.
// The client is ClientAddr's: forwarding headers count only from the trusted proxies.
//
// A bucket is kept as one number, its theoretical arrival time (GCRA, the generic cell rate
// algorithm, which is a token bucket): the moment it would be full again. A bucket that is
// full holds nothing worth keeping and is dropped when room is needed; so memory follows
// the clients active within one refill, and is bounded even then (maxBucketsPerShard).
type RateLimiter struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // (burst-1) intervals: how far ahead of now a bucket may run
	shards    [64]shard
	seed      maphash.Seed
	now       func() time.Time
	// start is when the limiter was made: times are kept as nanoseconds since.
	start time.Time
}

type shard struct {
	mu  sync.Mutex
	tat map[bucketKey]int64 // nanoseconds since the limiter's start
	_   [48]byte            // one shard per cache line: their mutexes are taken from every core
}

// bucketKey is an IPv4 address in its IPv4-mapped form, or an IPv6 /64 with the rest zero.
type bucketKey [16]byte

// maxBucketsPerShard bounds memory under a flood of distinct addresses (or /64s): 64 shards
// of 4,096 buckets of 24 bytes each, about 10 MB with the maps' own overhead. Honest
// clients hold a bucket only while it refills (a second or so at the public API's default),
// so this is far more than a single instance ever sees from them.
const maxBucketsPerShard = 4096

// NewRateLimiter allows perSecond requests per client on average, bursts of burst.
func NewRateLimiter(perSecond float64, burst int, now func() time.Time) *RateLimiter {
	// Keep the arithmetic well inside int64 for any configuration: a token at least every
	// day, a tolerance of at most about 36 years.
	interval := math.Min(float64(time.Second)/perSecond, float64(24*time.Hour))
	burst = max(burst, 1)
	tolerance := math.Min(interval*float64(burst-1), float64(math.MaxInt64/8))
	r := &RateLimiter{interval: max(int64(interval), 1), tolerance: int64(tolerance), seed: maphash.MakeSeed(), now: now, start: now()}
	for i := range r.shards {
		r.shards[i].tat = map[bucketKey]int64{}
	}
	return r
}

// keyOf is the bucket of a client address: the address for IPv4, its /64 for IPv6.
func keyOf(a netip.Addr) bucketKey {
	a = a.Unmap()
	k := bucketKey(a.As16())
	if !a.Is4() {
		clear(k[8:])
	}
	return k
}

// Allow takes a token of client's bucket, or says how long until there is one.
func (r *RateLimiter) Allow(client netip.Addr) (bool, time.Duration) {
	k := keyOf(client)
	now := int64(r.now().Sub(r.start))
	s := &r.shards[maphash.Bytes(r.seed, k[:])%uint64(len(r.shards))]
	s.mu.Lock()
	tat, known := s.tat[k]
	if tat < now {
		tat = now // full
	} else if most := now + r.tolerance + r.interval; tat > most {
		// Only a clock set back leaves a bucket further ahead than its last request could:
		// the client waits one interval at most, as if the clock had stood still.
		tat = most
		s.tat[k] = tat
	}
	if wait := tat - now - r.tolerance; wait > 0 {
		s.mu.Unlock()
		return false, time.Duration(wait)
	}
	if !known && len(s.tat) >= maxBucketsPerShard {
		evict(s, now)
	}
	s.tat[k] = tat + r.interval
	s.mu.Unlock()
	return true, 0
}

// evict makes room in a full shard. Full buckets go first: dropping them changes nothing.
// If a flood of distinct clients keeps more than 7/8 of the shard busy, buckets are dropped
// at random (the map's order) down to 7/8: those clients start again with a full bucket,
// and most of them are the flood's own. Each scan frees an eighth of the shard, so a flood
// costs a few map entries per request, never a scan per request.
func evict(s *shard, now int64) {
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
	for k := range s.tat {
		if len(s.tat) <= maxBucketsPerShard-maxBucketsPerShard/8 {
			break
		}
		delete(s.tat, k)
	}
}

// clientKey names the client of an address for the throttles keyed by text (the accounts
// service's sign-in throttle): the address for IPv4, its /64 for IPv6, as the buckets.
func clientKey(ip string) string {
	a, ok := parseAddr(ip)
	if !ok {
		return ip
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// AllowClient is Allow for the request's client.
func (r *RateLimiter) AllowClient(c *gin.Context) (bool, time.Duration) {
	return r.Allow(ClientAddr(c))
}

// Middleware answers 429 with Retry-After when the client is over its limit.
func (r *RateLimiter) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		ok, wait := r.AllowClient(c)
		if !ok {
			// The answer differs with the Origin (below), with or without one: caches must
			// know, whatever this request sent.
			c.Header("Vary", "Origin")
			if origin := c.GetHeader("Origin"); origin != "" {
				// Let a widget read the 429 and its Retry-After instead of a network error.
				allowCORS(c, origin)
			}
			RetryAfter(c, wait.Seconds())
			WriteProblem(c, http.StatusTooManyRequests, identity.ERateLimited, "Too Many Requests",
				"slow down: too many requests from this address", nil)
			return
		}
		c.Next()
	}
}
