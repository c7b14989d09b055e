package accounts

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Throttling of failed sign-ins. Per account: after failuresBeforeLock failures in a row
// the account refuses passwords for a while, doubling each time up to lockMax (a sign-in
// link or a reset still works: they prove the mailbox). Per client address: ipRate
// attempts a second with a burst of ipBurst, in memory on each instance.
const (
	failuresBeforeLock = 5
	lockBase           = time.Minute
	lockMax            = time.Hour
	ipRate             = 0.5
	ipBurst            = 10
)

// SignIn checks an email address and password. Every failure is ErrSignIn (or
// ErrThrottled), and an address without an account costs the same hashing work as a wrong
// password, so neither the answer nor its timing tells whether an account exists.
func (s *Service) SignIn(ctx context.Context, tenantID, email, pw, clientIP string) (*Session, error) {
	if !s.ips.allow(tenantID + "|" + clientIP) {
		return nil, ErrThrottled
	}
	email = identity.NormalizeEmail(email)
	a, err := s.accountByEmail(ctx, s.db.Read, tenantID, email)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if a == nil || a.PasswordHash == nil || a.EmailVerifiedAt == nil || (a.LockedUntil != nil && *a.LockedUntil > now.UnixMilli()) {
		if err := s.hasher.Dummy(ctx, pw); err != nil {
			return nil, busyOr(err)
		}
		return nil, ErrSignIn
	}
	ok, rehash, err := s.hasher.Verify(ctx, pw, *a.PasswordHash)
	if err != nil {
		return nil, busyOr(err)
	}
	if !ok {
		if err := s.recordFailure(ctx, a); err != nil {
			return nil, err
		}
		return nil, ErrSignIn
	}
	var newHash string
	if rehash {
		// Parameters changed since this password was hashed: store it under today's.
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			return nil, busyOr(err)
		}
	}
	var sess *Session
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if newHash != "" {
			if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).
				Update("password_hash", newHash).Error; err != nil {
				return err
			}
		}
		if err := s.clearFailures(tx, a); err != nil {
			return err
		}
		sess, err = s.startSession(tx, a)
		return err
	})
	return sess, err
}

func (s *Service) recordFailure(ctx context.Context, a *accountRow) error {
	// Counted in the database, so that every instance sees the same count; the lock is
	// computed from this request's view, which at worst locks one attempt later.
	n := a.FailedSignins + 1
	updates := map[string]any{"failed_signins": gorm.Expr("failed_signins + 1")}
	if n >= failuresBeforeLock {
		lock := lockBase << min(n-failuresBeforeLock, 6)
		updates["locked_until"] = s.now().Add(min(lock, lockMax)).UnixMilli()
	}
	return s.db.Write.WithContext(ctx).Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).Updates(updates).Error
}

func (s *Service) clearFailures(tx *gorm.DB, a *accountRow) error {
	if a.FailedSignins == 0 && a.LockedUntil == nil {
		return nil
	}
	return tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).
		Updates(map[string]any{"failed_signins": 0, "locked_until": nil}).Error
}

// throttle is a token bucket per key (a client address, a recipient; per instance),
// bounded in size.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	rate    rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
}

func newThrottle(now func() time.Time, r rate.Limit, burst int) *throttle {
	return &throttle{now: now, rate: r, burst: burst, buckets: map[string]*rate.Limiter{}}
}

func (t *throttle) allow(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.buckets[key]
	if l == nil {
		if len(t.buckets) > 100_000 {
			clear(t.buckets) // a flood of addresses must not grow memory without bound
		}
		l = rate.NewLimiter(t.rate, t.burst)
		t.buckets[key] = l
	}
	return l.AllowN(t.now(), 1)
}
