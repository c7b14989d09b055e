// Package hubspot is Lupa's client for HubSpot's communication preferences (subscriptions
// v4) and GDPR delete APIs: it sets a contact's email subscription status with the legal
// basis Lupa recorded, in single calls or batches, reads statuses back for the periodic
// reconcile, erases contacts, and verifies and parses the signed (v3) webhooks HubSpot
// sends when a contact changes a subscription in HubSpot. It keeps no state.
//
// Every write names its final state (SUBSCRIBED or UNSUBSCRIBED for one subscription id),
// so repeating it leaves the same state: HubSpot answers NO_STATUS_CHANGE.
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// Channel is the only channel Lupa writes.
const ChannelEmail = "EMAIL"

// Subscription states.
const (
	Subscribed   = "SUBSCRIBED"
	Unsubscribed = "UNSUBSCRIBED"
	NotSpecified = "NOT_SPECIFIED"
)

// Legal bases HubSpot accepts. Lupa maps a consent purpose to LegalBasisConsent and the
// existing-customer exception (soft opt-in) to LegalBasisLegitimateInterestClient.
const (
	LegalBasisConsent                  = "CONSENT_WITH_NOTICE"
	LegalBasisLegitimateInterestClient = "LEGITIMATE_INTEREST_CLIENT"
	LegalBasisLegitimateInterestPQL    = "LEGITIMATE_INTEREST_PQL"
	LegalBasisLegitimateInterestOther  = "LEGITIMATE_INTEREST_OTHER"
	LegalBasisPerformanceOfContract    = "PERFORMANCE_OF_CONTRACT"
	LegalBasisNonGDPR                  = "NON_GDPR"
	LegalBasisProcessAndStore          = "PROCESS_AND_STORE"
)

var legalBases = []string{
	LegalBasisConsent, LegalBasisLegitimateInterestClient, LegalBasisLegitimateInterestPQL,
	LegalBasisLegitimateInterestOther, LegalBasisPerformanceOfContract, LegalBasisNonGDPR, LegalBasisProcessAndStore,
}

// DefaultLimit is the lowest documented burst limit (100 requests per 10 seconds per app;
// higher tiers allow up to 190).
var DefaultLimit = vendorhttp.Window{Count: 100, Per: 10 * time.Second}

// DefaultBatchSize is how many statuses go in one batch call.
const DefaultBatchSize = 100

// Options configure a Client; zero values take defaults.
type Options struct {
	// BaseURL overrides DefaultBaseURL (tests point it at the fake).
	BaseURL string
	// HTTPClient makes the requests: pass Lupa's SSRF-safe client.
	HTTPClient *http.Client
	// Now is the clock for time-based checks (webhook timestamps, a Retry-After given as
	// a date). Rate limits and waits use the real clock. Default time.Now.
	Now func() time.Time
	// Limit is the account's burst limit (DefaultLimit unless the tier allows more; with
	// several Lupa instances give each a share).
	Limit vendorhttp.Window
	// Concurrency caps calls in flight, default 10.
	Concurrency int
	// BatchSize caps inputs per batch call, default DefaultBatchSize.
	BatchSize int
	// Retries, MaxRetryWait: in-call retries (default 2 and 30 s); NoRetries turns them off.
	Retries      int
	MaxRetryWait time.Duration
	NoRetries    bool
}

// Client talks to one HubSpot account with a private-app or OAuth access token.
type Client struct {
	base  string
	token string
	batch int
	now   func() time.Time
	lim   *vendorhttp.Limiter
	http  *vendorhttp.Client
}

// New makes a client.
func New(token string, opt Options) (*Client, error) {
	if token == "" {
		return nil, errors.New("hubspot: access token required")
	}
	base := strings.TrimSuffix(opt.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	limit := opt.Limit
	if limit.Count == 0 {
		limit = DefaultLimit
	}
	conc := opt.Concurrency
	if conc <= 0 {
		conc = 10
	}
	batch := opt.BatchSize
	if batch <= 0 || batch > DefaultBatchSize {
		batch = DefaultBatchSize
	}
	return &Client{
		base: base, token: token, batch: batch, now: now,
		lim:  vendorhttp.NewLimiter(conc, limit),
		http: vendorhttp.NewClient("hubspot", opt.HTTPClient, now, classify, opt.Retries, opt.MaxRetryWait, opt.NoRetries),
	}, nil
}

// StatusUpdate is one subscription status to set.
type StatusUpdate struct {
	Email          string
	SubscriptionID int64
	// State is Subscribed or Unsubscribed (NotSpecified is allowed but Lupa does not use it).
	State string
	// LegalBasis and LegalBasisExplanation are required when subscribing.
	LegalBasis            string
	LegalBasisExplanation string
}

func (u StatusUpdate) validate() error {
	switch {
	case u.Email == "" || !strings.Contains(u.Email, "@"):
		return errors.New("an email is required")
	case u.SubscriptionID <= 0:
		return errors.New("a subscription id is required")
	case u.State != Subscribed && u.State != Unsubscribed && u.State != NotSpecified:
		return errors.New("state must be SUBSCRIBED, UNSUBSCRIBED or NOT_SPECIFIED")
	case u.LegalBasis != "" && !slices.Contains(legalBases, u.LegalBasis):
		return errors.New("unknown legal basis")
	case u.State == Subscribed && (u.LegalBasis == "" || u.LegalBasisExplanation == ""):
		return errors.New("subscribing needs a legal basis and its explanation")
	}
	return nil
}

// Status is a subscription status as HubSpot reports it.
type Status struct {
	SubscriberIDString     string    `json:"subscriberIdString"`
	Channel                string    `json:"channel"`
	SubscriptionID         int64     `json:"subscriptionId"`
	Status                 string    `json:"status"`
	LegalBasis             string    `json:"legalBasis,omitempty"`
	LegalBasisExplanation  string    `json:"legalBasisExplanation,omitempty"`
	Source                 string    `json:"source,omitempty"`
	Timestamp              time.Time `json:"timestamp"`
	SetStatusSuccessReason string    `json:"setStatusSuccessReason,omitempty"`
	SubscriptionName       string    `json:"subscriptionName,omitempty"`
	BusinessUnitID         int64     `json:"businessUnitId,omitempty"`
}

type batchError struct {
	Category string `json:"category"`
	Message  string `json:"message"`
}

type statusResponse struct {
	Status    string       `json:"status"`
	Results   []Status     `json:"results"`
	Errors    []batchError `json:"errors"`
	NumErrors int          `json:"numErrors"`
}

type statusBody struct {
	SubscriberIDString    string `json:"subscriberIdString,omitempty"`
	Channel               string `json:"channel"`
	StatusState           string `json:"statusState"`
	SubscriptionID        int64  `json:"subscriptionId"`
	LegalBasis            string `json:"legalBasis,omitempty"`
	LegalBasisExplanation string `json:"legalBasisExplanation,omitempty"`
}

func body(u StatusUpdate, withID bool) statusBody {
	b := statusBody{Channel: ChannelEmail, StatusState: u.State, SubscriptionID: u.SubscriptionID,
		LegalBasis: u.LegalBasis, LegalBasisExplanation: u.LegalBasisExplanation}
	if withID {
		b.SubscriberIDString = u.Email
	}
	return b
}

// SetStatus is POST /communication-preferences/v4/statuses/{email}.
func (c *Client) SetStatus(ctx context.Context, u StatusUpdate) (*Status, error) {
	if err := u.validate(); err != nil {
		return nil, c.invalid("set subscription status", err)
	}
	var raw json.RawMessage
	err := c.do(ctx, vendorhttp.Call{
		Op: "set subscription status", Method: http.MethodPost,
		URL:  c.base + "/communication-preferences/v4/statuses/" + url.PathEscape(u.Email),
		Body: body(u, false), Out: &raw,
	})
	if err != nil {
		return nil, err
	}
	// The reference shows the batch envelope {status, results:[…]}; accept a bare status too.
	var out statusResponse
	if json.Unmarshal(raw, &out) == nil && len(out.Results) > 0 {
		return &out.Results[0], nil
	}
	var one Status
	if json.Unmarshal(raw, &one) == nil && one.Status != "" {
		return &one, nil
	}
	// The write succeeded (2xx) but the answer says nothing: report what was asked.
	return &Status{SubscriberIDString: u.Email, Channel: ChannelEmail, SubscriptionID: u.SubscriptionID, Status: u.State}, nil
}

// SetStatuses writes many statuses with POST …/statuses/batch/write, BatchSize per call.
// It returns the statuses HubSpot confirmed; when some inputs failed, err is an ErrRejected
// *Error whose Code is the first failure's category, and the confirmed ones are still
// returned (compare by SubscriberIDString and SubscriptionID).
func (c *Client) SetStatuses(ctx context.Context, us []StatusUpdate) ([]Status, error) {
	for _, u := range us {
		if err := u.validate(); err != nil {
			return nil, c.invalid("batch set subscription status", err)
		}
	}
	var all []Status
	var partial error
	for chunk := range slices.Chunk(us, c.batch) {
		inputs := make([]statusBody, len(chunk))
		for i, u := range chunk {
			inputs[i] = body(u, true)
		}
		var out statusResponse
		err := c.do(ctx, vendorhttp.Call{
			Op: "batch set subscription status", Method: http.MethodPost,
			URL:  c.base + "/communication-preferences/v4/statuses/batch/write",
			Body: map[string]any{"inputs": inputs}, Out: &out,
			OK: []int{http.StatusOK, http.StatusMultiStatus},
		})
		if err != nil {
			return all, err
		}
		all = append(all, out.Results...)
		if len(out.Errors) > 0 && partial == nil {
			partial = &Error{Vendor: "hubspot", Op: "batch set subscription status", Status: http.StatusMultiStatus,
				Kind: ErrRejected, Code: vendorhttp.Scrub(out.Errors[0].Category)}
		}
	}
	return all, partial
}

// Statuses reads the EMAIL subscription statuses of the given addresses with POST
// …/statuses/batch/read?channel=EMAIL, for the reconcile. Addresses HubSpot does not know
// are absent from the map. Keys are the addresses as HubSpot returns them.
func (c *Client) Statuses(ctx context.Context, emails []string) (map[string][]Status, error) {
	out := map[string][]Status{}
	for chunk := range slices.Chunk(emails, c.batch) {
		var resp struct {
			Results []struct {
				SubscriberIDString string   `json:"subscriberIdString"`
				Statuses           []Status `json:"statuses"`
			} `json:"results"`
		}
		err := c.do(ctx, vendorhttp.Call{
			Op: "batch read subscription statuses", Method: http.MethodPost,
			URL:  c.base + "/communication-preferences/v4/statuses/batch/read?channel=" + ChannelEmail,
			Body: map[string]any{"inputs": chunk}, Out: &resp,
			OK: []int{http.StatusOK, http.StatusMultiStatus},
		})
		if err != nil {
			return out, err
		}
		for _, r := range resp.Results {
			out[r.SubscriberIDString] = r.Statuses
		}
	}
	return out, nil
}

// GDPRDelete permanently deletes the contact with this address (POST
// /crm/v3/objects/contacts/gdpr-delete). ErrNotFound: no such contact, nothing to erase.
func (c *Client) GDPRDelete(ctx context.Context, email string) error {
	if email == "" {
		return c.invalid("gdpr delete contact", errors.New("an email is required"))
	}
	return c.do(ctx, vendorhttp.Call{
		Op: "gdpr delete contact", Method: http.MethodPost,
		URL:  c.base + "/crm/v3/objects/contacts/gdpr-delete",
		Body: map[string]string{"objectId": email, "idProperty": "email"},
		OK:   []int{http.StatusNoContent, http.StatusOK},
	})
}

// ChangeEmail moves the contact to a new address: PATCH
// /crm/v3/objects/contacts/{old}?idProperty=email {"properties":{"email": new}}, so the
// contact is updated, not duplicated. ErrNotFound: no contact has the old address (write
// the statuses to the new one). A contact already holding the new address is a final
// ErrRejected (409, code CONFLICT). Afterwards the engine writes the current statuses to
// the new address again: repeating a status is harmless (NO_STATUS_CHANGE) and covers
// statuses HubSpot keeps per address.
func (c *Client) ChangeEmail(ctx context.Context, oldEmail, newEmail string) error {
	if oldEmail == "" || newEmail == "" {
		return c.invalid("change contact email", errors.New("both emails are required"))
	}
	if strings.EqualFold(oldEmail, newEmail) {
		return nil
	}
	return c.do(ctx, vendorhttp.Call{
		Op: "change contact email", Method: http.MethodPatch,
		URL:  c.base + "/crm/v3/objects/contacts/" + url.PathEscape(oldEmail) + "?idProperty=email",
		Body: map[string]any{"properties": map[string]string{"email": newEmail}},
	})
}

// ContactEmail reads a contact's email address by its id: webhooks name contacts by id.
func (c *Client) ContactEmail(ctx context.Context, contactID int64) (string, error) {
	var out struct {
		ID         string            `json:"id"`
		Properties map[string]string `json:"properties"`
	}
	err := c.do(ctx, vendorhttp.Call{
		Op: "get contact", Method: http.MethodGet,
		URL: c.base + "/crm/v3/objects/contacts/" + strconv.FormatInt(contactID, 10) + "?properties=email",
		Out: &out,
	})
	if err != nil {
		return "", err
	}
	if out.Properties["email"] == "" {
		return "", &Error{Vendor: "hubspot", Op: "get contact", Kind: ErrNotFound, Err: errors.New("contact has no email")}
	}
	return out.Properties["email"], nil
}

func (c *Client) do(ctx context.Context, call vendorhttp.Call) error {
	call.Limiter = c.lim
	call.Header = http.Header{
		"Authorization": {"Bearer " + c.token},
		"Accept":        {"application/json"},
	}
	if call.Body != nil {
		call.Header.Set("Content-Type", "application/json")
	}
	return c.http.Do(ctx, call)
}

func (c *Client) invalid(op string, err error) error {
	return &Error{Vendor: "hubspot", Op: op, Kind: ErrRejected, Err: err}
}

// classify reads HubSpot's error body {"status":"error","message":…,"category":…}.
func classify(_ int, body []byte) (string, error) {
	var e struct {
		Category  string `json:"category"`
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", nil
	}
	if e.Category != "" {
		return e.Category, nil
	}
	return e.ErrorType, nil
}

// String hides the token when a client is printed.
func (c *Client) String() string { return "hubspot.Client(" + c.base + ")" }
