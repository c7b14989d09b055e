package connector_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// clock is the tests' injected time: it moves only when a test moves it.
type clock = clocktest.Clock

// env is Lupa's consent service, webhooks and connectors on one database, with the
// delivery engine driven step by step.
type env struct {
	db         *sqldb.DB
	clock      *clock
	keys       *keyring.Keyring
	ids        *identity.Service
	svc        *consent.Service
	hooks      *webhook.Service
	connectors *connector.Service
	engine     *integrations.Engine
	demo       *consent.Demo
}

func newEnv(t *testing.T, db *sqldb.DB) *env {
	t.Helper()
	ctx := context.Background()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	keys, err := keyring.Open(ctx, db, master, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, clk.Now)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := consent.NewService(db, ids, keys, clk.Now, log)
	svc.OnErase(connector.EraseStatements) // as cmd/lupa wires it
	w := svc.StartWriter(consent.WriterOptions{})
	t.Cleanup(w.Close)
	demo, err := svc.SeedDemo(ctx, []string{"https://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	client := safehttp.New(safehttp.Options{AllowPrivate: true, Timeout: 2 * time.Second})
	e := &env{db: db, clock: clk, keys: keys, ids: ids, svc: svc, demo: demo}
	e.hooks = webhook.New(db, keys, svc, clk.Now, webhook.Options{Client: client, Timeout: 2 * time.Second, InCallRetries: -1})
	e.connectors = connector.New(db, keys, svc, ids, clk.Now, connector.Options{HTTPClient: client, AllowBaseURL: true, NoRetries: true})
	router := integrations.Router{Webhooks: e.hooks, Connectors: e.connectors}
	e.engine = integrations.New(db, svc, router, router, clk.Now, integrations.Options{
		Jitter: func(d time.Duration) time.Duration { return d }, Batch: 50})
	return e
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

func (e *env) tenant() string { return e.demo.Tenant.ID }

// step fans out and makes every due attempt.
func (e *env) step(t *testing.T) {
	t.Helper()
	if err := e.engine.Step(context.Background()); err != nil {
		t.Fatalf("step: %v", err)
	}
}

func (e *env) connector(t *testing.T, in connector.Input) *connector.Created {
	t.Helper()
	if in.RecipientKind == "" {
		in.RecipientKind = integrations.RecipientProcessor
	}
	if in.Name == "" {
		in.Name = in.Vendor + " test"
	}
	c, err := e.connectors.Create(context.Background(), e.tenant(), in, "test")
	if err != nil {
		t.Fatalf("create connector: %v", err)
	}
	return c
}

// record records decisions for the person with this email address (server API).
func (e *env) record(t *testing.T, email string, decisions ...consent.DecisionInput) {
	t.Helper()
	_, err := e.svc.Record(context.Background(), &consent.RecordRequest{TenantID: e.tenant(),
		Identifier: &identity.Identifier{Kind: identity.IDEmail, Value: email}, Method: consent.MethodAPI,
		Language: "fi", Actor: identity.ActorAPIKey("test"), Decisions: decisions})
	if err != nil {
		t.Fatalf("record %s: %v", email, err)
	}
}

// recordCustomer records decisions for a person known only by customer number (no email).
func (e *env) recordCustomer(t *testing.T, number string, decisions ...consent.DecisionInput) {
	t.Helper()
	_, err := e.svc.Record(context.Background(), &consent.RecordRequest{TenantID: e.tenant(),
		Identifier: &identity.Identifier{Kind: identity.IDCustomerNumber, Value: number}, Method: consent.MethodAPI,
		Language: "fi", Actor: identity.ActorAPIKey("test"), Decisions: decisions})
	if err != nil {
		t.Fatalf("record customer %s: %v", number, err)
	}
}

// subject is the id of the person with this email address.
func (e *env) subject(t *testing.T, email string) string {
	t.Helper()
	s, err := e.ids.FindSubject(context.Background(), e.tenant(), identity.Identifier{Kind: identity.IDEmail, Value: email})
	if err != nil {
		t.Fatalf("find %s: %v", email, err)
	}
	return s.ID
}

// state is the person's current state of a purpose.
func (e *env) state(t *testing.T, email, purpose string) string {
	t.Helper()
	v, err := e.svc.SubjectState(context.Background(), e.tenant(), identity.Identifier{Kind: identity.IDEmail, Value: email}, nil)
	if err != nil {
		t.Fatalf("state of %s: %v", email, err)
	}
	for _, p := range v.State {
		if p.Purpose == purpose {
			return p.State
		}
	}
	return ""
}

// delivery is one of a connector's deliveries as the admin API shows it.
func (e *env) deliveries(t *testing.T, connectorID string) []*integrations.Delivery {
	t.Helper()
	page, err := e.engine.Deliveries(context.Background(), e.tenant(), connectorID, integrations.DeliveryFilter{Limit: 100})
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	return page.Items
}

func grant(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Version: 1, Decision: consent.Granted}
}

func deny(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Decision: consent.Denied}
}

func withdraw(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Decision: consent.Withdrawn}
}

func (e *env) count(t *testing.T, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.db.Write.Raw("SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
