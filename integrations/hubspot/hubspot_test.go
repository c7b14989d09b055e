package hubspot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
)

const newsletter = int64(7001)

type fixture struct {
	fake *hubspottest.Server
	c    *hubspot.Client
}

func setup(t *testing.T, opt hubspot.Options, fopt hubspottest.Options) fixture {
	t.Helper()
	fake := hubspottest.New(t, fopt)
	fake.AddSubscription(newsletter, "Newsletter")
	fake.AddSubscription(7002, "Offers")
	opt.BaseURL = fake.URL()
	c, err := hubspot.New(fake.Token(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{fake: fake, c: c}
}

func noLeak(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "@") {
		t.Errorf("error leaks an address: %q", err)
	}
}

func grant(email string) hubspot.StatusUpdate {
	return hubspot.StatusUpdate{Email: email, SubscriptionID: newsletter, State: hubspot.Subscribed,
		LegalBasis: hubspot.LegalBasisConsent, LegalBasisExplanation: "Consent recorded by Lupa, receipt r_123"}
}

func TestSetStatusIdempotent(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	ctx := context.Background()
	email := "aino@example.fi"
	st, err := f.c.SetStatus(ctx, grant(email))
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != hubspot.Subscribed || st.SubscriptionID != newsletter || st.LegalBasis != hubspot.LegalBasisConsent {
		t.Fatalf("status = %+v", st)
	}
	c1, _ := f.fake.Contact(email)
	st, err = f.c.SetStatus(ctx, grant(email))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := f.fake.Contact(email)
	if st.SetStatusSuccessReason != "NO_STATUS_CHANGE" || !c2.Statuses[newsletter].Timestamp.Equal(c1.Statuses[newsletter].Timestamp) || f.fake.ContactCount() != 1 {
		t.Fatalf("repeat changed state: %+v", st)
	}
	un := hubspot.StatusUpdate{Email: email, SubscriptionID: newsletter, State: hubspot.Unsubscribed}
	for range 2 {
		if _, err := f.c.SetStatus(ctx, un); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := f.fake.Contact(email); c.Statuses[newsletter].State != hubspot.Unsubscribed {
		t.Fatalf("state = %+v", c.Statuses)
	}
	li := hubspot.StatusUpdate{Email: email, SubscriptionID: 7002, State: hubspot.Subscribed,
		LegalBasis: hubspot.LegalBasisLegitimateInterestClient, LegalBasisExplanation: "Existing customer, soft opt-in"}
	if _, err := f.c.SetStatus(ctx, li); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.fake.Contact(email); c.Statuses[7002].LegalBasis != hubspot.LegalBasisLegitimateInterestClient {
		t.Fatalf("legal basis = %+v", c.Statuses[7002])
	}
}

func TestClientValidates(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	bad := []hubspot.StatusUpdate{
		{Email: "a@example.fi", SubscriptionID: newsletter, State: hubspot.Subscribed},
		{Email: "a@example.fi", SubscriptionID: newsletter, State: "subscribed"},
		{Email: "a@example.fi", State: hubspot.Unsubscribed},
		{Email: "", SubscriptionID: newsletter, State: hubspot.Unsubscribed},
		{Email: "a@example.fi", SubscriptionID: newsletter, State: hubspot.Subscribed, LegalBasis: "CONSENT", LegalBasisExplanation: "x"},
	}
	for _, u := range bad {
		_, err := f.c.SetStatus(context.Background(), u)
		if !errors.Is(err, hubspot.ErrRejected) {
			t.Errorf("%+v: err = %v", u, err)
		}
		noLeak(t, err)
	}
	if n := len(f.fake.Requests()); n != 0 {
		t.Fatalf("invalid updates reached HubSpot: %d", n)
	}
}

func TestBatchWriteAndRead(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	ctx := context.Background()
	var us []hubspot.StatusUpdate
	var emails []string
	for i := range 250 {
		e := fmt.Sprintf("p%03d@example.fi", i)
		emails = append(emails, e)
		us = append(us, grant(e))
	}
	got, err := f.c.SetStatuses(ctx, us)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 || f.fake.Count(hubspottest.OpBatchWrite) != 3 {
		t.Fatalf("results %d, calls %d", len(got), f.fake.Count(hubspottest.OpBatchWrite))
	}
	// The person opts out in HubSpot; the reconcile read sees it.
	f.fake.PersonOptsOut("p007@example.fi", newsletter)
	statuses, err := f.c.Statuses(ctx, append(emails[:150:150], "unknown@example.fi"))
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 150 || f.fake.Count(hubspottest.OpBatchRead) != 2 {
		t.Fatalf("read %d, calls %d", len(statuses), f.fake.Count(hubspottest.OpBatchRead))
	}
	if s := statuses["p007@example.fi"]; len(s) != 1 || s[0].Status != hubspot.Unsubscribed {
		t.Fatalf("opted-out status = %+v", s)
	}
	if s := statuses["p008@example.fi"]; len(s) != 1 || s[0].Status != hubspot.Subscribed {
		t.Fatalf("status = %+v", s)
	}
}

func TestGDPRDelete(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	ctx := context.Background()
	email := "erase@example.fi"
	if _, err := f.c.SetStatus(ctx, grant(email)); err != nil {
		t.Fatal(err)
	}
	if err := f.c.GDPRDelete(ctx, email); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.Contact(email); ok || !f.fake.Deleted(email) {
		t.Fatal("contact not erased")
	}
	err := f.c.GDPRDelete(ctx, email)
	if !errors.Is(err, hubspot.ErrNotFound) {
		t.Fatalf("repeat: %v", err)
	}
	noLeak(t, err)
}

func TestFailures(t *testing.T) {
	email := "fail@example.fi"
	ctx := context.Background()
	t.Run("429 with Retry-After", func(t *testing.T) {
		f := setup(t, hubspot.Options{NoRetries: true}, hubspottest.Options{})
		f.fake.FailNext(hubspottest.RateLimited("3"))
		_, err := f.c.SetStatus(ctx, grant(email))
		d, ok := vendorhttp.RetryAfter(err)
		if !errors.Is(err, hubspot.ErrRateLimited) || !ok || d != 3*time.Second || !vendorhttp.IsRetryable(err) {
			t.Fatalf("err = %v", err)
		}
		var e *hubspot.Error
		if !errors.As(err, &e) || e.Code != "RATE_LIMIT" {
			t.Fatalf("code = %#v", e)
		}
		noLeak(t, err)
	})
	t.Run("429 without Retry-After, then retried", func(t *testing.T) {
		f := setup(t, hubspot.Options{}, hubspottest.Options{})
		f.fake.FailNext(hubspottest.RateLimited(""))
		if _, err := f.c.SetStatus(ctx, grant(email)); err != nil {
			t.Fatal(err)
		}
		if n := f.fake.Count(hubspottest.OpSetStatus); n != 2 {
			t.Fatalf("attempts = %d", n)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		f := setup(t, hubspot.Options{NoRetries: true}, hubspottest.Options{})
		f.fake.FailNext(hubspottest.ServerError(502))
		if err := f.c.GDPRDelete(ctx, email); !errors.Is(err, hubspot.ErrRetryable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400 with error body", func(t *testing.T) {
		f := setup(t, hubspot.Options{}, hubspottest.Options{})
		f.fake.FailNext(hubspottest.BadRequest("VALIDATION_ERROR", email+" is not valid"))
		_, err := f.c.SetStatus(ctx, grant(email))
		var e *hubspot.Error
		if !errors.Is(err, hubspot.ErrRejected) || !errors.As(err, &e) || e.Code != "VALIDATION_ERROR" || e.Retryable() {
			t.Fatalf("err = %v", err)
		}
		noLeak(t, err)
	})
	t.Run("wrong token", func(t *testing.T) {
		f := setup(t, hubspot.Options{}, hubspottest.Options{})
		c, _ := hubspot.New("wrong", hubspot.Options{BaseURL: f.fake.URL()})
		if _, err := c.SetStatus(ctx, grant(email)); !errors.Is(err, hubspot.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hanging connection ends at the deadline", func(t *testing.T) {
		f := setup(t, hubspot.Options{}, hubspottest.Options{})
		f.fake.FailNext(hubspottest.Hang())
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.c.SetStatus(ctx, grant(email))
		if time.Since(start) > 3*time.Second || !errors.Is(err, context.DeadlineExceeded) || !vendorhttp.IsRetryable(err) {
			t.Fatalf("err = %v after %s", err, time.Since(start))
		}
		noLeak(t, err) // the URL holds the address: it must not appear
	})
}

func TestRateLimitWindow(t *testing.T) {
	limit := vendorhttp.Window{Count: 10, Per: 500 * time.Millisecond}
	f := setup(t, hubspot.Options{Limit: limit}, hubspottest.Options{})
	var wg sync.WaitGroup
	for i := range 25 {
		wg.Go(func() {
			u := hubspot.StatusUpdate{Email: fmt.Sprintf("r%d@example.fi", i), SubscriptionID: newsletter, State: hubspot.Unsubscribed}
			if _, err := f.c.SetStatus(context.Background(), u); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	reqs := f.fake.Requests()
	for i := range reqs {
		n := 0
		for j := range reqs {
			if d := reqs[j].At.Sub(reqs[i].At); d >= 0 && d < limit.Per {
				n++
			}
		}
		if n > limit.Count {
			t.Fatalf("%d requests within %s of request %d", n, limit.Per, i)
		}
	}
}

func raw(t *testing.T, f fixture, method, path, ctype, body string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.fake.URL()+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+f.fake.Token())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFakeIsStrict(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	p := "/communication-preferences/v4/statuses/s@example.fi"
	good := `{"channel":"EMAIL","statusState":"SUBSCRIBED","subscriptionId":7001,"legalBasis":"CONSENT_WITH_NOTICE","legalBasisExplanation":"x"}`
	var many []string
	for i := range 101 {
		many = append(many, fmt.Sprintf(`"m%d@example.fi"`, i))
	}
	cases := []struct {
		name, method, path, ctype, body string
		auth                            bool
		want                            int
	}{
		{"good", "POST", p, "application/json", good, true, 200},
		{"no auth", "POST", p, "application/json", good, false, 401},
		{"text body", "POST", p, "text/plain", good, true, 415},
		{"channel", "POST", p, "application/json", strings.Replace(good, "EMAIL", "SMS", 1), true, 400},
		{"state enum", "POST", p, "application/json", strings.Replace(good, `"SUBSCRIBED"`, `"subscribed"`, 1), true, 400},
		{"unknown subscription", "POST", p, "application/json", strings.Replace(good, "7001", "9999", 1), true, 400},
		{"subscription as string", "POST", p, "application/json", strings.Replace(good, "7001", `"7001"`, 1), true, 400},
		{"legal basis enum", "POST", p, "application/json", strings.Replace(good, "CONSENT_WITH_NOTICE", "CONSENT", 1), true, 400},
		{"subscribe without basis", "POST", p, "application/json", `{"channel":"EMAIL","statusState":"SUBSCRIBED","subscriptionId":7001}`, true, 400},
		{"unknown field", "POST", p, "application/json", strings.Replace(good, "legalBasisExplanation", "explanation", 1), true, 400},
		{"not an email", "POST", "/communication-preferences/v4/statuses/12345", "application/json", good, true, 400},
		{"batch too big", "POST", "/communication-preferences/v4/statuses/batch/read?channel=EMAIL", "application/json", `{"inputs":[` + strings.Join(many, ",") + `]}`, true, 400},
		{"batch read without channel", "POST", "/communication-preferences/v4/statuses/batch/read", "application/json", `{"inputs":["s@example.fi"]}`, true, 400},
		{"batch write without subscriber", "POST", "/communication-preferences/v4/statuses/batch/write", "application/json", `{"inputs":[` + good + `]}`, true, 400},
		{"gdpr wrong idProperty", "POST", "/crm/v3/objects/contacts/gdpr-delete", "application/json", `{"objectId":"s@example.fi","idProperty":"mail"}`, true, 400},
		{"gdpr delete", "POST", "/crm/v3/objects/contacts/gdpr-delete", "application/json", `{"objectId":"s@example.fi","idProperty":"email"}`, true, 204},
	}
	for _, c := range cases {
		status, body := raw(t, f, c.method, c.path, c.ctype, c.body, c.auth)
		if status != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.want, body)
		}
		if status >= 400 && !strings.Contains(body, `"category"`) {
			t.Errorf("%s: not HubSpot's error body: %s", c.name, body)
		}
	}
}

func TestWebhookSignature(t *testing.T) {
	clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	f := setup(t, hubspot.Options{Now: now}, hubspottest.Options{Now: now})
	ctx := context.Background()
	email := "hook@example.fi"
	if _, err := f.c.SetStatus(ctx, grant(email)); err != nil {
		t.Fatal(err)
	}
	var changes []hubspot.SubscriptionChange
	var lastErr error
	receiver := httptest.NewServer(nil)
	defer receiver.Close()
	receiver.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The client's injected clock checks the timestamp: the same fake clock as HubSpot's.
		if err := f.c.VerifyRequest(r, body, f.fake.ClientSecret(), receiver.URL); err != nil {
			lastErr = err
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		evs, err := hubspot.ParseEvents(body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, e := range evs {
			if ch, ok := e.SubscriptionChange(); ok {
				changes = append(changes, ch)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	target := receiver.URL + "/v1/connectors/hubspot/events?connector=c%3A1&x=%40"

	if st, err := f.fake.SendOptOut(ctx, target, email, newsletter); err != nil || st != http.StatusNoContent {
		t.Fatalf("opt-out webhook: %d %v (%v)", st, err, lastErr)
	}
	if len(changes) != 1 || changes[0].SubscriptionID != newsletter || !changes[0].OptedOut || !changes[0].At.Equal(clock) {
		t.Fatalf("changes = %+v", changes)
	}
	got, err := f.c.ContactEmail(ctx, changes[0].ContactID)
	if err != nil || got != email {
		t.Fatalf("contact email = %q, %v", got, err)
	}
	if _, err := f.fake.SendOptOut(ctx, target, email, 0); err != nil || len(changes) != 2 || changes[1].SubscriptionID != 0 {
		t.Fatalf("opt out of all: %+v %v", changes, err)
	}

	// Tampered body, wrong secret, stale and future timestamps are refused.
	body, _ := json.Marshal([]any{f.fake.OptOutEvent(1, newsletter)})
	ts := strconv.FormatInt(clock.UnixMilli(), 10)
	sig := hubspottest.Sign(f.fake.ClientSecret(), "POST", target, body, ts)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] ^= 1
	old := strconv.FormatInt(clock.Add(-6*time.Minute).UnixMilli(), 10)
	future := strconv.FormatInt(clock.Add(6*time.Minute).UnixMilli(), 10)
	for name, c := range map[string]struct {
		body    []byte
		ts, sig string
		want    error
	}{
		"tampered":     {tampered, ts, sig, hubspot.ErrSignature},
		"wrong secret": {body, ts, hubspottest.Sign("other", "POST", target, body, ts), hubspot.ErrSignature},
		"stale":        {body, old, hubspottest.Sign(f.fake.ClientSecret(), "POST", target, body, old), hubspot.ErrStale},
		"future":       {body, future, hubspottest.Sign(f.fake.ClientSecret(), "POST", target, body, future), hubspot.ErrStale},
		"no signature": {body, ts, "", hubspot.ErrSignature},
	} {
		lastErr = nil
		st, err := f.fake.SendSigned(ctx, target, c.body, c.ts, c.sig)
		if err != nil || st != http.StatusUnauthorized || !errors.Is(lastErr, c.want) {
			t.Errorf("%s: status %d, verify error %v", name, st, lastErr)
		}
	}
	// The client's own signer agrees with the fake's.
	if hubspot.SignV3(f.fake.ClientSecret(), "POST", target, body, ts) != sig {
		t.Fatal("signers disagree")
	}
}

func TestChangeEmailMovesContact(t *testing.T) {
	f := setup(t, hubspot.Options{}, hubspottest.Options{})
	ctx := context.Background()
	old, neu := "old@example.fi", "new@example.fi"
	if _, err := f.c.SetStatus(ctx, grant(old)); err != nil {
		t.Fatal(err)
	}
	before, _ := f.fake.Contact(old)
	if err := f.c.ChangeEmail(ctx, old, neu); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.Contact(old); ok {
		t.Fatal("old address still holds a contact")
	}
	after, ok := f.fake.Contact(neu)
	if !ok || after.ID != before.ID || after.Statuses[newsletter].State != hubspot.Subscribed || f.fake.ContactCount() != 1 {
		t.Fatalf("moved contact = %+v", after)
	}
	// Re-writing the status to the new address is harmless.
	st, err := f.c.SetStatus(ctx, grant(neu))
	if err != nil || st.SetStatusSuccessReason != "NO_STATUS_CHANGE" {
		t.Fatalf("status after move: %+v %v", st, err)
	}
	if err := f.c.ChangeEmail(ctx, old, neu); !errors.Is(err, hubspot.ErrNotFound) {
		t.Fatalf("repeat move: %v", err)
	}
	if _, err := f.c.SetStatus(ctx, grant("third@example.fi")); err != nil {
		t.Fatal(err)
	}
	err = f.c.ChangeEmail(ctx, "third@example.fi", neu)
	var e *hubspot.Error
	if !errors.Is(err, hubspot.ErrRejected) || !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "CONFLICT" {
		t.Fatalf("move onto an existing contact: %v", err)
	}
	noLeak(t, err)
}

func TestClientDoesNotPrintToken(t *testing.T) {
	c, _ := hubspot.New("pat-secret-token", hubspot.Options{})
	if s := fmt.Sprintf("%v %+v %s", c, c, c); strings.Contains(s, "pat-secret-token") {
		t.Fatalf("token printed: %s", s)
	}
}
