package datamap_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations/datamap"
)

type env struct {
	db    *sqldb.DB
	ids   *identity.Service
	svc   *datamap.Service
	demo  *consent.Demo
	other string // a second tenant, with no purposes
}

// newEnv wires the real services the way cmd/lupa does, on a fresh database, with the
// demo tenant (its purposes and its data map) and a second tenant.
func newEnv(t *testing.T, db *sqldb.DB) (*env, []*datamap.System) {
	t.Helper()
	ctx := context.Background()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	now := func() time.Time { return time.Now().UTC() }
	keys, err := keyring.Open(ctx, db, master, now)
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.New(db, keys, now)
	cons := consent.NewService(db, ids, keys, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	demo, err := cons.SeedDemo(ctx, []string{"https://shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	svc := datamap.New(db, cons, now)
	seeded, err := svc.SeedDemo(ctx, demo.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ids.CreateTenant(ctx, identity.TenantInput{Name: "Other Group"}, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, ids: ids, svc: svc, demo: demo, other: other.ID}, seeded
}

func wantCode(t *testing.T, err error, code string, fields ...string) {
	t.Helper()
	if !identity.IsCode(err, code) {
		t.Fatalf("err %v, want code %s", err, code)
	}
	var e *identity.Error
	_ = errorsAs(err, &e)
	for _, f := range fields {
		found := false
		for _, fe := range e.Fields {
			found = found || fe.Field == f
		}
		if !found {
			t.Fatalf("err %v does not name field %s (fields %+v)", err, f, e.Fields)
		}
	}
}

func errorsAs(err error, e **identity.Error) bool {
	for err != nil {
		if x, ok := err.(*identity.Error); ok {
			*e = x
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// tills is a valid unconnected system of the demo tenant.
func tills(tenant string) datamap.System {
	return datamap.System{TenantID: tenant, Name: "Kiosk tills", DataCategories: []string{"purchases"},
		OtherPurposes: []string{"selling"}, LegalBases: []string{datamap.BasisContract}, Locations: []string{"FI"},
		Retention: datamap.Retention{Preset: "fi_accounting_vouchers"},
		DSR:       datamap.DSRRoute{Method: datamap.DSRManual, Owner: &datamap.Owner{Name: "Kiosk team", Email: "kiosk@example.fi"}}}
}

func TestDemoDataMap(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, seeded := newEnv(t, db)
		ctx := context.Background()
		m, err := e.svc.Map(ctx, e.demo.Tenant.ID)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		byName := map[string]*datamap.System{}
		for _, s := range m.Systems {
			names = append(names, s.Name)
			byName[s.Name] = s
		}
		if strings.Join(names, "|") != "Accounting system|Loyalty database|Store tills|Web shop email platform" || len(seeded) != 4 {
			t.Fatalf("demo systems by name: %v", names)
		}
		email := byName["Web shop email platform"]
		// Unconnected until a Mailchimp connector exists: a connection names an existing one.
		if email.Connection != nil || email.DSR.Method != "manual" || email.DSR.Owner == nil {
			t.Fatalf("email platform: %+v", email)
		}
		if got := m.Purposes["marketing_email"]; len(got) != 1 || got[0] != email.ID {
			t.Fatalf("purpose index: %v", m.Purposes)
		}
		if strings.Join(m.ThirdCountries, ",") != "US" {
			t.Fatalf("third countries: %v", m.ThirdCountries)
		}
		// The accounting system's stored rule is the Accounting Act's voucher rule.
		acc := byName["Accounting system"].Retention
		if acc.Preset != "fi_accounting_vouchers" || acc.Years != 6 || acc.FinancialYearEnd != "12-31" ||
			!strings.Contains(acc.LegalReference, "1336/1997") {
			t.Fatalf("accounting retention: %+v", acc)
		}
		if until, err := acc.KeepUntil(day("2025-09-30")); err != nil || until.Format("2006-01-02") != "2031-12-31" {
			t.Fatalf("a 2025 invoice is kept until %v (%v), want 2031-12-31", until, err)
		}
		// Creating each demo system is in the audit log, after image and all.
		entries, _, err := e.ids.Audit(ctx, e.demo.Tenant.ID, identity.AuditFilter{ObjectType: "data_map_system", Action: "data_map_system.create"})
		if err != nil || len(entries) != 4 {
			t.Fatalf("audit: %d entries, %v", len(entries), err)
		}
		// Names sort the same on every database, case and accents as people expect.
		for _, n := range []string{"ämpäri", "Zeta", "alpha"} {
			s := tills(e.demo.Tenant.ID)
			s.Name = n
			if _, err := e.svc.Create(ctx, s, identity.ActorSystem); err != nil {
				t.Fatal(err)
			}
		}
		m, _ = e.svc.Map(ctx, e.demo.Tenant.ID)
		names = nil
		for _, s := range m.Systems {
			names = append(names, s.Name)
		}
		if strings.Join(names, "|") != "Accounting system|alpha|ämpäri|Loyalty database|Store tills|Web shop email platform|Zeta" {
			t.Fatalf("sorted names: %v", names)
		}
		// The other tenant's map is empty.
		if om, err := e.svc.Map(ctx, e.other); err != nil || len(om.Systems) != 0 || len(om.Purposes) != 0 {
			t.Fatalf("other tenant's map: %+v %v", om, err)
		}
	})
}

func TestSystemRules(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		ctx := context.Background()
		a := e.demo.Tenant.ID
		e.connector(t, a, "mc-1", "mailchimp")
		mailchimp := tills(a)
		mailchimp.Name, mailchimp.Connection, mailchimp.DSR.Method = "Email platform", &datamap.Connection{Kind: "mailchimp", ID: "mc-1"}, "connector"
		if _, err := e.svc.Create(ctx, mailchimp, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		mk := func(mut func(*datamap.System)) error {
			s := tills(a)
			mut(&s)
			_, err := e.svc.Create(ctx, s, identity.ActorSystem)
			return err
		}
		for _, c := range []struct {
			name, code, field string
			mut               func(*datamap.System)
		}{
			{"unknown purpose", identity.EUnprocessable, "purposes[1]", func(s *datamap.System) { s.Purposes = []string{"marketing_email", "marketing_mail"} }},
			{"a consent purpose under contract only", identity.EUnprocessable, "legal_bases", func(s *datamap.System) { s.Purposes = []string{"marketing_email"} }},
			{"no data", identity.EInvalid, "data_categories", func(s *datamap.System) { s.DataCategories = nil }},
			{"unknown category", identity.EInvalid, "data_categories[0]", func(s *datamap.System) { s.DataCategories = []string{"dna"} }},
			{"no purpose", identity.EInvalid, "purposes", func(s *datamap.System) { s.OtherPurposes = nil }},
			{"no legal basis", identity.EInvalid, "legal_bases", func(s *datamap.System) { s.LegalBases = nil }},
			{"a legal basis outside Art. 6(1)", identity.EInvalid, "legal_bases[0]", func(s *datamap.System) { s.LegalBases = []string{"necessary"} }},
			{"UK is not ISO", identity.EInvalid, "locations[0]", func(s *datamap.System) { s.Locations = []string{"UK"} }},
			{"stored in the US without a transfer", identity.EInvalid, "locations[1]", func(s *datamap.System) { s.Locations = []string{"FI", "US"} }},
			{"a transfer to an EEA country", identity.EInvalid, "transfers[0].country", func(s *datamap.System) {
				s.Transfers = []datamap.Transfer{{Country: "NO", Mechanism: "sccs"}}
			}},
			{"a transfer without a mechanism", identity.EInvalid, "transfers[0].mechanism", func(s *datamap.System) {
				s.Transfers = []datamap.Transfer{{Country: "US"}}
			}},
			{"an unknown role", identity.EInvalid, "recipients[0].role", func(s *datamap.System) {
				s.Recipients = []datamap.Recipient{{Name: "X", Role: "friend"}}
			}},
			{"connector without a connection", identity.EInvalid, "dsr.method", func(s *datamap.System) { s.DSR.Method = "connector" }},
			{"webhook with a connector", identity.EInvalid, "dsr.method", func(s *datamap.System) {
				s.DSR.Method, s.Connection = "webhook", &datamap.Connection{Kind: "hubspot", ID: "h1"}
			}},
			{"manual without an owner", identity.EInvalid, "dsr.owner", func(s *datamap.System) { s.DSR.Owner = nil }},
			{"owner without an address", identity.EInvalid, "dsr.owner.email", func(s *datamap.System) { s.DSR.Owner.Email = "finance team" }},
			{"unknown connection kind", identity.EInvalid, "connection.kind", func(s *datamap.System) {
				s.Connection = &datamap.Connection{Kind: "salesforce", ID: "s1"}
			}},
			{"unknown anchor", identity.EInvalid, "retention.anchor", func(s *datamap.System) { s.Retention = datamap.Retention{Years: 1, Anchor: "forever"} }},
			{"financial year end on another anchor", identity.EInvalid, "retention.financial_year_end", func(s *datamap.System) {
				s.Retention = datamap.Retention{Years: 1, Anchor: "collection", FinancialYearEnd: "12-31"}
			}},
			{"bad financial year end", identity.EInvalid, "retention.financial_year_end", func(s *datamap.System) {
				s.Retention = datamap.Retention{Preset: "fi_accounting_books", FinancialYearEnd: "04-31"}
			}},
			{"a preset with its own period", identity.EInvalid, "retention.years", func(s *datamap.System) { s.Retention.Years = 3 }},
			{"same name", identity.EConflict, "name", func(s *datamap.System) { s.Name = "Store tills" }},
			{"same connection", identity.EConflict, "connection.id", func(s *datamap.System) {
				s.Connection, s.DSR.Method = &datamap.Connection{Kind: "mailchimp", ID: "mc-1"}, "connector"
			}},
		} {
			t.Run(c.name, func(t *testing.T) { wantCode(t, mk(c.mut), c.code, c.field) })
		}
		// Purposes are the tenant's own: the other tenant has no marketing_email.
		s := tills(e.other)
		s.Purposes = []string{"marketing_email"}
		_, err := e.svc.Create(ctx, s, identity.ActorSystem)
		wantCode(t, err, identity.EUnprocessable, "purposes[0]")
		// A name and a connection are unique per tenant only.
		s = tills(e.other)
		e.connector(t, e.other, "mc-1", "mailchimp")
		s.Name, s.Connection, s.DSR.Method = "Store tills", &datamap.Connection{Kind: "mailchimp", ID: "mc-1"}, "connector"
		if _, err := e.svc.Create(ctx, s, identity.ActorSystem); err != nil {
			t.Fatalf("another tenant's system of the same name and connection: %v", err)
		}
		// Data in the US with its transfer is fine.
		if err := mk(func(s *datamap.System) {
			s.Locations = []string{"FI", "US"}
			s.Transfers = []datamap.Transfer{{Country: "US", Mechanism: "sccs", Recipient: "Cloud Inc."}}
		}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSystemLifecycle(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, seeded := newEnv(t, db)
		ctx := context.Background()
		a := e.demo.Tenant.ID
		actor := identity.ActorAPIKey("k1")
		sys, err := e.svc.Create(ctx, tills(a), actor)
		if err != nil {
			t.Fatal(err)
		}
		// The books' preset on a May–April financial year; the connection goes and the
		// request becomes a manual task.
		ret := datamap.Retention{Preset: "fi_accounting_books", FinancialYearEnd: "04-30"}
		name := "  Kiosk tills 2 "
		got, err := e.svc.Update(ctx, a, sys.ID, datamap.Patch{Name: &name, Retention: &ret}, actor)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Kiosk tills 2" || got.Retention.Years != 10 || got.Retention.Anchor != datamap.AnchorEndOfFinancialYear ||
			got.Retention.FinancialYearEnd != "04-30" || got.Retention.Preset != "fi_accounting_books" {
			t.Fatalf("updated: %+v", got)
		}
		if until, _ := got.Retention.KeepUntil(day("2025-06-01")); until.Format("2006-01-02") != "2036-04-30" {
			t.Fatalf("books of 2025/26 kept until %s", until)
		}
		again, err := e.svc.Get(ctx, a, sys.ID)
		if err != nil || again.Name != got.Name || again.Retention != got.Retention || !again.UpdatedAt.Equal(got.UpdatedAt) {
			t.Fatalf("read back %+v, %v", again, err)
		}
		// Connecting the email platform needs an existing connector of the tenant.
		email := seeded[3]
		viaConnector := datamap.DSRRoute{Method: "connector", Owner: email.DSR.Owner}
		connect := datamap.Patch{Connection: &datamap.Connection{Kind: "mailchimp", ID: "mc-demo"}, DSR: &viaConnector}
		_, err = e.svc.Update(ctx, a, email.ID, connect, actor)
		wantCode(t, err, identity.EUnprocessable, "connection.id")
		e.connector(t, a, "mc-demo", "mailchimp")
		if hooked, err := e.svc.Update(ctx, a, email.ID, connect, actor); err != nil || hooked.Connection == nil {
			t.Fatalf("connect: %+v %v", hooked, err)
		}
		// A patch that breaks a rule changes nothing.
		_, err = e.svc.Update(ctx, a, email.ID, datamap.Patch{ClearConnection: true}, actor)
		wantCode(t, err, identity.EInvalid, "dsr.method")
		manual := datamap.DSRRoute{Method: "manual", Owner: &datamap.Owner{Name: "Marketing", Email: "m@example.fi"}}
		unhooked, err := e.svc.Update(ctx, a, email.ID, datamap.Patch{ClearConnection: true, DSR: &manual}, actor)
		if err != nil || unhooked.Connection != nil {
			t.Fatalf("disconnect: %+v %v", unhooked, err)
		}
		// Every change is audited with the system before and after.
		entries, _, err := e.ids.Audit(ctx, a, identity.AuditFilter{ObjectID: sys.ID})
		if err != nil || len(entries) != 2 || entries[0].Action != "data_map_system.update" || entries[0].Actor != string(actor) {
			t.Fatalf("audit: %+v %v", entries, err)
		}
		var before, after datamap.System
		_ = json.Unmarshal(entries[0].Before, &before)
		_ = json.Unmarshal(entries[0].After, &after)
		if before.Retention.Years != 6 || after.Retention.Years != 10 || after.Name != "Kiosk tills 2" {
			t.Fatalf("audit before %+v after %+v", before.Retention, after.Retention)
		}

		// Another tenant cannot see, change or delete it.
		_, err = e.svc.Get(ctx, e.other, sys.ID)
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.Update(ctx, e.other, sys.ID, datamap.Patch{Name: &name}, actor)
		wantCode(t, err, identity.ENotFound)
		wantCode(t, e.svc.Delete(ctx, e.other, sys.ID, actor), identity.ENotFound)

		// Pages, newest first, without overlap.
		var seen []string
		cursor := ""
		for range 10 {
			page, next, err := e.svc.List(ctx, a, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page {
				seen = append(seen, s.ID)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if len(seen) != 5 || seen[0] != sys.ID {
			t.Fatalf("pages: %v", seen)
		}

		if err := e.svc.Delete(ctx, a, sys.ID, actor); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Get(ctx, a, sys.ID)
		wantCode(t, err, identity.ENotFound)
		wantCode(t, e.svc.Delete(ctx, a, sys.ID, actor), identity.ENotFound)
		entries, _, _ = e.ids.Audit(ctx, a, identity.AuditFilter{ObjectID: sys.ID, Action: "data_map_system.delete"})
		if len(entries) != 1 || entries[0].After != nil || !strings.Contains(string(entries[0].Before), "Kiosk tills 2") {
			t.Fatalf("delete audit: %+v", entries)
		}
	})
}
