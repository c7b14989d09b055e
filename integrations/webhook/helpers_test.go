package webhook_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// clock is the tests' injected time: it moves only when a test moves it.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	real bool // follow the wall clock (benchmarks)
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now()
	}
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	db     *sqldb.DB
	clock  *clock
	keys   *keyring.Keyring
	ids    *identity.Service
	svc    *consent.Service
	hooks  *webhook.Service
	engine *integrations.Engine
	demo   *consent.Demo
}

func newEnv(t *testing.T, db *sqldb.DB) *env {
	t.Helper()
	ctx := context.Background()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
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
	e := &env{db: db, clock: clk, keys: keys, ids: ids, svc: svc, demo: demo}
	client := safehttp.New(safehttp.Options{AllowPrivate: true, MaxIdleConnsPerHost: 64}) // as cmd/lupa sets it
	e.hooks = webhook.New(db, keys, svc, clk.Now, webhook.Options{Client: client, Timeout: 5 * time.Second, InCallRetries: -1})
	e.engine = e.newEngine()
	return e
}

// newEngine is one more instance's engine on the same database.
func (e *env) newEngine() *integrations.Engine {
	return integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{
		Jitter: func(d time.Duration) time.Duration { return d }, Batch: 50})
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

func (e *env) tenant() string { return e.demo.Tenant.ID }

func (e *env) step(t *testing.T) {
	t.Helper()
	if err := e.engine.Step(context.Background()); err != nil {
		t.Fatalf("step: %v", err)
	}
}

func (e *env) endpoint(t *testing.T, url string, in webhook.Input) (*webhook.Endpoint, string) {
	t.Helper()
	in.URL = url
	if in.EventTypes == nil {
		in.EventTypes = integrations.EventTypes
	}
	if in.RecipientKind == "" {
		in.RecipientKind = webhook.Processor
	}
	ep, secret, err := e.hooks.Create(context.Background(), e.tenant(), in, "test")
	if err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	return ep, secret
}

func (e *env) recordCustomer(t *testing.T, number string, decisions ...consent.DecisionInput) {
	t.Helper()
	_, err := e.svc.Record(context.Background(), &consent.RecordRequest{TenantID: e.tenant(),
		Identifier: &identity.Identifier{Kind: identity.IDCustomerNumber, Value: number}, Method: consent.MethodAPI,
		Language: "fi", Actor: identity.ActorAPIKey("test"), Decisions: decisions})
	if err != nil {
		t.Fatalf("record customer %s: %v", number, err)
	}
}

func (e *env) recordDevice(t *testing.T, device, method string, decisions ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	req := &consent.RecordRequest{TenantID: e.tenant(), Property: e.demo.WebShop, Public: true,
		Method: method, Language: "fi", Actor: "device", Decisions: decisions}
	if device != "" {
		req.Identifier = &identity.Identifier{Kind: identity.IDDevice, Value: device}
	}
	out, err := e.svc.Record(context.Background(), req)
	if err != nil {
		t.Fatalf("record device: %v", err)
	}
	return out
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

// message is one webhook a receiver accepted.
type message struct {
	ID        string
	Timestamp string
	Signature string
	Env       struct {
		Type          string          `json:"type"`
		SchemaVersion int             `json:"schema_version"`
		Data          json.RawMessage `json:"data"`
	}
	Updated integrations.ConsentUpdated
	Body    []byte
}

// receiver is a local webhook endpoint: it verifies every signature with the official
// Standard Webhooks library and answers what the test tells it to.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []message // accepted (2xx) messages, in arrival order
	calls  int
	answer func(n int) (status int, header http.Header)
	strict bool // verify the timestamp too (the clock is real time)
	// onMessage, when set, sees each accepted message as it arrives.
	onMessage func(m message)
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.secret != "" {
		wh, err := standardwebhooks.NewWebhook(r.secret)
		if err != nil {
			r.t.Errorf("secret: %v", err)
		} else {
			verify := wh.VerifyIgnoringTimestamp
			if r.strict {
				verify = wh.Verify
			}
			if err := verify(body, req.Header); err != nil {
				r.t.Errorf("signature does not verify: %v", err)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
	}
	status, header := 204, http.Header(nil)
	if r.answer != nil {
		status, header = r.answer(r.calls)
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	if status >= 300 {
		_, _ = io.WriteString(w, `{"error":"not now"}`)
		return
	}
	m := message{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body}
	if err := json.Unmarshal(body, &m.Env); err != nil {
		r.t.Errorf("body: %v", err)
	}
	if m.Env.Type == integrations.TypeConsentUpdated {
		_ = json.Unmarshal(m.Env.Data, &m.Updated)
	}
	r.got = append(r.got, m)
	if r.onMessage != nil {
		r.onMessage(m)
	}
}

func (r *receiver) messages() []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]message(nil), r.got...)
}

func (r *receiver) setAnswer(f func(n int) (int, http.Header)) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// updates returns the consent.updated messages for a purpose.
func updates(ms []message, purpose string) []integrations.ConsentUpdated {
	var out []integrations.ConsentUpdated
	for _, m := range ms {
		if m.Env.Type == integrations.TypeConsentUpdated && m.Updated.Purpose == purpose {
			out = append(out, m.Updated)
		}
	}
	return out
}

func prev(u integrations.ConsentUpdated) string {
	if u.PreviousDecision == nil {
		return "<nil>"
	}
	return *u.PreviousDecision
}
