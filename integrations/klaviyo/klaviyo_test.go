package klaviyo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/internal/vendorhttp"
	"github.com/lupa-cmp/lupa/integrations/klaviyo"
	"github.com/lupa-cmp/lupa/integrations/klaviyo/klaviyotest"
)

const list = "Y6nRLr"

type fixture struct {
	fake *klaviyotest.Server
	c    *klaviyo.Client
}

func setup(t *testing.T, opt klaviyo.Options, fopt klaviyotest.Options) fixture {
	t.Helper()
	fake := klaviyotest.New(t, fopt)
	fake.AddList(list)
	opt.BaseURL = fake.URL()
	c, err := klaviyo.New(fake.Key(), opt)
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

func emails(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d@example.fi", prefix, i)
	}
	return out
}

func TestSubscribeUnsubscribeIdempotent(t *testing.T) {
	f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
	ctx := context.Background()
	all := emails("s", 2500)
	for range 2 {
		if err := f.c.Subscribe(ctx, list, all); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.fake.Count(klaviyotest.OpSubscribe); n != 6 {
		t.Fatalf("subscribe jobs = %d, want 3 per run", n)
	}
	if f.fake.ProfileCount() != 2500 {
		t.Fatalf("profiles = %d", f.fake.ProfileCount())
	}
	p, _ := f.fake.Profile(all[1234])
	if p.Consent != "SUBSCRIBED" || !p.Lists[list] {
		t.Fatalf("profile = %+v", p)
	}
	out := all[:250]
	for range 2 {
		if err := f.c.Unsubscribe(ctx, list, out); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.fake.Count(klaviyotest.OpUnsubscribe); n != 6 {
		t.Fatalf("unsubscribe jobs = %d, want 3 per run", n)
	}
	p, _ = f.fake.Profile(out[7])
	if p.Consent != "UNSUBSCRIBED" || p.Lists[list] || len(p.Suppressions) != 1 {
		t.Fatalf("unsubscribed profile = %+v", p)
	}
	if err := f.c.Subscribe(ctx, "", all[:1]); !errors.Is(err, klaviyo.ErrRejected) {
		t.Fatalf("no list: %v", err)
	}
	if err := f.c.Unsubscribe(ctx, "", nil); err != nil {
		t.Fatalf("empty unsubscribe: %v", err)
	}
}

func TestRequestDeletion(t *testing.T) {
	f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
	ctx := context.Background()
	email := "erase@example.fi"
	if err := f.c.Subscribe(ctx, list, []string{email}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.c.RequestDeletion(ctx, email); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.fake.Profile(email); ok || !f.fake.Deleted(email) {
		t.Fatal("profile not deleted")
	}
}

func TestSuppressedPaging(t *testing.T) {
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tick := func() { mu.Lock(); clock = clock.Add(time.Second); mu.Unlock() }
	f := setup(t, klaviyo.Options{Now: now}, klaviyotest.Options{Now: now})
	ctx := context.Background()
	all := emails("r", 300)
	if err := f.c.Subscribe(ctx, list, all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all[:20] {
		f.fake.PersonUnsubscribes(e)
		tick()
	}
	since := now()
	tick()
	for _, e := range all[20:270] {
		f.fake.PersonUnsubscribes(e)
		tick()
	}
	f.fake.Suppress(all[290], "HARD_BOUNCE")
	var got []klaviyo.Profile
	err := f.c.Suppressed(ctx, since, func(p klaviyo.Profile) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 251 || f.fake.Count(klaviyotest.OpProfiles) != 3 {
		t.Fatalf("got %d profiles in %d pages", len(got), f.fake.Count(klaviyotest.OpProfiles))
	}
	for i, p := range got[:250] {
		if p.Email != all[20+i] || !p.Withdrawal() || p.CanReceive {
			t.Fatalf("profile %d = %+v", i, p)
		}
	}
	if last := got[250]; last.Email != all[290] || last.Withdrawal() {
		t.Fatalf("bounce = %+v (a bounce is not a withdrawal)", last)
	}
	// A later subscribe lifts Klaviyo's unsubscribe suppression: the engine must not
	// replay a stale subscribe over the person's own unsubscribe.
	if err := f.c.Subscribe(ctx, list, all[20:21]); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.fake.Profile(all[20]); p.Consent != "SUBSCRIBED" || len(p.Suppressions) != 0 {
		t.Fatalf("profile = %+v", p)
	}
}

func TestNextLinkMustStayOnHost(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the API key was sent to another host")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.api+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{}, "links": map[string]any{"next": other.URL + "/api/profiles?page%5Bcursor%5D=x"}})
	}))
	defer srv.Close()
	c, _ := klaviyo.New("pk_x", klaviyo.Options{BaseURL: srv.URL})
	err := c.Suppressed(context.Background(), time.Now(), func(klaviyo.Profile) error { return nil })
	if !errors.Is(err, klaviyo.ErrRejected) {
		t.Fatalf("err = %v", err)
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	one := []string{"fail@example.fi"}
	t.Run("429 with Retry-After", func(t *testing.T) {
		f := setup(t, klaviyo.Options{NoRetries: true}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.RateLimited("4"))
		err := f.c.Subscribe(ctx, list, one)
		var e *klaviyo.Error
		if !errors.Is(err, klaviyo.ErrRateLimited) || !errors.As(err, &e) || e.RetryAfter != 4*time.Second || e.Code != "throttled" {
			t.Fatalf("err = %v", err)
		}
		noLeak(t, err)
	})
	t.Run("429 without Retry-After", func(t *testing.T) {
		f := setup(t, klaviyo.Options{NoRetries: true}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.RateLimited(""))
		err := f.c.Unsubscribe(ctx, list, one)
		if _, ok := vendorhttp.RetryAfter(err); !errors.Is(err, klaviyo.ErrRateLimited) || ok {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("429 then success within the call", func(t *testing.T) {
		f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.RateLimited("1"))
		if err := f.c.RequestDeletion(ctx, one[0]); err != nil {
			t.Fatal(err)
		}
		if n := f.fake.Count(klaviyotest.OpDelete); n != 2 {
			t.Fatalf("attempts = %d", n)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		f := setup(t, klaviyo.Options{NoRetries: true}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.ServerError(500))
		if err := f.c.Subscribe(ctx, list, one); !errors.Is(err, klaviyo.ErrRetryable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400 with error body", func(t *testing.T) {
		f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.BadRequest("invalid", one[0]+" is not allowed"))
		err := f.c.Subscribe(ctx, list, one)
		var e *klaviyo.Error
		if !errors.Is(err, klaviyo.ErrRejected) || !errors.As(err, &e) || e.Code != "invalid" || e.Retryable() {
			t.Fatalf("err = %v", err)
		}
		noLeak(t, err)
	})
	t.Run("wrong key", func(t *testing.T) {
		f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
		c, _ := klaviyo.New("pk_wrong", klaviyo.Options{BaseURL: f.fake.URL()})
		if err := c.Subscribe(ctx, list, one); !errors.Is(err, klaviyo.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hanging connection ends at the deadline", func(t *testing.T) {
		f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
		f.fake.FailNext(klaviyotest.Hang())
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := f.c.RequestDeletion(ctx, one[0])
		if time.Since(start) > 3*time.Second || !errors.Is(err, context.DeadlineExceeded) || !vendorhttp.IsRetryable(err) {
			t.Fatalf("err = %v after %s", err, time.Since(start))
		}
	})
}

func TestDeletionRateLimit(t *testing.T) {
	f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if err := f.c.RequestDeletion(context.Background(), fmt.Sprintf("d%d@example.fi", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	reqs := f.fake.Requests()
	for i := range reqs {
		n := 0
		for j := range reqs {
			if d := reqs[j].At.Sub(reqs[i].At); d >= 0 && d < time.Second {
				n++
			}
		}
		if n > 3 {
			t.Fatalf("%d deletion jobs within one second", n)
		}
	}
}

func raw(t *testing.T, f fixture, method, path string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.fake.URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Klaviyo-API-Key "+f.fake.Key())
	req.Header.Set("revision", klaviyo.Revision)
	if method == "POST" {
		req.Header.Set("Content-Type", "application/vnd.api+json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func subJob(typ, consent string, n int, rel string) string {
	var ps []string
	for i := range n {
		ps = append(ps, fmt.Sprintf(`{"type":"profile","attributes":{"email":"j%d@example.fi","subscriptions":{"email":{"marketing":{"consent":"%s"}}}}}`, i, consent))
	}
	return `{"data":{"type":"` + typ + `","attributes":{"profiles":{"data":[` + strings.Join(ps, ",") + `]}}` + rel + `}}`
}

func TestFakeIsStrict(t *testing.T) {
	f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
	rel := `,"relationships":{"list":{"data":{"type":"list","id":"` + list + `"}}}`
	sub := "/api/profile-subscription-bulk-create-jobs"
	unsub := "/api/profile-subscription-bulk-delete-jobs"
	del := "/api/data-privacy-deletion-jobs"
	good := subJob("profile-subscription-bulk-create-job", "SUBSCRIBED", 1, rel)
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               int
	}{
		{"good subscribe", "POST", sub, nil, good, 202},
		{"no key", "POST", sub, map[string]string{"Authorization": ""}, good, 401},
		{"bearer key", "POST", sub, map[string]string{"Authorization": "Bearer " + f.fake.Key()}, good, 401},
		{"no revision", "POST", sub, map[string]string{"revision": ""}, good, 400},
		{"other revision", "POST", sub, map[string]string{"revision": "2023-02-22"}, good, 400},
		{"plain json", "POST", sub, map[string]string{"Content-Type": "application/json"}, good, 415},
		{"wrong type", "POST", sub, nil, subJob("profile-subscription-bulk-delete-job", "SUBSCRIBED", 1, rel), 400},
		{"consent enum", "POST", sub, nil, subJob("profile-subscription-bulk-create-job", "subscribed", 1, rel), 400},
		{"1001 profiles", "POST", sub, nil, subJob("profile-subscription-bulk-create-job", "SUBSCRIBED", 1001, rel), 400},
		{"no list", "POST", sub, nil, subJob("profile-subscription-bulk-create-job", "SUBSCRIBED", 1, ""), 400},
		{"unknown list", "POST", sub, nil, strings.Replace(good, list, "nope", 1), 400},
		{"unknown field", "POST", sub, nil, strings.Replace(good, `"email":`, `"e_mail":`, 1), 400},
		{"good unsubscribe", "POST", unsub, nil, subJob("profile-subscription-bulk-delete-job", "UNSUBSCRIBED", 100, ""), 202},
		{"101 unsubscribes", "POST", unsub, nil, subJob("profile-subscription-bulk-delete-job", "UNSUBSCRIBED", 101, ""), 400},
		{"unsubscribe consent", "POST", unsub, nil, subJob("profile-subscription-bulk-delete-job", "SUBSCRIBED", 1, ""), 400},
		{"good deletion", "POST", del, nil, `{"data":{"type":"data-privacy-deletion-job","attributes":{"profile":{"data":{"type":"profile","attributes":{"email":"x@example.fi"}}}}}}`, 202},
		{"deletion two ids", "POST", del, nil, `{"data":{"type":"data-privacy-deletion-job","attributes":{"profile":{"data":{"type":"profile","attributes":{"email":"x@example.fi","phone_number":"+358401234567"}}}}}}`, 400},
		{"deletion no id", "POST", del, nil, `{"data":{"type":"data-privacy-deletion-job","attributes":{"profile":{"data":{"type":"profile","attributes":{}}}}}}`, 400},
		{"filter field", "GET", "/api/profiles?filter=equals(first_name,%22A%22)", nil, "", 400},
		{"page size", "GET", "/api/profiles?page%5Bsize%5D=101", nil, "", 400},
		{"good list", "GET", "/api/profiles?filter=greater-than(subscriptions.email.marketing.suppression.timestamp,2026-01-01T00:00:00Z)", nil, "", 200},
	}
	for _, c := range cases {
		status, body := raw(t, f, c.method, c.path, c.hdr, c.body)
		if status != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.want, body)
		}
		if status >= 400 && !strings.Contains(body, `"errors"`) {
			t.Errorf("%s: not Klaviyo's error body: %s", c.name, body)
		}
	}
}

func TestChangeEmailMovesProfile(t *testing.T) {
	f := setup(t, klaviyo.Options{}, klaviyotest.Options{})
	ctx := context.Background()
	old, neu := "old@example.fi", "new@example.fi"
	if err := f.c.Subscribe(ctx, list, []string{old, "third@example.fi"}); err != nil {
		t.Fatal(err)
	}
	before, _ := f.fake.Profile(old)
	if err := f.c.ChangeEmail(ctx, old, neu); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.Profile(old); ok {
		t.Fatal("old address still holds a profile")
	}
	after, ok := f.fake.Profile(neu)
	if !ok || after.ID != before.ID || after.Consent != "SUBSCRIBED" || !after.Lists[list] || f.fake.ProfileCount() != 2 {
		t.Fatalf("moved profile = %+v", after)
	}
	if err := f.c.ChangeEmail(ctx, old, neu); !errors.Is(err, klaviyo.ErrNotFound) {
		t.Fatalf("repeat move: %v", err)
	}
	err := f.c.ChangeEmail(ctx, "third@example.fi", neu)
	var e *klaviyo.Error
	if !errors.Is(err, klaviyo.ErrRejected) || !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "duplicate_profile" {
		t.Fatalf("move onto an existing profile: %v", err)
	}
	noLeak(t, err)
	if err := f.c.ChangeEmail(ctx, `a"b@example.fi`, neu); !errors.Is(err, klaviyo.ErrRejected) {
		t.Fatalf("quote in address: %v", err)
	}
}

func TestClientDoesNotPrintKey(t *testing.T) {
	c, _ := klaviyo.New("pk_secret_key", klaviyo.Options{})
	if s := fmt.Sprintf("%v %+v %s", c, c, c); strings.Contains(s, "pk_secret_key") {
		t.Fatalf("key printed: %s", s)
	}
}
