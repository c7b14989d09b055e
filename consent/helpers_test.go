package consent_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// clock is the tests' injected time: it moves only when a test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) AddDate(y, m, d int) {
	c.mu.Lock()
	c.t = c.t.AddDate(y, m, d)
	c.mu.Unlock()
}

type env struct {
	db    *sqldb.DB
	clock *clock
	keys  *keyring.Keyring
	ids   *identity.Service
	svc   *consent.Service
	demo  *consent.Demo
}

func newEnv(t *testing.T, db *sqldb.DB) *env {
	t.Helper()
	ctx := context.Background()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	clk := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	keys, err := keyring.Open(ctx, db, master, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, clk.Now)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := consent.NewService(db, ids, keys, clk.Now, log)
	w := svc.StartWriter(consent.WriterOptions{})
	t.Cleanup(w.Close)
	demo, err := svc.SeedDemo(ctx, []string{"https://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, clock: clk, keys: keys, ids: ids, svc: svc, demo: demo}
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

// record records device-level decisions from the web shop's banner.
func (e *env) record(t *testing.T, device string, method string, decisions ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	req := &consent.RecordRequest{TenantID: e.demo.Tenant.ID, Property: e.demo.WebShop, Public: true,
		Method: method, Language: "fi", Actor: "device", Decisions: decisions}
	if device != "" {
		req.Identifier = &identity.Identifier{Kind: identity.IDDevice, Value: device}
	}
	out, err := e.svc.Record(context.Background(), req)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return out
}

func grant(purpose string, version int) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Version: version, Decision: consent.Granted}
}

func deny(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Decision: consent.Denied}
}

func stateOf(out []consent.PurposeState, purpose string) consent.PurposeState {
	for _, s := range out {
		if s.Purpose == purpose {
			return s
		}
	}
	return consent.PurposeState{}
}
