// Package klaviyo is Lupa's client for the Klaviyo API (JSON:API, revision header): it
// subscribes and unsubscribes profiles to email marketing with bulk jobs, requests
// profile deletion through data-privacy deletion jobs, and lists suppressed
// (unsubscribed, complained, bounced) profiles page by page for the periodic reconcile.
// It keeps no state.
//
// Every job names its final state (SUBSCRIBED or UNSUBSCRIBED for the address), so
// repeating one leaves the same state. Beware: Klaviyo's subscribe job lifts UNSUBSCRIBE,
// SPAM_REPORT and USER_SUPPRESSED suppressions, so the engine must reconcile before it
// subscribes and never replay a stale subscribe (see docs/connectors.md).
package klaviyo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
)

// Error kinds, re-exported so callers need only this package.
var (
	ErrRetryable    = vendorhttp.ErrRetryable
	ErrRateLimited  = vendorhttp.ErrRateLimited
	ErrNotFound     = vendorhttp.ErrNotFound
	ErrUnauthorized = vendorhttp.ErrUnauthorized
	ErrRejected     = vendorhttp.ErrRejected
)

// Error is a failed call; see vendorhttp.Error.
type Error = vendorhttp.Error

// Defaults.
const (
	DefaultBaseURL = "https://a.klaviyo.com"
	// Revision is the API revision Lupa is written against (sent in the revision header).
	Revision = "2026-07-15"
	// MaxSubscribeBatch is the documented cap of profiles per bulk subscribe job.
	MaxSubscribeBatch = 1000
	// MaxUnsubscribeBatch is the documented cap of profiles per bulk unsubscribe job.
	MaxUnsubscribeBatch = 100
	// PageSize is the largest page of profiles Klaviyo returns.
	PageSize  = 100
	mediaType = "application/vnd.api+json"
)

// Documented rate limits (burst and steady) of the endpoint families Lupa uses.
var (
	SubscriptionLimits = []vendorhttp.Window{{Count: 75, Per: time.Second}, {Count: 750, Per: time.Minute}}
	DeletionLimits     = []vendorhttp.Window{{Count: 3, Per: time.Second}, {Count: 60, Per: time.Minute}}
	ProfileReadLimits  = []vendorhttp.Window{{Count: 75, Per: time.Second}, {Count: 750, Per: time.Minute}}
	ProfileWriteLimits = []vendorhttp.Window{{Count: 75, Per: time.Second}, {Count: 750, Per: time.Minute}}
)

// Options configure a Client; zero values take defaults.
type Options struct {
	// BaseURL overrides DefaultBaseURL (tests point it at the fake).
	BaseURL string
	// HTTPClient makes the requests: pass Lupa's SSRF-safe client.
	HTTPClient *http.Client
	// Now is the clock for time-based checks (a Retry-After given as a date). Rate limits
	// and waits use the real clock. Default time.Now.
	Now func() time.Time
	// Revision overrides the revision header (default Revision).
	Revision string
	// Share divides every documented rate limit by this many (the Lupa instances that call
	// one account; default 1).
	Share int
	// Retries, MaxRetryWait: in-call retries (default 2 and 30 s); NoRetries turns them off.
	Retries      int
	MaxRetryWait time.Duration
	NoRetries    bool
}

// Client talks to one Klaviyo account with a private API key.
type Client struct {
	base, key, revision string
	subs, del, read     *vendorhttp.Limiter
	write               *vendorhttp.Limiter
	http                *vendorhttp.Client
}

// New makes a client.
func New(apiKey string, opt Options) (*Client, error) {
	if apiKey == "" {
		return nil, errors.New("klaviyo: private API key required")
	}
	base := strings.TrimSuffix(opt.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	rev := opt.Revision
	if rev == "" {
		rev = Revision
	}
	return &Client{
		base: base, key: apiKey, revision: rev,
		subs:  vendorhttp.NewLimiter(0, share(SubscriptionLimits, opt.Share)...),
		del:   vendorhttp.NewLimiter(0, share(DeletionLimits, opt.Share)...),
		read:  vendorhttp.NewLimiter(0, share(ProfileReadLimits, opt.Share)...),
		write: vendorhttp.NewLimiter(0, share(ProfileWriteLimits, opt.Share)...),
		http:  vendorhttp.NewClient("klaviyo", opt.HTTPClient, now, classify, opt.Retries, opt.MaxRetryWait, opt.NoRetries),
	}, nil
}

// share is one instance's part of the windows: each count divided by n, at least 1.
func share(ws []vendorhttp.Window, n int) []vendorhttp.Window {
	out := make([]vendorhttp.Window, len(ws))
	for i, w := range ws {
		out[i] = vendorhttp.Window{Count: max(w.Count/max(n, 1), 1), Per: w.Per}
	}
	return out
}

type resource struct {
	Type          string         `json:"type"`
	ID            string         `json:"id,omitempty"`
	Attributes    map[string]any `json:"attributes"`
	Relationships map[string]any `json:"relationships,omitempty"`
}

func profiles(emails []string, consent string) []resource {
	out := make([]resource, len(emails))
	for i, e := range emails {
		out[i] = resource{Type: "profile", Attributes: map[string]any{
			"email":         e,
			"subscriptions": map[string]any{"email": map[string]any{"marketing": map[string]any{"consent": consent}}},
		}}
	}
	return out
}

func listRel(listID string) map[string]any {
	if listID == "" {
		return nil
	}
	return map[string]any{"list": map[string]any{"data": map[string]any{"type": "list", "id": listID}}}
}

// Subscribe consents the addresses to email marketing and adds them to the list, with
// bulk subscribe jobs of at most MaxSubscribeBatch profiles. Klaviyo accepts the job (202)
// and applies it asynchronously. If the list has double opt-in, Klaviyo sends its own
// confirmation; Lupa should use a single-opt-in list after its own double opt-in.
func (c *Client) Subscribe(ctx context.Context, listID string, emails []string) error {
	if listID == "" {
		return c.invalid("bulk subscribe profiles", "a list id is required")
	}
	return c.jobs(ctx, "bulk subscribe profiles", "/api/profile-subscription-bulk-create-jobs",
		"profile-subscription-bulk-create-job", listID, emails, "SUBSCRIBED", MaxSubscribeBatch)
}

// Unsubscribe revokes email marketing consent for the addresses (and removes them from the
// list when listID is given), with bulk unsubscribe jobs of at most MaxUnsubscribeBatch.
// Klaviyo unsubscribes globally: email marketing consent is per profile.
func (c *Client) Unsubscribe(ctx context.Context, listID string, emails []string) error {
	return c.jobs(ctx, "bulk unsubscribe profiles", "/api/profile-subscription-bulk-delete-jobs",
		"profile-subscription-bulk-delete-job", listID, emails, "UNSUBSCRIBED", MaxUnsubscribeBatch)
}

func (c *Client) jobs(ctx context.Context, op, path, typ, listID string, emails []string, consent string, size int) error {
	if len(emails) == 0 {
		return nil
	}
	for _, e := range emails {
		if !strings.Contains(e, "@") {
			return c.invalid(op, "every profile needs an email")
		}
	}
	for chunk := range slices.Chunk(emails, size) {
		body := map[string]any{"data": resource{
			Type:          typ,
			Attributes:    map[string]any{"profiles": map[string]any{"data": profiles(chunk, consent)}},
			Relationships: listRel(listID),
		}}
		if err := c.do(ctx, c.subs, vendorhttp.Call{Op: op, Method: http.MethodPost, URL: c.base + path, Body: body,
			OK: []int{http.StatusAccepted}}); err != nil {
			return err
		}
	}
	return nil
}

// RequestDeletion asks Klaviyo to delete every profile with this address
// (data-privacy-deletion-jobs; asynchronous, 202). Repeating it is harmless.
func (c *Client) RequestDeletion(ctx context.Context, email string) error {
	if !strings.Contains(email, "@") {
		return c.invalid("request profile deletion", "an email is required")
	}
	body := map[string]any{"data": resource{
		Type: "data-privacy-deletion-job",
		Attributes: map[string]any{"profile": map[string]any{"data": resource{
			Type: "profile", Attributes: map[string]any{"email": email},
		}}},
	}}
	return c.do(ctx, c.del, vendorhttp.Call{Op: "request profile deletion", Method: http.MethodPost,
		URL: c.base + "/api/data-privacy-deletion-jobs", Body: body, OK: []int{http.StatusAccepted}})
}

// ChangeEmail moves the profile to a new address, keeping its consent and history: it
// finds the profile by the old address (GET /api/profiles?filter=equals(email,…)) and
// updates it (PATCH /api/profiles/{id}). ErrNotFound: no profile has the old address. A
// profile already holding the new address is a final ErrRejected (409).
func (c *Client) ChangeEmail(ctx context.Context, oldEmail, newEmail string) error {
	const op = "change profile email"
	if !strings.Contains(oldEmail, "@") || !strings.Contains(newEmail, "@") || strings.ContainsAny(oldEmail, `"\`) {
		return c.invalid(op, "two plain email addresses are required")
	}
	if strings.EqualFold(oldEmail, newEmail) {
		return nil
	}
	q := url.Values{}
	q.Set("filter", `equals(email,"`+oldEmail+`")`)
	q.Set("page[size]", "1")
	var page profilePage
	if err := c.do(ctx, c.read, vendorhttp.Call{Op: op, Method: http.MethodGet, URL: c.base + "/api/profiles?" + q.Encode(), Out: &page}); err != nil {
		return err
	}
	if len(page.Data) == 0 || page.Data[0].ID == "" {
		return &Error{Vendor: "klaviyo", Op: op, Kind: ErrNotFound}
	}
	id := page.Data[0].ID
	body := map[string]any{"data": resource{Type: "profile", ID: id, Attributes: map[string]any{"email": newEmail}}}
	return c.do(ctx, c.write, vendorhttp.Call{Op: op, Method: http.MethodPatch,
		URL: c.base + "/api/profiles/" + url.PathEscape(id), Body: body, OK: []int{http.StatusOK}})
}

// Suppression is a global email marketing suppression.
type Suppression struct {
	Reason    string    `json:"reason"` // HARD_BOUNCE, INVALID_EMAIL, SPAM_COMPLAINT, UNSUBSCRIBE, USER_SUPPRESSED
	Timestamp time.Time `json:"timestamp"`
}

// Profile is what the reconcile needs of a profile.
type Profile struct {
	ID           string
	Email        string
	Consent      string // SUBSCRIBED, UNSUBSCRIBED, NEVER_SUBSCRIBED …
	CanReceive   bool
	Suppressions []Suppression
	Updated      time.Time
}

// Withdrawal reports whether the profile's state is the person's own refusal: an
// unsubscribe or a spam complaint. Bounces and invalid addresses are not decisions of the
// person; USER_SUPPRESSED is an admin's action and is reported, not recorded as consent.
func (p Profile) Withdrawal() bool {
	if p.Consent == "UNSUBSCRIBED" {
		return true
	}
	for _, s := range p.Suppressions {
		if s.Reason == "UNSUBSCRIBE" || s.Reason == "SPAM_COMPLAINT" {
			return true
		}
	}
	return false
}

type profilePage struct {
	Data []struct {
		ID         string `json:"id"`
		Attributes struct {
			Email         string    `json:"email"`
			Updated       time.Time `json:"updated"`
			Subscriptions struct {
				Email struct {
					Marketing struct {
						CanReceive  bool          `json:"can_receive_email_marketing"`
						Consent     string        `json:"consent"`
						Suppression []Suppression `json:"suppression"`
					} `json:"marketing"`
				} `json:"email"`
			} `json:"subscriptions"`
		} `json:"attributes"`
	} `json:"data"`
	Links struct {
		Next string `json:"next"`
	} `json:"links"`
}

// Suppressed calls fn for every profile whose global email marketing suppression was set
// after since, oldest first, following links.next page by page. fn's error stops the walk.
// The engine stores the newest suppression time it applied and passes it as the next since.
func (c *Client) Suppressed(ctx context.Context, since time.Time, fn func(Profile) error) error {
	q := url.Values{}
	q.Set("filter", "greater-than(subscriptions.email.marketing.suppression.timestamp,"+since.UTC().Format(time.RFC3339)+")")
	q.Set("additional-fields[profile]", "subscriptions")
	q.Set("sort", "subscriptions.email.marketing.suppression.timestamp")
	q.Set("page[size]", "100")
	next := c.base + "/api/profiles?" + q.Encode()
	for next != "" {
		var page profilePage
		if err := c.do(ctx, c.read, vendorhttp.Call{Op: "list suppressed profiles", Method: http.MethodGet, URL: next, Out: &page}); err != nil {
			return err
		}
		for _, d := range page.Data {
			m := d.Attributes.Subscriptions.Email.Marketing
			p := Profile{ID: d.ID, Email: d.Attributes.Email, Consent: m.Consent, CanReceive: m.CanReceive,
				Suppressions: m.Suppression, Updated: d.Attributes.Updated}
			if err := fn(p); err != nil {
				return err
			}
		}
		next = page.Links.Next
		if next != "" && !c.sameOrigin(next) {
			// Never send the API key to a host other than the configured one.
			return &Error{Vendor: "klaviyo", Op: "list suppressed profiles", Kind: ErrRejected, Err: errors.New("next page link points to another host")}
		}
	}
	return nil
}

func (c *Client) sameOrigin(link string) bool {
	a, err1 := url.Parse(link)
	b, err2 := url.Parse(c.base)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && a.Host == b.Host
}

func (c *Client) do(ctx context.Context, lim *vendorhttp.Limiter, call vendorhttp.Call) error {
	call.Limiter = lim
	call.Header = http.Header{
		"Authorization": {"Klaviyo-API-Key " + c.key},
		"Revision":      {c.revision},
		"Accept":        {mediaType},
	}
	if call.Body != nil {
		call.Header.Set("Content-Type", mediaType)
	}
	return c.http.Do(ctx, call)
}

func (c *Client) invalid(op, msg string) error {
	return &Error{Vendor: "klaviyo", Op: op, Kind: ErrRejected, Err: errors.New(msg)}
}

// classify reads Klaviyo's JSON:API error body {"errors":[{"code","title","detail",…}]}.
func classify(_ int, body []byte) (string, error) {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return "", nil
	}
	return e.Errors[0].Code, nil
}

// String hides the key when a client is printed.
func (c *Client) String() string { return "klaviyo.Client(" + c.base + ")" }

// Profile reads the profile with this address and its email marketing consent and
// suppressions (GET /api/profiles?filter=equals(email,…) with the subscriptions field).
// ErrNotFound: no profile has it.
func (c *Client) Profile(ctx context.Context, email string) (*Profile, error) {
	const op = "get profile"
	if !strings.Contains(email, "@") || strings.ContainsAny(email, `"\`) {
		return nil, c.invalid(op, "a plain email address is required")
	}
	q := url.Values{}
	q.Set("filter", `equals(email,"`+email+`")`)
	q.Set("additional-fields[profile]", "subscriptions")
	q.Set("page[size]", "1")
	var page profilePage
	if err := c.do(ctx, c.read, vendorhttp.Call{Op: op, Method: http.MethodGet, URL: c.base + "/api/profiles?" + q.Encode(), Out: &page}); err != nil {
		return nil, err
	}
	if len(page.Data) == 0 {
		return nil, &Error{Vendor: "klaviyo", Op: op, Kind: ErrNotFound}
	}
	d := page.Data[0]
	m := d.Attributes.Subscriptions.Email.Marketing
	return &Profile{ID: d.ID, Email: d.Attributes.Email, Consent: m.Consent, CanReceive: m.CanReceive,
		Suppressions: m.Suppression, Updated: d.Attributes.Updated}, nil
}

// WithdrawnAt is when the person's own refusal (an unsubscribe or a spam complaint) was
// recorded, zero when there is none.
func (p Profile) WithdrawnAt() time.Time {
	var at time.Time
	for _, s := range p.Suppressions {
		if (s.Reason == "UNSUBSCRIBE" || s.Reason == "SPAM_COMPLAINT") && s.Timestamp.After(at) {
			at = s.Timestamp
		}
	}
	if at.IsZero() && p.Consent == "UNSUBSCRIBED" {
		at = p.Updated
	}
	return at
}
