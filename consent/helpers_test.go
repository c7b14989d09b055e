package consent_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// clock is the tests' injected time: it moves only when a test moves it.
type clock = clocktest.Clock

type env struct {
	db     *sqldb.DB
	clock  *clock
	master []byte
	keys   *keyring.Keyring
	ids    *identity.Service
	svc    *consent.Service
	demo   *consent.Demo
}

func newEnv(t *testing.T, db *sqldb.DB) *env {
	t.Helper()
	ctx := context.Background()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	clk := clocktest.New(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	keys, ids, svc := newStack(t, db, master, clk)
	demo, err := svc.SeedDemo(ctx, []string{"https://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, clock: clk, master: master, keys: keys, ids: ids, svc: svc, demo: demo}
}

// newStack builds one Lupa instance's keyring, identity and consent services and starts its
// writer, the way cmd/lupa wires them. Two stacks on one database are two instances.
func newStack(t *testing.T, db *sqldb.DB, master []byte, clk *clock) (*keyring.Keyring, *identity.Service, *consent.Service) {
	t.Helper()
	keys, err := keyring.Open(context.Background(), db, master, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, clk.Now)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := consent.NewService(db, ids, keys, clk.Now, log)
	w := svc.StartWriter(consent.WriterOptions{})
	t.Cleanup(w.Close)
	return keys, ids, svc
}

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) { fn(t, newEnv(t, db)) })
}

func (e *env) tenant() string { return e.demo.Tenant.ID }

// mailer gives the service a local SMTP server to send through, and returns it with the
// sender.
func (e *env) mailer(t *testing.T) (*mailtest.Server, *mail.SMTP) {
	t.Helper()
	srv := mailtest.NewServer(t)
	sender, err := mail.NewSMTP(mail.SMTPConfig{Host: srv.Host(), Port: srv.Port(), From: "noreply@demo-retail.example", TLS: mail.NoTLS})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetMailer(sender, "https://lupa.example")
	return srv, sender
}

// tenantLanguage sets the tenant's default language (the web shop's stays fi).
func (e *env) tenantLanguage(t *testing.T, lang string) {
	t.Helper()
	if _, err := e.ids.UpdateTenant(context.Background(), e.tenant(), identity.TenantPatch{DefaultLanguage: &lang}, actor); err != nil {
		t.Fatal(err)
	}
}

// webShopPerson is the request of a person known by email, made in lang through the web
// shop (whose default language is fi), as its forms and agents send it.
func (e *env) webShopPerson(email *identity.Identifier, method, agent, lang string, d ...consent.DecisionInput) *consent.RecordRequest {
	req := e.customerRequest("", method, agent, d...)
	req.Identifier, req.Property, req.Language = email, e.demo.WebShop, lang
	return req
}

// doubleOptIn makes marketing_email a double opt-in purpose, with the mailer its
// confirmation links go through.
func (e *env) doubleOptIn(t *testing.T) *mailtest.Server {
	t.Helper()
	srv, _ := e.mailer(t)
	if _, err := e.svc.UpdatePurpose(context.Background(), e.tenant(), "marketing_email",
		consent.PurposePatch{DoubleOptIn: ptr(true)}, identity.ActorSystem); err != nil {
		t.Fatal(err)
	}
	return srv
}

// record records device-level decisions from the web shop's banner.
func (e *env) record(t *testing.T, device string, method string, decisions ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	out, err := e.svc.Record(context.Background(), e.deviceRequest(device, method, decisions...))
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return out
}

// deviceRequest is the collection API's request for a device ("" is a new device).
func (e *env) deviceRequest(device, method string, decisions ...consent.DecisionInput) *consent.RecordRequest {
	req := &consent.RecordRequest{TenantID: e.tenant(), Property: e.demo.WebShop, Public: true,
		Method: method, Language: "fi", Actor: "device", Decisions: decisions}
	if device != "" {
		req.Identifier = &identity.Identifier{Kind: identity.IDDevice, Value: device}
	}
	return req
}

// customerRequest is the server API's request for a customer number, as a back-office
// system sends it (method api, or verbal with the agent's id).
func (e *env) customerRequest(number, method, agent string, decisions ...consent.DecisionInput) *consent.RecordRequest {
	return &consent.RecordRequest{TenantID: e.tenant(), Identifier: customer(number), Method: method, Agent: agent,
		Language: "fi", Actor: identity.ActorAPIKey("test"), Decisions: decisions}
}

// recordCustomer records decisions for a customer number through the server path.
func (e *env) recordCustomer(t *testing.T, number string, decisions ...consent.DecisionInput) *consent.Outcome {
	t.Helper()
	out, err := e.svc.Record(context.Background(), e.customerRequest(number, consent.MethodAPI, "", decisions...))
	if err != nil {
		t.Fatalf("record customer %s: %v", number, err)
	}
	return out
}

func customer(number string) *identity.Identifier {
	return &identity.Identifier{Kind: identity.IDCustomerNumber, Value: number}
}

func device(id string) identity.Identifier {
	return identity.Identifier{Kind: identity.IDDevice, Value: id}
}

func grant(purpose string, version int) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Version: version, Decision: consent.Granted}
}

func deny(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Decision: consent.Denied}
}

func object(purpose string) consent.DecisionInput {
	return consent.DecisionInput{Purpose: purpose, Decision: consent.Objected}
}

func stateOf(out []consent.PurposeState, purpose string) consent.PurposeState {
	for _, s := range out {
		if s.Purpose == purpose {
			return s
		}
	}
	return consent.PurposeState{}
}

// verify runs the ledger check and fails the test if it cannot run at all.
func (e *env) verify(t *testing.T) *consent.VerifyReport {
	t.Helper()
	rep, err := e.svc.Verify(context.Background(), e.tenant())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func (e *env) mustVerifyOK(t *testing.T) *consent.VerifyReport {
	t.Helper()
	rep := e.verify(t)
	if !rep.OK {
		t.Fatalf("ledger should verify, got problems %+v", rep.Problems)
	}
	return rep
}

// count returns the number of rows of a table matching where (SQL with ? placeholders).
func (e *env) count(t *testing.T, table, where string, args ...any) int64 {
	t.Helper()
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int64
	if err := e.db.Write.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// exec runs SQL as someone with direct database access would (the attacker of the tamper
// tests, or a test arranging data), failing the test on error.
func (e *env) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := e.db.Write.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// subjectID returns the internal id of the subject an identifier names.
func (e *env) subjectID(t *testing.T, id identity.Identifier) string {
	t.Helper()
	s, err := e.ids.FindSubject(context.Background(), e.tenant(), id)
	if err != nil {
		t.Fatalf("find subject: %v", err)
	}
	return s.ID
}

// wantCode fails unless err is a Lupa error with the given code.
func wantCode(t *testing.T, err error, code string) *identity.Error {
	t.Helper()
	var ie *identity.Error
	if !errors.As(err, &ie) || ie.Code != code {
		t.Fatalf("want error code %q, got %v", code, err)
	}
	return ie
}

// wantField fails unless the error names a field containing field and a message containing msg.
func wantField(t *testing.T, ie *identity.Error, field, msg string) {
	t.Helper()
	for _, f := range ie.Fields {
		if strings.Contains(f.Field, field) && strings.Contains(f.Message, msg) {
			return
		}
	}
	t.Fatalf("want field %q with %q, got %+v", field, msg, ie.Fields)
}

// secondInstance starts another Lupa instance (its own keyring, identity and consent
// services and writer) on the same database: on PostgreSQL on the same server, on SQLite
// by opening the same file again, as a second process would.
func (e *env) secondInstance(t *testing.T) *consent.Service {
	t.Helper()
	db := e.db
	if e.db.Dialect == sqldb.SQLite {
		var err error
		db, err = sqldb.Open(context.Background(), "sqlite:"+e.db.Location, t.TempDir(), sqldb.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
	}
	_, _, svc := newStack(t, db, e.master, e.clock)
	return svc
}

// tableCounts counts the rows of every table a recorded interaction writes to.
func (e *env) tableCounts(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range []string{"subjects", "identifiers", "consent_events", "chain_heads", "consent_state",
		"receipts", "domain_events", "idempotency_keys", "interaction_context"} {
		out[tbl] = e.count(t, tbl, "")
	}
	return out
}

// grew returns how much each table grew since before.
func (e *env) grew(t *testing.T, before map[string]int64) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for tbl, n := range e.tableCounts(t) {
		if d := n - before[tbl]; d != 0 {
			out[tbl] = d
		}
	}
	return out
}
