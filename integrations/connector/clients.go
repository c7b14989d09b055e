package connector

import (
	"context"
	"time"

	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
	"github.com/lupa-cmp/lupa/integrations/klaviyo"
	"github.com/lupa-cmp/lupa/integrations/mailchimp"
)

// clients is a connector loaded for use: its row, credentials and vendor client. One per
// connector and process, so the vendor's rate and concurrency limits are kept across
// every delivery to it.
type clients struct {
	conn      *Connector
	creds     Credentials
	version   int64 // the row's updated_at when loaded
	checked   time.Time
	mailchimp *mailchimp.Client
	hubspot   *hubspot.Client
	klaviyo   *klaviyo.Client
}

func cacheKey(tenantID, id string) string { return tenantID + "/" + id }

func (s *Service) forget(tenantID, id string) {
	s.mu.Lock()
	delete(s.clients, cacheKey(tenantID, id))
	s.mu.Unlock()
}

// loaded returns the connector with its clients, from the cache while the row is unchanged
// (looked at again after five seconds, so an update on another instance takes effect).
func (s *Service) loaded(ctx context.Context, tenantID, id string) (*clients, error) {
	k := cacheKey(tenantID, id)
	now := time.Now()
	s.mu.Lock()
	c, ok := s.clients[k]
	fresh := ok && now.Sub(c.checked) < 5*time.Second
	s.mu.Unlock()
	if fresh {
		return c, nil
	}
	r, err := s.row(ctx, s.db.Read, tenantID, id)
	if err != nil {
		return nil, err
	}
	if ok && c.version == r.UpdatedAt {
		s.mu.Lock()
		c.checked = now
		s.mu.Unlock()
		return c, nil
	}
	creds, err := s.unseal(ctx, r)
	if err != nil {
		return nil, err
	}
	c = &clients{conn: r.domain(), creds: creds, version: r.UpdatedAt, checked: now}
	if err := s.build(c); err != nil {
		return nil, err
	}
	// Calls made at once may all have missed the cache: the first client stored is the one
	// every one of them uses, so the vendor's limits are kept by one limiter.
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.clients[k]; ok && cur.version == c.version {
		return cur, nil
	}
	if len(s.clients) > 10000 {
		clear(s.clients)
	}
	s.clients[k] = c
	return c, nil
}

// build makes the vendor client. In-call retries stay short: the engine's schedule is the
// long-term retry, and a delivery holds a worker while it waits.
func (s *Service) build(c *clients) error {
	var err error
	base, hc, n := c.conn.BaseURL, s.opt.HTTPClient, s.opt.Instances
	part := func(limit int) int { return max(limit/n, 1) } // this instance's share
	switch c.conn.Vendor {
	case Mailchimp:
		c.mailchimp, err = mailchimp.New(c.creds.APIKey, mailchimp.Options{BaseURL: base, HTTPClient: hc, Now: s.now,
			Concurrency: part(mailchimp.MaxConcurrent), MaxRetryWait: 10 * time.Second, NoRetries: s.opt.NoRetries})
	case HubSpot:
		c.hubspot, err = hubspot.New(c.creds.AccessToken, hubspot.Options{BaseURL: base, HTTPClient: hc, Now: s.now,
			Limit:       vendorhttp.Window{Count: part(hubspot.DefaultLimit.Count), Per: hubspot.DefaultLimit.Per},
			Concurrency: part(10), MaxRetryWait: 10 * time.Second, NoRetries: s.opt.NoRetries})
	case Klaviyo:
		c.klaviyo, err = klaviyo.New(c.creds.APIKey, klaviyo.Options{BaseURL: base, HTTPClient: hc, Now: s.now,
			Share: n, MaxRetryWait: 10 * time.Second, NoRetries: s.opt.NoRetries})
	}
	return err
}
