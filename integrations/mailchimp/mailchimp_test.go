package mailchimp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/mailchimp"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

const list = "a1b2c3d4e5"

type fixture struct {
	fake *mailchimptest.Server
	c    *mailchimp.Client
}

func setup(t *testing.T, opt mailchimp.Options) fixture {
	t.Helper()
	fake := mailchimptest.New(t, mailchimptest.Options{})
	fake.AddList(list, "perm-email", "perm-ads")
	opt.BaseURL = fake.BaseURL()
	opt.HTTPClient = fake.Client()
	c, err := mailchimp.New(fake.Key(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{fake: fake, c: c}
}

// noLeak fails when an error string carries the address or its hash.
func noLeak(t *testing.T, err error, email string) {
	t.Helper()
	if err == nil {
		return
	}
	s := err.Error()
	if strings.Contains(strings.ToLower(s), strings.ToLower(email)) || strings.Contains(s, mailchimp.SubscriberHash(email)) || strings.Contains(s, "@") {
		t.Errorf("error leaks personal data: %q", s)
	}
}

func TestBaseURLFromKey(t *testing.T) {
	got, err := mailchimp.BaseURL("0123abcd-us6")
	if err != nil || got != "https://us6.api.mailchimp.com/3.0" {
		t.Fatalf("BaseURL = %q, %v", got, err)
	}
	for _, bad := range []string{"", "nokey", "abc-", "abc-us6.evil.example", "abc-evil.example/x", "abc-US6", "abc-us6#"} {
		if _, err := mailchimp.BaseURL(bad); !errors.Is(err, mailchimp.ErrBadKey) {
			t.Errorf("BaseURL(%q) err = %v, want ErrBadKey", bad, err)
		}
		if _, err := mailchimp.New(bad, mailchimp.Options{}); err == nil {
			t.Errorf("New(%q) accepted a bad key", bad)
		}
	}
}

func TestSubscribeUnsubscribeIdempotent(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	ctx := context.Background()
	email := "Aino.Virtanen@Example.fi"
	perms := []mailchimp.Permission{{ID: "perm-email", Enabled: true}}

	m, err := f.c.Subscribe(ctx, list, email, perms)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "subscribed" || m.ID != mailchimp.SubscriberHash(email) {
		t.Fatalf("member = %+v", m)
	}
	first, _ := f.fake.Member(list, email)
	if !first.Permissions["perm-email"] {
		t.Fatalf("permission not stored: %+v", first)
	}
	// Repeating the subscribe changes nothing.
	if _, err := f.c.Subscribe(ctx, list, email, perms); err != nil {
		t.Fatal(err)
	}
	again, _ := f.fake.Member(list, email)
	if again.Status != "subscribed" || !again.LastChanged.Equal(first.LastChanged) || len(f.fake.Members(list)) != 1 {
		t.Fatalf("repeat changed state: %+v", again)
	}

	for range 2 {
		if _, err := f.c.Unsubscribe(ctx, list, email); err != nil {
			t.Fatal(err)
		}
		got, _ := f.fake.Member(list, email)
		if got.Status != "unsubscribed" {
			t.Fatalf("status = %s", got.Status)
		}
	}
	// Lupa's own withdrawal can be followed by a new grant (not a compliance state).
	if _, err := f.c.Subscribe(ctx, list, email, perms); err != nil {
		t.Fatalf("resubscribe after Lupa's unsubscribe: %v", err)
	}

	_, err = f.c.Unsubscribe(ctx, list, "nobody@example.fi")
	if !errors.Is(err, mailchimp.ErrNotFound) {
		t.Fatalf("unsubscribe unknown: %v", err)
	}
	noLeak(t, err, "nobody@example.fi")
}

func TestComplianceState(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	ctx := context.Background()
	email := "left@example.fi"
	if _, err := f.c.Subscribe(ctx, list, email, nil); err != nil {
		t.Fatal(err)
	}
	f.fake.PersonUnsubscribes(list, email)
	_, err := f.c.Subscribe(ctx, list, email, nil)
	if !errors.Is(err, mailchimp.ErrComplianceState) {
		t.Fatalf("err = %v, want ErrComplianceState", err)
	}
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Retryable() || e.Status != 400 || e.Code != mailchimp.TitleComplianceState {
		t.Fatalf("error = %#v", e)
	}
	noLeak(t, err, email)
	if m, _ := f.fake.Member(list, email); m.Status != "unsubscribed" {
		t.Fatalf("forced resubscribe: %s", m.Status)
	}

	// The scripted fault gives the same answer.
	f.fake.FailNext(mailchimptest.ComplianceState())
	_, err = f.c.Subscribe(ctx, list, "other@example.fi", nil)
	if !errors.Is(err, mailchimp.ErrComplianceState) {
		t.Fatalf("scripted: %v", err)
	}
	noLeak(t, err, "other@example.fi")
}

func TestDeletePermanent(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	ctx := context.Background()
	email := "erase@example.fi"
	if _, err := f.c.Subscribe(ctx, list, email, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.c.DeletePermanent(ctx, list, email); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.Member(list, email); ok || !f.fake.Deleted(list, email) {
		t.Fatal("member not permanently deleted")
	}
	err := f.c.DeletePermanent(ctx, list, email)
	if !errors.Is(err, mailchimp.ErrNotFound) {
		t.Fatalf("repeat delete: %v (want ErrNotFound: already gone)", err)
	}
	if _, err := f.c.Subscribe(ctx, list, email, nil); !errors.Is(err, mailchimp.ErrComplianceState) {
		t.Fatalf("re-adding a deleted address: %v", err)
	}
}

func TestChangeEmailMovesMember(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	ctx := context.Background()
	old, neu := "old@example.fi", "New@Example.fi"
	if _, err := f.c.Subscribe(ctx, list, old, []mailchimp.Permission{{ID: "perm-ads", Enabled: true}}); err != nil {
		t.Fatal(err)
	}
	m, err := f.c.ChangeEmail(ctx, list, old, neu)
	if err != nil {
		t.Fatal(err)
	}
	if m.EmailAddress != neu || m.Status != "subscribed" {
		t.Fatalf("moved member = %+v", m)
	}
	if _, ok := f.fake.Member(list, old); ok {
		t.Fatal("old record still there")
	}
	got, ok := f.fake.Member(list, neu)
	if !ok || !got.Permissions["perm-ads"] || len(f.fake.Members(list)) != 1 {
		t.Fatalf("new record = %+v (members %d)", got, len(f.fake.Members(list)))
	}
	// Repeating the move: the old address is gone.
	if _, err := f.c.ChangeEmail(ctx, list, old, neu); !errors.Is(err, mailchimp.ErrNotFound) {
		t.Fatalf("repeat move: %v", err)
	}
	// Moving onto an existing member is refused, not merged.
	if _, err := f.c.Subscribe(ctx, list, "third@example.fi", nil); err != nil {
		t.Fatal(err)
	}
	_, err = f.c.ChangeEmail(ctx, list, "third@example.fi", neu)
	var e *mailchimp.Error
	if !errors.Is(err, mailchimp.ErrRejected) || !errors.As(err, &e) || e.Code != "Member Exists" {
		t.Fatalf("move onto existing: %v", err)
	}
	noLeak(t, err, neu)
}

func TestChangedPaging(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2300 {
		f.fake.PutMember(list, fmt.Sprintf("u%04d@example.fi", i), "unsubscribed", t0.Add(time.Duration(i)*time.Minute))
	}
	for i := range 5 {
		f.fake.PutMember(list, fmt.Sprintf("c%d@example.fi", i), "cleaned", t0.Add(200*time.Hour))
		f.fake.PutMember(list, fmt.Sprintf("s%d@example.fi", i), "subscribed", t0.Add(time.Hour))
	}
	since := t0.Add(100 * time.Minute)
	var got []mailchimp.Member
	err := f.c.Changed(context.Background(), list, since, nil, func(m mailchimp.Member) error {
		got = append(got, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2200 + 5; len(got) != want {
		t.Fatalf("got %d members, want %d", len(got), want)
	}
	seen := map[string]bool{}
	var last time.Time
	for _, m := range got[:2200] {
		if seen[m.EmailAddress] || m.Status != "unsubscribed" || m.LastChangedTime().Before(last) || m.LastChangedTime().Before(since) {
			t.Fatalf("bad page order or content at %+v", m)
		}
		seen[m.EmailAddress] = true
		last = m.LastChangedTime()
	}
	if n := f.fake.Count(mailchimptest.OpList); n != 3+1 {
		t.Fatalf("list requests = %d, want 3 pages of unsubscribed + 1 of cleaned", n)
	}
	// fn's error stops the walk.
	stop := errors.New("stop")
	if err := f.c.Changed(context.Background(), list, since, nil, func(mailchimp.Member) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("stop: %v", err)
	}
}

// TestChangedWhileMembersChange: members that change between two pages of a walk — one
// already read resubscribes, or changes again and moves to the end — must not make the
// walk skip the member at the next page boundary, also when more members than a page
// share one second. Members read twice are fine (the caller records nothing twice).
func TestChangedWhileMembersChange(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	later := t0.Add(24 * time.Hour)
	cases := []struct {
		name   string
		step   time.Duration // between the members' last_changed; 0: all in one second
		change func(f fixture, email string)
	}{
		{"resubscribes", time.Second, func(f fixture, e string) { f.fake.PutMember(list, e, "subscribed", later) }},
		{"moves to the end", time.Second, func(f fixture, e string) { f.fake.PutMember(list, e, "unsubscribed", later) }},
		{"resubscribes, one second", 0, func(f fixture, e string) { f.fake.PutMember(list, e, "subscribed", later) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, mailchimp.Options{})
			const n = 2500
			for i := range n {
				f.fake.PutMember(list, fmt.Sprintf("u%04d@example.fi", i), "unsubscribed", t0.Add(time.Duration(i)*tc.step))
			}
			f.fake.OnList(func(k int) {
				if k == 1 || k == 3 { // before the second and the fourth page: one already read changes
					tc.change(f, fmt.Sprintf("u%04d@example.fi", 10*k))
				}
			})
			seen := map[string]bool{}
			err := f.c.Changed(context.Background(), list, time.Time{}, []string{mailchimp.StatusUnsubscribed}, func(m mailchimp.Member) error {
				seen[m.EmailAddress] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if e := fmt.Sprintf("u%04d@example.fi", i); !seen[e] {
					t.Fatalf("%s was never read (%d of %d read)", e, len(seen), n)
				}
			}
		})
	}
	t.Run("keeps changing", func(t *testing.T) {
		f := setup(t, mailchimp.Options{})
		for i := range 1500 { // all in one second: reading again from it is reading from the start
			f.fake.PutMember(list, fmt.Sprintf("u%04d@example.fi", i), "unsubscribed", t0)
		}
		f.fake.OnList(func(k int) { // before every page but the first, one already read moves to the end
			if k > 0 {
				f.fake.PutMember(list, fmt.Sprintf("u%04d@example.fi", k), "unsubscribed", later.Add(time.Duration(k)*time.Second))
			}
		})
		err := f.c.Changed(context.Background(), list, time.Time{}, []string{mailchimp.StatusUnsubscribed}, func(mailchimp.Member) error { return nil })
		if !errors.Is(err, mailchimp.ErrRetryable) {
			t.Fatalf("a walk that never keeps its place: %v, want ErrRetryable", err)
		}
		if k := f.fake.Count(mailchimptest.OpList); k > 20 {
			t.Fatalf("%d list requests: the walk is not bounded", k)
		}
	})
}

func TestFailures(t *testing.T) {
	email := "fail@example.fi"
	t.Run("429 with Retry-After", func(t *testing.T) {
		f := setup(t, mailchimp.Options{NoRetries: true})
		f.fake.FailNext(mailchimptest.RateLimited("2"))
		_, err := f.c.Subscribe(context.Background(), list, email, nil)
		if !errors.Is(err, mailchimp.ErrRateLimited) {
			t.Fatalf("err = %v", err)
		}
		var e *mailchimp.Error
		if !errors.As(err, &e) || e.RetryAfter != 2*time.Second || !e.Retryable() {
			t.Fatalf("error = %#v", e)
		}
		noLeak(t, err, email)
		// The limiter now holds every call until the Retry-After has passed.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := f.c.Subscribe(ctx, list, email, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call during pause: %v", err)
		}
		if n := f.fake.Count(mailchimptest.OpUpsert); n != 1 {
			t.Fatalf("requests during pause: %d", n)
		}
	})
	t.Run("429 honoured within the call", func(t *testing.T) {
		f := setup(t, mailchimp.Options{})
		f.fake.FailNext(mailchimptest.RateLimited("1"))
		start := time.Now()
		if _, err := f.c.Subscribe(context.Background(), list, email, nil); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("retried after %s, before Retry-After", d)
		}
		if n := f.fake.Count(mailchimptest.OpUpsert); n != 2 {
			t.Fatalf("attempts = %d", n)
		}
	})
	t.Run("429 longer than the in-call cap is returned", func(t *testing.T) {
		f := setup(t, mailchimp.Options{MaxRetryWait: time.Second})
		f.fake.FailNext(mailchimptest.RateLimited("120"))
		_, err := f.c.Subscribe(context.Background(), list, email, nil)
		if d, ok := mailchimpRetryAfter(err); !ok || d != 120*time.Second {
			t.Fatalf("err = %v", err)
		}
		// Later calls do not wait out the long pause either: they are told at once.
		start := time.Now()
		_, err = f.c.Subscribe(context.Background(), list, email, nil)
		if d, ok := mailchimpRetryAfter(err); !ok || d < 110*time.Second || time.Since(start) > time.Second {
			t.Fatalf("during the pause: %v", err)
		}
		if n := f.fake.Count(mailchimptest.OpUpsert); n != 1 {
			t.Fatalf("requests during the pause: %d", n)
		}
	})
	t.Run("429 without Retry-After", func(t *testing.T) {
		f := setup(t, mailchimp.Options{NoRetries: true})
		f.fake.FailNext(mailchimptest.RateLimited(""))
		_, err := f.c.Unsubscribe(context.Background(), list, email)
		var e *mailchimp.Error
		if !errors.Is(err, mailchimp.ErrRateLimited) || !errors.As(err, &e) || e.RetryAfter != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("5xx is retryable and retried", func(t *testing.T) {
		f := setup(t, mailchimp.Options{NoRetries: true})
		f.fake.FailNext(mailchimptest.ServerError(503))
		_, err := f.c.Subscribe(context.Background(), list, email, nil)
		if !errors.Is(err, mailchimp.ErrRetryable) {
			t.Fatalf("err = %v", err)
		}
		f2 := setup(t, mailchimp.Options{})
		f2.fake.FailNext(mailchimptest.ServerError(500))
		if _, err := f2.c.Subscribe(context.Background(), list, email, nil); err != nil {
			t.Fatalf("after one 500: %v", err)
		}
	})
	t.Run("400 with error body is final", func(t *testing.T) {
		f := setup(t, mailchimp.Options{})
		f.fake.FailNext(mailchimptest.BadRequest("Invalid Resource", email+" looks fake"))
		_, err := f.c.Subscribe(context.Background(), list, email, nil)
		var e *mailchimp.Error
		if !errors.Is(err, mailchimp.ErrRejected) || !errors.As(err, &e) || e.Retryable() || e.Code != "Invalid Resource" {
			t.Fatalf("err = %v", err)
		}
		if f.fake.Count(mailchimptest.OpUpsert) != 1 {
			t.Fatal("a final error was retried")
		}
		noLeak(t, err, email)
	})
	t.Run("wrong key", func(t *testing.T) {
		f := setup(t, mailchimp.Options{})
		c, _ := mailchimp.New("wrong-us1", mailchimp.Options{BaseURL: f.fake.BaseURL()})
		if _, err := c.Subscribe(context.Background(), list, email, nil); !errors.Is(err, mailchimp.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hanging connection ends at the deadline", func(t *testing.T) {
		f := setup(t, mailchimp.Options{})
		f.fake.FailNext(mailchimptest.Hang())
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.c.Subscribe(ctx, list, email, nil)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %s", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, mailchimp.ErrRetryable) {
			t.Fatalf("err = %v", err)
		}
		noLeak(t, err, email)
	})
}

func mailchimpRetryAfter(err error) (time.Duration, bool) {
	var e *mailchimp.Error
	if errors.As(err, &e) && errors.Is(err, mailchimp.ErrRateLimited) {
		return e.RetryAfter, true
	}
	return 0, false
}

func TestConcurrencyLimit(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	f.fake.SetLatency(30 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if _, err := f.c.Subscribe(context.Background(), list, fmt.Sprintf("p%d@example.fi", i), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.fake.MaxInFlight(); n > mailchimp.MaxConcurrent || n < 2 {
		t.Fatalf("max in flight = %d", n)
	}
}

// raw sends a request straight to the fake, for the strictness tests.
func raw(t *testing.T, f fixture, method, path, ctype, body string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.fake.BaseURL()+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		req.SetBasicAuth("x", f.fake.Key())
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
	f := setup(t, mailchimp.Options{})
	email := "strict@example.fi"
	h := mailchimp.SubscriberHash(email)
	member := "/lists/" + list + "/members/" + h
	good := `{"email_address":"strict@example.fi","status_if_new":"subscribed","status":"subscribed"}`
	cases := []struct {
		name, method, path, ctype, body string
		auth                            bool
		want                            int
	}{
		{"good", "PUT", member, "application/json", good, true, 200},
		{"no auth", "PUT", member, "application/json", good, false, 401},
		{"form body", "PUT", member, "application/x-www-form-urlencoded", good, true, 400},
		{"unknown field", "PUT", member, "application/json", `{"email_address":"strict@example.fi","status_if_new":"subscribed","statuss":"subscribed"}`, true, 400},
		{"bad enum", "PUT", member, "application/json", `{"email_address":"strict@example.fi","status_if_new":"SUBSCRIBED"}`, true, 400},
		{"missing status_if_new", "PUT", member, "application/json", `{"email_address":"strict@example.fi","status":"subscribed"}`, true, 400},
		{"hash mismatch", "PUT", "/lists/" + list + "/members/" + mailchimp.SubscriberHash("x@example.fi"), "application/json", good, true, 400},
		{"email in path", "PUT", "/lists/" + list + "/members/strict@example.fi", "application/json", good, true, 404},
		{"unknown permission", "PUT", member, "application/json", `{"email_address":"strict@example.fi","status_if_new":"subscribed","marketing_permissions":[{"marketing_permission_id":"nope","enabled":true}]}`, true, 400},
		{"permission without enabled", "PUT", member, "application/json", `{"email_address":"strict@example.fi","status_if_new":"subscribed","marketing_permissions":[{"marketing_permission_id":"perm-ads"}]}`, true, 400},
		{"unknown list", "PUT", "/lists/nolist/members/" + h, "application/json", good, true, 404},
		{"DELETE only archives: not offered", "DELETE", member, "", "", true, 404},
		{"patch status_if_new", "PATCH", member, "application/json", `{"status_if_new":"subscribed"}`, true, 400},
		{"count too big", "GET", "/lists/" + list + "/members?count=1001", "", "", true, 400},
		{"bad since", "GET", "/lists/" + list + "/members?since_last_changed=yesterday", "", "", true, 400},
		{"unknown path", "GET", "/lists/" + list + "/segments", "", "", true, 404},
	}
	for _, c := range cases {
		status, body := raw(t, f, c.method, c.path, c.ctype, c.body, c.auth)
		if status != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.want, body)
		}
		if status >= 400 && !strings.Contains(body, `"title"`) {
			t.Errorf("%s: not a problem body: %s", c.name, body)
		}
	}
}

func TestWebhook(t *testing.T) {
	f := setup(t, mailchimp.Options{})
	ctx := context.Background()
	secret, err := mailchimp.NewWebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []*mailchimp.WebhookEvent
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := mailchimp.ParseWebhook(r, secret, list)
		switch {
		case errors.Is(err, mailchimp.ErrWebhookPing):
			w.WriteHeader(200)
		case errors.Is(err, mailchimp.ErrWebhookAuth):
			w.WriteHeader(401)
		case err != nil:
			w.WriteHeader(400)
		default:
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			w.WriteHeader(200)
		}
	}))
	defer receiver.Close()
	target := receiver.URL + "/hooks/mailchimp?secret=" + secret

	if st, err := f.fake.Ping(ctx, target); err != nil || st != 200 {
		t.Fatalf("ping: %d %v", st, err)
	}
	email := "hook@example.fi"
	if _, err := f.c.Subscribe(ctx, list, email, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := f.fake.SendUnsubscribe(ctx, target, list, email); err != nil || st != 200 {
		t.Fatalf("unsubscribe webhook: %d %v", st, err)
	}
	if st, _ := f.fake.SendUnsubscribe(ctx, receiver.URL+"/hooks/mailchimp?secret=wrong", list, email); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	if st, _ := f.fake.SendUnsubscribe(ctx, receiver.URL+"/hooks/mailchimp", list, email); st != 401 {
		t.Fatalf("no secret: %d", st)
	}
	if st, _ := f.fake.SendWebhook(ctx, target, f.fake.UnsubscribeForm("otherlist", email, "")); st != 400 {
		t.Fatalf("other list: %d", st)
	}
	if st, _ := f.fake.SendCleaned(ctx, target, list, email, "abuse"); st != 200 {
		t.Fatalf("cleaned: %d", st)
	}
	if st, _ := f.fake.SendUpemail(ctx, target, list, email, "moved@example.fi"); st != 200 {
		t.Fatalf("upemail: %d", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 {
		t.Fatalf("events = %d", len(events))
	}
	u := events[0]
	if u.Type != mailchimp.EventUnsubscribe || u.Email != email || u.ListID != list || u.Action != "unsub" || u.Reason != "manual" || u.FiredAt.IsZero() || !u.Withdrawal() {
		t.Fatalf("unsubscribe event = %+v", u)
	}
	if c := events[1]; c.Type != mailchimp.EventCleaned || !c.Withdrawal() {
		t.Fatalf("cleaned event = %+v", c)
	}
	if e := events[2]; e.Type != mailchimp.EventUpemail || e.OldEmail != email || e.NewEmail != "moved@example.fi" || e.Withdrawal() {
		t.Fatalf("upemail event = %+v", e)
	}
	// After the person's own unsubscribe, Lupa must not resubscribe them.
	if _, err := f.c.Subscribe(ctx, list, "moved@example.fi", nil); !errors.Is(err, mailchimp.ErrComplianceState) {
		t.Fatalf("resubscribe after own unsubscribe: %v", err)
	}
}

func TestWebhookSecretEmptyNeverMatches(t *testing.T) {
	if mailchimp.SecretMatches("", "") {
		t.Fatal("empty secret matched")
	}
	r := httptest.NewRequest(http.MethodPost, "/hook?secret=", strings.NewReader("type=unsubscribe&data[email]=a@b.fi"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := mailchimp.ParseWebhook(r, "", ""); !errors.Is(err, mailchimp.ErrWebhookAuth) {
		t.Fatalf("err = %v", err)
	}
}

func TestClientDoesNotPrintKey(t *testing.T) {
	c, _ := mailchimp.New("secretkey0123-us6", mailchimp.Options{})
	if s := fmt.Sprintf("%v %+v %s", c, c, c); strings.Contains(s, "secretkey0123") {
		t.Fatalf("key printed: %s", s)
	}
}
