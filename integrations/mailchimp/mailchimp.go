// Package mailchimp is Lupa's client for the Mailchimp Marketing API 3.0: it subscribes,
// unsubscribes, permanently deletes and moves audience members, lists the members that
// left an audience for the periodic reconcile, and authenticates and parses the
// unsubscribe webhooks Mailchimp sends. It keeps no state; the delivery engine in
// integrations/ decides what to send and records what came back.
//
// A member's id is the MD5 of the lower-cased email address, so every write is an
// idempotent PUT or PATCH on a predictable URL: repeating one leaves the same state.
package mailchimp

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
)

// Error kinds, re-exported so callers need only this package.
var (
	ErrRetryable       = vendorhttp.ErrRetryable
	ErrRateLimited     = vendorhttp.ErrRateLimited
	ErrNotFound        = vendorhttp.ErrNotFound
	ErrUnauthorized    = vendorhttp.ErrUnauthorized
	ErrComplianceState = vendorhttp.ErrComplianceState
	ErrRejected        = vendorhttp.ErrRejected
)

// Error is a failed call; see vendorhttp.Error.
type Error = vendorhttp.Error

// ErrBadKey is returned by New for an API key without a valid data-centre suffix.
var ErrBadKey = errors.New("mailchimp: API key has no data-centre suffix (…-us6)")

// MaxConcurrent is Mailchimp's documented limit of simultaneous connections per key.
const MaxConcurrent = 10

// Member statuses.
const (
	StatusSubscribed    = "subscribed"
	StatusUnsubscribed  = "unsubscribed"
	StatusCleaned       = "cleaned"
	StatusPending       = "pending"
	StatusTransactional = "transactional"
)

// Options configure a Client; zero values take defaults.
type Options struct {
	// BaseURL overrides https://<dc>.api.mailchimp.com/3.0 (tests point it at the fake).
	BaseURL string
	// HTTPClient makes the requests: pass Lupa's SSRF-safe client. Default http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock for time-based checks (a Retry-After given as a date). Rate limits
	// and waits use the real clock. Default time.Now.
	Now func() time.Time
	// Concurrency caps calls in flight, default MaxConcurrent. With several Lupa
	// instances give each a share.
	Concurrency int
	// Retries, MaxRetryWait: in-call retries (see vendorhttp.Client). Default 2 and 30 s.
	Retries      int
	MaxRetryWait time.Duration
	// NoRetries turns in-call retries off (every failure is returned at once).
	NoRetries bool
}

// Client talks to one Mailchimp account.
type Client struct {
	base string
	key  string
	lim  *vendorhttp.Limiter
	http *vendorhttp.Client
}

var dcPattern = regexp.MustCompile(`^[a-z]{2,4}[0-9]{1,3}$`)

// BaseURL derives the API base from a key's data-centre suffix ("…-us6" →
// https://us6.api.mailchimp.com/3.0). The suffix is checked strictly: it becomes a host name.
func BaseURL(apiKey string) (string, error) {
	i := strings.LastIndexByte(apiKey, '-')
	if i < 0 || !dcPattern.MatchString(apiKey[i+1:]) {
		return "", ErrBadKey
	}
	return "https://" + apiKey[i+1:] + ".api.mailchimp.com/3.0", nil
}

// New makes a client for the API key.
func New(apiKey string, opt Options) (*Client, error) {
	base := strings.TrimSuffix(opt.BaseURL, "/")
	if base == "" {
		var err error
		if base, err = BaseURL(apiKey); err != nil {
			return nil, err
		}
	}
	if apiKey == "" {
		return nil, ErrBadKey
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	conc := opt.Concurrency
	if conc <= 0 {
		conc = MaxConcurrent
	}
	return &Client{
		base: base,
		key:  apiKey,
		lim:  vendorhttp.NewLimiter(conc),
		http: vendorhttp.NewClient("mailchimp", opt.HTTPClient, now, classify, opt.Retries, opt.MaxRetryWait, opt.NoRetries),
	}, nil
}

// SubscriberHash is Mailchimp's member id: the MD5 of the lower-cased address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// Permission is one GDPR marketing permission of an audience.
type Permission struct {
	ID      string `json:"marketing_permission_id"`
	Enabled bool   `json:"enabled"`
}

// Member is what Mailchimp returns about a member (the fields Lupa uses).
type Member struct {
	ID                   string       `json:"id"`
	EmailAddress         string       `json:"email_address"`
	Status               string       `json:"status"`
	LastChanged          string       `json:"last_changed"`
	UnsubscribeReason    string       `json:"unsubscribe_reason,omitempty"`
	MarketingPermissions []Permission `json:"marketing_permissions,omitempty"`
}

// LastChangedTime parses LastChanged (ISO 8601); zero if absent.
func (m Member) LastChangedTime() time.Time {
	t, _ := time.Parse(time.RFC3339, m.LastChanged)
	return t
}

type upsertBody struct {
	EmailAddress         string       `json:"email_address"`
	StatusIfNew          string       `json:"status_if_new"`
	Status               string       `json:"status"`
	MarketingPermissions []Permission `json:"marketing_permissions,omitempty"`
}

// Subscribe adds or updates the member as subscribed, with the given marketing
// permissions. Status "subscribed" both for a new member and an existing one; a member
// who unsubscribed themselves yields ErrComplianceState (never force it).
// Pass StatusPending instead of subscribing directly to have Mailchimp send its own
// confirmation; Lupa uses subscribed only after its own double opt-in.
func (c *Client) Subscribe(ctx context.Context, listID, email string, perms []Permission) (*Member, error) {
	return c.Upsert(ctx, listID, email, StatusSubscribed, perms)
}

// Upsert is PUT /lists/{list}/members/{hash} with status_if_new = status = status.
func (c *Client) Upsert(ctx context.Context, listID, email, status string, perms []Permission) (*Member, error) {
	if listID == "" || email == "" {
		return nil, c.invalid("upsert member", "list id and email are required")
	}
	switch status {
	case StatusSubscribed, StatusUnsubscribed, StatusCleaned, StatusPending, StatusTransactional:
	default:
		return nil, c.invalid("upsert member", "unknown member status")
	}
	var m Member
	err := c.do(ctx, vendorhttp.Call{
		Op: "upsert member", Method: http.MethodPut, URL: c.memberURL(listID, SubscriberHash(email)),
		Body: upsertBody{EmailAddress: email, StatusIfNew: status, Status: status, MarketingPermissions: perms},
		Out:  &m,
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Unsubscribe is PATCH … {"status":"unsubscribed"}. A member that does not exist yields
// ErrNotFound, which for a withdrawal means there is nothing to withdraw.
func (c *Client) Unsubscribe(ctx context.Context, listID, email string) (*Member, error) {
	if listID == "" || email == "" {
		return nil, c.invalid("unsubscribe member", "list id and email are required")
	}
	var m Member
	err := c.do(ctx, vendorhttp.Call{
		Op: "unsubscribe member", Method: http.MethodPatch, URL: c.memberURL(listID, SubscriberHash(email)),
		Body: map[string]string{"status": StatusUnsubscribed}, Out: &m,
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// DeletePermanent erases the member (POST …/actions/delete-permanent; a plain DELETE
// only archives). ErrNotFound means it is already gone: treat as done. Mailchimp keeps
// a suppression record afterwards, so re-adding the address yields ErrComplianceState.
func (c *Client) DeletePermanent(ctx context.Context, listID, email string) error {
	if listID == "" || email == "" {
		return c.invalid("delete member permanently", "list id and email are required")
	}
	return c.do(ctx, vendorhttp.Call{
		Op: "delete member permanently", Method: http.MethodPost,
		URL: c.memberURL(listID, SubscriberHash(email)) + "/actions/delete-permanent",
		OK:  []int{http.StatusNoContent, http.StatusOK},
	})
}

// ChangeEmail moves the member's record to a new address: PATCH on the old address's
// hash with the new email_address, so history, status and permissions move with it and
// no second member is created. ErrNotFound: there is no member under the old address
// (subscribe the new one instead). A member already existing under the new address is a
// final ErrRejected with code "Member Exists".
func (c *Client) ChangeEmail(ctx context.Context, listID, oldEmail, newEmail string) (*Member, error) {
	if listID == "" || oldEmail == "" || newEmail == "" {
		return nil, c.invalid("change member email", "list id and both emails are required")
	}
	if SubscriberHash(oldEmail) == SubscriberHash(newEmail) {
		return c.Get(ctx, listID, newEmail)
	}
	var m Member
	err := c.do(ctx, vendorhttp.Call{
		Op: "change member email", Method: http.MethodPatch, URL: c.memberURL(listID, SubscriberHash(oldEmail)),
		Body: map[string]string{"email_address": newEmail}, Out: &m,
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Get reads one member.
func (c *Client) Get(ctx context.Context, listID, email string) (*Member, error) {
	var m Member
	err := c.do(ctx, vendorhttp.Call{
		Op: "get member", Method: http.MethodGet, URL: c.memberURL(listID, SubscriberHash(email)), Out: &m,
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// PageSize is the members per reconcile page (Mailchimp's maximum count is 1000).
const PageSize = 1000

type membersPage struct {
	Members []Member `json:"members"`
}

// Changed calls fn for every member of the list whose status is one of statuses
// (default unsubscribed and cleaned) and whose record changed at or after since, oldest
// change first, page by page. fn returning an error stops the walk with that error.
// fn may see a member more than once (a walk that lost its place reads a page again, see
// walkStatus), so it must be idempotent. A walk that loses its place too often in a row
// fails with ErrRetryable.
// The engine stores the newest LastChanged it has applied and passes it as the next since.
func (c *Client) Changed(ctx context.Context, listID string, since time.Time, statuses []string, fn func(Member) error) error {
	if len(statuses) == 0 {
		statuses = []string{StatusUnsubscribed, StatusCleaned}
	}
	for _, st := range statuses {
		if err := c.walkStatus(ctx, listID, since, st, fn); err != nil {
			return err
		}
	}
	return nil
}

// maxShifts is how many times in a row a walk may find its place lost before it gives up.
const maxShifts = 5

// walkStatus calls fn for the members of one status changed since, oldest change first.
//
// Plain offset paging skips a member whenever one already read leaves the set during the
// walk (it resubscribed, or changed again and moved to the end): everything after it
// shifts one place left, and the member at the next page boundary is never read, while
// the caller's cursor moves past it. So every page after the first starts one place early,
// at the last member read (the anchor), and the walk goes on only if the anchor is still
// there. That proves nothing was skipped: members only leave, or change and are stamped
// with Mailchimp's current time, which sorts them after the anchor; so nothing can enter
// before the anchor, and if it kept its place nothing before it left either. (Members of
// one second are assumed to keep their order between two reads, as offset paging needs
// anyway, and a change made within the anchor's own second to sort after it.)
//
// When the anchor moved, the walk reads again from a second before its last_changed, at
// offset 0: every member changed before that second was read already (a member cannot
// move back in time), and the second of overlap covers a filter that may be exclusive.
// Members of that second are passed to fn again. This is not keyset paging alone because
// more members than a page can share one second (an import, a bulk unsubscribe) and the
// filter cannot get past them; and it is not a restart from since, which on a large
// audience that keeps changing could re-read thousands of pages and never finish.
func (c *Client) walkStatus(ctx context.Context, listID string, since time.Time, status string, fn func(Member) error) error {
	offset, shifts := 0, 0
	var anchor *Member
	for {
		page, err := c.changedPage(ctx, listID, status, since, offset)
		if err != nil {
			return err
		}
		ms := page.Members
		if anchor != nil {
			if len(ms) == 0 || !sameMember(ms[0], *anchor) {
				if shifts++; shifts > maxShifts {
					return &Error{Vendor: "mailchimp", Op: "list changed members", Kind: ErrRetryable,
						Err: errors.New("the members kept changing during the walk")}
				}
				since, offset, anchor = reanchor(since, *anchor), 0, nil
				continue
			}
			shifts, ms = 0, ms[1:]
		}
		for _, m := range ms {
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(page.Members) < PageSize {
			return nil // the end of the set as it was at this read
		}
		offset += len(page.Members) - 1
		anchor = &page.Members[len(page.Members)-1]
	}
}

// changedPage reads up to PageSize members of the status changed since, from offset.
func (c *Client) changedPage(ctx context.Context, listID, status string, since time.Time, offset int) (*membersPage, error) {
	q := url.Values{}
	q.Set("status", status)
	if !since.IsZero() {
		q.Set("since_last_changed", since.UTC().Format(time.RFC3339))
	}
	q.Set("sort_field", "last_changed")
	q.Set("sort_dir", "ASC")
	q.Set("count", strconv.Itoa(PageSize))
	q.Set("offset", strconv.Itoa(offset))
	var page membersPage
	err := c.do(ctx, vendorhttp.Call{
		Op: "list changed members", Method: http.MethodGet,
		URL: c.base + "/lists/" + url.PathEscape(listID) + "/members?" + q.Encode(), Out: &page,
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// sameMember reports whether two reads found the same member with the same change.
func sameMember(a, b Member) bool {
	return a.ID == b.ID && a.EmailAddress == b.EmailAddress && a.LastChanged == b.LastChanged
}

// reanchor is where a walk that lost its place reads again from: a second before the
// anchor's change, or since if that is later or the change has no readable time.
func reanchor(since time.Time, anchor Member) time.Time {
	t := anchor.LastChangedTime().Add(-time.Second)
	if anchor.LastChangedTime().IsZero() || !t.After(since) {
		return since
	}
	return t
}

func (c *Client) memberURL(listID, hash string) string {
	return c.base + "/lists/" + url.PathEscape(listID) + "/members/" + hash
}

func (c *Client) do(ctx context.Context, call vendorhttp.Call) error {
	call.Limiter = c.lim
	call.Header = http.Header{
		"Authorization": {"Basic " + basicAuth("lupa", c.key)},
		"Accept":        {"application/json"},
	}
	if call.Body != nil {
		call.Header.Set("Content-Type", "application/json")
	}
	return c.http.Do(ctx, call)
}

func (c *Client) invalid(op, msg string) error {
	return &Error{Vendor: "mailchimp", Op: op, Kind: ErrRejected, Err: errors.New(msg)}
}

// problem is Mailchimp's error body (application/problem+json).
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

// TitleComplianceState is the title of the 400 Mailchimp answers when subscribing an
// address that unsubscribed itself, bounced, was permanently deleted or is under review.
const TitleComplianceState = "Member In Compliance State"

func classify(status int, body []byte) (string, error) {
	var p problem
	if json.Unmarshal(body, &p) != nil {
		return "", nil
	}
	if status == http.StatusBadRequest && strings.EqualFold(strings.TrimSpace(p.Title), TitleComplianceState) {
		return p.Title, ErrComplianceState
	}
	return p.Title, nil
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// String hides the key.
func (c *Client) String() string { return fmt.Sprintf("mailchimp.Client(%s)", c.base) }
