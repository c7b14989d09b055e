// Package clocktest is the clock tests inject into services instead of sleeping: it stands
// still until the test moves it, and goroutines of the code under test may read it.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a time that moves only when the test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that reads t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time; pass the method as a service's now function.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// AddDate moves the clock on by years, months and days, as time.Time.AddDate does.
func (c *Clock) AddDate(y, m, d int) {
	c.mu.Lock()
	c.t = c.t.AddDate(y, m, d)
	c.mu.Unlock()
}
