package consent

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// Micro-benchmarks of the CPU the write path spends per interaction outside the database:
// what `make bench` (bench/run.sh) prints as go.consent.*. The HTTP benchmarks measure the
// whole path; these say which part of Lupa's own work costs what.

// benchWriteStack is one Lupa instance on an SQLite file: the demo tenant plus device-level
// purposes up to five, as the write benchmark's banner asks.
type benchWriteStack struct {
	svc     *Service
	writer  *Writer
	catalog *Catalog
	req     *RecordRequest
}

func newBenchWriteStack(b *testing.B) *benchWriteStack {
	b.Helper()
	ctx := context.Background()
	db := sqldbtest.Open(b, sqldb.SQLite)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	now := func() time.Time { return time.Now().UTC() }
	keys, err := keyring.Open(ctx, db, master, now)
	if err != nil {
		b.Fatal(err)
	}
	ids := identity.New(db, keys, now)
	svc := NewService(db, ids, keys, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := svc.StartWriter(WriterOptions{})
	b.Cleanup(w.Close)
	demo, err := svc.SeedDemo(ctx, []string{"https://shop.example"})
	if err != nil {
		b.Fatal(err)
	}
	tenant := demo.Tenant.ID
	for _, key := range []string{"functional", "video_embeds", "ab_testing"} {
		p, err := svc.CreatePurpose(ctx, Purpose{TenantID: tenant, Key: key, Level: LevelDevice, LegalBasis: BasisConsent,
			ReaskMonths: 12}, identity.ActorSystem)
		if err != nil {
			b.Fatal(err)
		}
		texts := map[string]Text{
			"fi": {Title: "Otsikko " + key, Description: "Kuvaus siitä, mitä tarkoitus " + key + " tekee laitteellasi."},
			"en": {Title: "Title " + key, Description: "What the purpose " + key + " does on your device."},
		}
		if _, err := svc.CreateVersion(ctx, tenant, p.ID, VersionInput{Texts: texts,
			Details: &VersionDetails{DataCategories: []string{"cookie identifiers"}, Retention: "12 months."}}, identity.ActorSystem); err != nil {
			b.Fatal(err)
		}
		if _, err := svc.PublishVersion(ctx, tenant, p.ID, 1, identity.ActorSystem); err != nil {
			b.Fatal(err)
		}
	}
	c, err := svc.Catalog(ctx, tenant)
	if err != nil {
		b.Fatal(err)
	}
	var decisions []DecisionInput
	for i, cp := range c.Asked(demo.WebShop, LevelDevice) {
		d := Granted
		if i%2 == 1 {
			d = Denied
		}
		decisions = append(decisions, DecisionInput{Purpose: cp.Key, Version: cp.Latest.Number, Decision: d})
	}
	if len(decisions) != 5 {
		b.Fatalf("want 5 device-level purposes, have %d", len(decisions))
	}
	req := &RecordRequest{TenantID: tenant, Property: demo.WebShop, Public: true, Method: MethodBannerCustom,
		Language: "fi", Actor: "device", Decisions: decisions,
		UIHash:      "9f2c4e1a7b3d5f60819a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
		Idempotency: &IdempotencyKey{Route: "/v1/consents", Key: "bench", RequestHash: "e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a"}}
	return &benchWriteStack{svc: svc, writer: w, catalog: c, req: req}
}

// BenchmarkWritePrepareNewDevice: before the writer, a banner request from a new device is
// checked against the catalog and gets a new subject (its own key, encrypted) and device id.
func BenchmarkWritePrepareNewDevice(b *testing.B) {
	s := newBenchWriteStack(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.svc.prepare(ctx, s.req, s.catalog); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWritePlanNewDevice: the in-memory work for one interaction with five decisions:
// chain and hash the events, derive the states, build and sign the receipt, the domain
// event and the answer. Record does it in the request's goroutine; the writer only when a
// chain head moved.
func BenchmarkWritePlanNewDevice(b *testing.B) {
	s := newBenchWriteStack(b)
	in, err := s.svc.prepare(context.Background(), s.req, s.catalog)
	if err != nil {
		b.Fatal(err)
	}
	sign, err := s.svc.keys.SignFunc(ReceiptType)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		if _, err := s.svc.planOne(in, head{}, map[string]*Stored{}, now, sign); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteReceiptPayload: the receipt's JSON payload for five decisions (before signing).
func BenchmarkWriteReceiptPayload(b *testing.B) {
	s := newBenchWriteStack(b)
	in, err := s.svc.prepare(context.Background(), s.req, s.catalog)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := buildReceipt(in, in.pre.events, in.pre.decided, in.pre.now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteChainFiveEvents: canonical form (RFC 8785) and SHA-256 of five chained events.
func BenchmarkWriteChainFiveEvents(b *testing.B) {
	events := make([]*Event, 5)
	for i := range events {
		events[i] = &Event{TenantID: "01a216fa-1492-7865-92a7-0650dfb2c95a", SubjectID: "01a216fa-1c81-78ba-96be-67732a6da74e",
			Seq: int64(i + 1), ID: "01a216fa-1c81-78ba-96be-67732a6da74d", Kind: KindDecision, Pseudonym: "ps_3hkiMNfHDIiM7-l5MhTPyA",
			PurposeKey: "analytics", PurposeVersion: 1,
			VersionHash: "e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a",
			TextHash:    "0d6d0d4098f8be7edaca0349370fac648caa710b6880cf0de42f2a6ef0856de5",
			Decision:    Granted, PropertyID: "01a216fa-1c81-78ba-96be-67732a6da74c", Channel: "web", Method: MethodBannerCustom,
			Language: "fi", UIHash: "9f2c4e1a7b3d5f60819a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70", Actor: "device",
			InteractionID: "01a216fa-1c81-78ba-96be-67732a6da74b", ServerTime: 1795681819777}
	}
	for b.Loop() {
		prev := ""
		for _, e := range events {
			e.PrevHash = prev
			e.Hash = e.ComputeHash()
			prev = e.Hash
		}
	}
}

// BenchmarkWriterSQLiteBanner: the embedded default's write path without HTTP. 32
// goroutines record banner interactions (five decisions, 80 % from new devices, an
// Idempotency-Key each) through Record and the group-commit writer into an SQLite file with
// synchronous=FULL, as `make bench`'s SQLite phase does over HTTP. ns/op is the wall time
// per interaction at that concurrency (its inverse is the throughput the writer and the
// planning around it allow on this machine); wbytes/op is what the process handed to write
// system calls per interaction (the WAL, checkpoints, statement journals), the volume every
// commit's fsync waits for.
func BenchmarkWriterSQLiteBanner(b *testing.B) {
	s := newBenchWriteStack(b)
	ctx := context.Background()
	var known []*identity.Identifier
	for range 200 {
		r := *s.req
		r.Idempotency = nil
		out, err := s.svc.Record(ctx, &r)
		if err != nil {
			b.Fatal(err)
		}
		known = append(known, &identity.Identifier{Kind: identity.IDDevice, Value: out.DeviceID})
	}
	var n atomic.Int64
	written := processWriteBytes(b)
	b.SetParallelism(16) // 32 goroutines on two cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r := *s.req
			if i%5 == 0 {
				r.Identifier = known[i%int64(len(known))]
			}
			r.Idempotency = &IdempotencyKey{Route: "/v1/consents", Key: strconv.FormatInt(i, 10) + "-" + rand.Text(),
				RequestHash: s.req.Idempotency.RequestHash}
			if _, err := s.svc.Record(ctx, &r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processWriteBytes(b)-written)/float64(b.N), "wbytes/op")
}

// processWriteBytes is the bytes this process has passed to write system calls (wchar).
func processWriteBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io:", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no wchar in /proc/self/io")
	return 0
}
