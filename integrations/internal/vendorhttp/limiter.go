package vendorhttp

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Window is a documented limit: at most Count requests per Per.
type Window struct {
	Count int
	Per   time.Duration
}

// Limiter keeps one connector's calls within a vendor's limits: at most Concurrency calls
// in flight, every Window respected, and no call at all before a 429's Retry-After has
// passed. It is per process: with several Lupa instances the limits are shared by
// configuring a lower share per instance (see docs/connectors.md).
//
// It runs on the real clock, never an injected one: it sleeps, and a simulated clock that
// does not advance with those sleeps would hold a pause forever.
type Limiter struct {
	sem     chan struct{}
	buckets []*rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

// NewLimiter builds a limiter. concurrency ≤ 0 means unbounded. Each window becomes a
// token bucket whose burst plus refill over the window never exceeds Count, so the limit
// holds over any sliding window, not just on average.
func NewLimiter(concurrency int, windows ...Window) *Limiter {
	l := &Limiter{}
	if concurrency > 0 {
		l.sem = make(chan struct{}, concurrency)
	}
	for _, w := range windows {
		if w.Count <= 0 || w.Per <= 0 {
			continue
		}
		burst := max(1, w.Count/10)
		refill := float64(w.Count-burst) / w.Per.Seconds()
		if refill <= 0 {
			refill = float64(w.Count) / w.Per.Seconds() / 2
		}
		l.buckets = append(l.buckets, rate.NewLimiter(rate.Limit(refill), burst))
	}
	return l
}

// Acquire waits until a call may start and returns the function that ends it. It fails
// only when ctx ends first.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	if err := l.waitPause(ctx); err != nil {
		return nil, err
	}
	for _, b := range l.buckets {
		if err := l.waitBucket(ctx, b); err != nil {
			return nil, err
		}
	}
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return func() { <-l.sem }, nil
	}
	return func() {}, nil
}

// PauseFor stops new calls for d (a 429's Retry-After): every worker sharing this
// connector backs off, not just the one that was told.
func (l *Limiter) PauseFor(d time.Duration) {
	if l == nil || d <= 0 {
		return
	}
	until := time.Now().Add(d)
	l.mu.Lock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.mu.Unlock()
}

// Paused returns how long the current 429 pause still lasts (0 when none).
func (l *Limiter) Paused() time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, time.Until(l.pausedUntil))
}

func (l *Limiter) waitPause(ctx context.Context) error {
	l.mu.Lock()
	d := l.pausedUntil.Sub(time.Now())
	l.mu.Unlock()
	return Sleep(ctx, d)
}

func (l *Limiter) waitBucket(ctx context.Context, b *rate.Limiter) error {
	now := time.Now()
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return context.DeadlineExceeded
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Sub(now) < d {
		r.CancelAt(now)
		return context.DeadlineExceeded
	}
	if err := Sleep(ctx, d); err != nil {
		r.CancelAt(time.Now())
		return err
	}
	return nil
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
