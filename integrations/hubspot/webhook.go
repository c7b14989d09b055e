package hubspot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HubSpot signs webhook requests with X-HubSpot-Signature-v3: base64 of HMAC-SHA256,
// keyed with the app's client secret, over method + URI + body + timestamp, where the
// timestamp is X-HubSpot-Request-Timestamp (Unix milliseconds) and the URI is the full
// URL HubSpot called with a fixed set of percent-escapes decoded. Requests older than
// five minutes are rejected.
// https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation

// Header names.
const (
	HeaderSignatureV3 = "X-HubSpot-Signature-v3"
	HeaderTimestamp   = "X-HubSpot-Request-Timestamp"
)

// MaxSignatureAge is HubSpot's replay window.
const MaxSignatureAge = 5 * time.Minute

// Webhook errors. Answer 401 to both and record nothing.
var (
	ErrSignature = errors.New("hubspot: webhook signature does not verify")
	ErrStale     = errors.New("hubspot: webhook timestamp outside the 5-minute window")
)

// uriDecodes are the escapes HubSpot's validation guide says to decode before hashing.
var uriDecodes = strings.NewReplacer(
	"%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$", "%27", "'",
	"%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";",
	"%3a", ":", "%2f", "/", "%3f", "?", "%2a", "*", "%2c", ",", "%3b", ";",
)

// SignV3 computes the v3 signature; exported for tests and the fake.
func SignV3(clientSecret, method, requestURL string, body []byte, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(clientSecret))
	mac.Write([]byte(method))
	mac.Write([]byte(uriDecodes.Replace(requestURL)))
	mac.Write(body)
	mac.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifySignatureV3 checks a request's v3 signature and timestamp. requestURL is the full
// URL HubSpot called (scheme, host, path and query, as registered with HubSpot).
func VerifySignatureV3(clientSecret, method, requestURL string, body []byte, timestamp, signature string, now time.Time) error {
	if clientSecret == "" || signature == "" || timestamp == "" {
		return ErrSignature
	}
	ms, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrSignature
	}
	age := now.Sub(time.UnixMilli(ms))
	if age > MaxSignatureAge || age < -MaxSignatureAge {
		return ErrStale
	}
	want := SignV3(clientSecret, method, requestURL, body, timestamp)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return ErrSignature
	}
	return nil
}

// VerifyRequest verifies an inbound webhook. publicBaseURL is Lupa's public URL as HubSpot
// reaches it (LUPA_PUBLIC_URL; behind a proxy the request's own Host is not to be
// trusted); the path and query are taken from r. body is the raw body, read already.
func VerifyRequest(r *http.Request, body []byte, clientSecret, publicBaseURL string, now time.Time) error {
	u := strings.TrimSuffix(publicBaseURL, "/") + r.URL.RequestURI()
	return VerifySignatureV3(clientSecret, r.Method, u, body, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignatureV3), now)
}

// VerifyRequest is the package function VerifyRequest on the client's clock.
func (c *Client) VerifyRequest(r *http.Request, body []byte, clientSecret, publicBaseURL string) error {
	return VerifyRequest(r, body, clientSecret, publicBaseURL, c.now())
}

// Event is one entry of a webhook request's JSON array.
type Event struct {
	EventID          int64  `json:"eventId"`
	SubscriptionID   int64  `json:"subscriptionId"` // the webhook subscription, not a communication subscription
	PortalID         int64  `json:"portalId"`
	AppID            int64  `json:"appId"`
	OccurredAt       int64  `json:"occurredAt"` // Unix ms
	SubscriptionType string `json:"subscriptionType"`
	AttemptNumber    int    `json:"attemptNumber"`
	ObjectID         int64  `json:"objectId"` // the contact id
	PropertyName     string `json:"propertyName,omitempty"`
	PropertyValue    string `json:"propertyValue,omitempty"`
	ChangeSource     string `json:"changeSource,omitempty"`
	SourceID         string `json:"sourceId,omitempty"`
}

// Occurred is OccurredAt as a time.
func (e Event) Occurred() time.Time { return time.UnixMilli(e.OccurredAt).UTC() }

// ParseEvents decodes a webhook body.
func ParseEvents(body []byte) ([]Event, error) {
	var evs []Event
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, errors.New("hubspot: malformed webhook body")
	}
	return evs, nil
}

// Opt-out properties: HubSpot keeps, per contact, "hs_email_optout" (unsubscribed from all
// email) and "hs_email_optout_<subscription id>" for each subscription type. Lupa's app
// subscribes to contact.propertyChange on the ones it syncs.
const (
	PropertyOptOutAll    = "hs_email_optout"
	PropertyOptOutPrefix = "hs_email_optout_"
)

// SubscriptionChange is what a property-change event says about a subscription.
type SubscriptionChange struct {
	ContactID int64
	// SubscriptionID is the communication subscription; 0 means all email.
	SubscriptionID int64
	// OptedOut: the contact unsubscribed (true) or opted back in (false).
	OptedOut bool
	At       time.Time
	// Source is HubSpot's changeSource (e.g. EMAIL for the unsubscribe link, CRM_UI).
	Source string
}

// SubscriptionChange interprets e; ok is false for events that are not opt-out changes.
// An opt-out (OptedOut) becomes a withdrawal or objection in Lupa; an opt-in made in
// HubSpot is not consent Lupa can prove and is only reported.
func (e Event) SubscriptionChange() (SubscriptionChange, bool) {
	if e.SubscriptionType != "contact.propertyChange" && e.SubscriptionType != "object.propertyChange" {
		return SubscriptionChange{}, false
	}
	ch := SubscriptionChange{ContactID: e.ObjectID, At: e.Occurred(), Source: e.ChangeSource}
	switch {
	case e.PropertyName == PropertyOptOutAll:
	case strings.HasPrefix(e.PropertyName, PropertyOptOutPrefix):
		id, err := strconv.ParseInt(strings.TrimPrefix(e.PropertyName, PropertyOptOutPrefix), 10, 64)
		if err != nil || id <= 0 {
			return SubscriptionChange{}, false
		}
		ch.SubscriptionID = id
	default:
		return SubscriptionChange{}, false
	}
	switch e.PropertyValue {
	case "true":
		ch.OptedOut = true
	case "false", "":
	default:
		return SubscriptionChange{}, false
	}
	return ch, true
}
