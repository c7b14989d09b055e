package integrations

import (
	"errors"
	"testing"
	"time"
)

// TestClassify: Standard Webhooks' answer rules.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Status: 200}, OutcomeDelivered}, {Result{Status: 204}, OutcomeDelivered},
		{Result{Status: 410}, OutcomeGone},
		{Result{Status: 400}, OutcomeFinal}, {Result{Status: 401}, OutcomeFinal}, {Result{Status: 404}, OutcomeFinal},
		{Result{Status: 422}, OutcomeFinal},
		{Result{Status: 408}, OutcomeRetry}, {Result{Status: 409}, OutcomeRetry}, {Result{Status: 425}, OutcomeRetry},
		{Result{Status: 429}, OutcomeRetry}, {Result{Status: 500}, OutcomeRetry}, {Result{Status: 503}, OutcomeRetry},
		{Result{Status: 301}, OutcomeRetry}, {Result{Err: errors.New("reset")}, OutcomeRetry},
		{Result{Gone: true}, OutcomeFinal},
	} {
		if got := classify(tc.r); got != tc.want {
			t.Errorf("classify(%+v) = %s, want %s", tc.r, got, tc.want)
		}
	}
}

// TestSchedule: eight attempts, the waits of the issue, then a dead letter.
func TestSchedule(t *testing.T) {
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	e := New(nil, nil, nil, nil, time.Now, Options{})
	if e.MaxAttempts() != 8 || len(DefaultSchedule) != len(want) {
		t.Fatalf("max attempts %d", e.MaxAttempts())
	}
	for i, w := range want {
		if DefaultSchedule[i] != w {
			t.Errorf("wait %d: %s, want %s", i+1, DefaultSchedule[i], w)
		}
		for range 20 {
			if j := e.opt.Jitter(w); j < w*8/10 || j > w*12/10 {
				t.Errorf("jitter of %s: %s", w, j)
			}
		}
	}
}
