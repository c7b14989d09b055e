// Command seed fills a Lupa database with customers for the bulk-check benchmark
// (bench/run.sh): n customers, each known by a customer_number identifier and each with a
// decision on several person-level purposes.
//
// It writes through Lupa's own consent service and group-commit writer — the code behind
// POST /v1/subjects/consents, with the same validation, subjects, identifiers, hash-chained
// events, states, domain events and signed receipts — in this process, next to a running
// `lupa serve` on the same database (the design allows several instances). Only the HTTP
// layer is left out, so the 1M ledger entries take seconds instead of minutes. It is
// set-up, not a measurement.
//
// Environment: LUPA_DATABASE_URL and LUPA_MASTER_KEY, the server's.
//
//	seed -n 250000 -purposes marketing_email,personalisation,partner_sharing,brand_sharing
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

func main() {
	n := flag.Int("n", 250_000, "customers")
	conc := flag.Int("c", 1024, "interactions in flight (the writer batches them)")
	slug := flag.String("tenant", consent.DemoSlug, "tenant slug")
	purposes := flag.String("purposes", "marketing_email,personalisation,partner_sharing,brand_sharing", "person-level purposes to decide")
	maxBatch := flag.Int("max-batch", 256, "the writer's largest batch (LUPA_WRITER_MAX_BATCH's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the seeding here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*n, *conc, *slug, strings.Split(*purposes, ","), *maxBatch); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

// CustomerNumber is the i-th seeded customer's number (loadtest check uses the same form).
func CustomerNumber(i int) string {
	s := strconv.Itoa(i)
	return "C" + strings.Repeat("0", max(0, 9-len(s))) + s
}

func run(n, conc int, slug string, purposes []string, maxBatch int) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, os.Getenv("LUPA_DATABASE_URL"), os.TempDir(), sqldb.Options{MaxConns: 8})
	if err != nil {
		return err
	}
	defer db.Close()
	master, err := keyring.LoadMasterKey(os.Getenv("LUPA_MASTER_KEY"), "", "", false)
	if err != nil {
		return err
	}
	now := func() time.Time { return time.Now().UTC() }
	keys, err := keyring.Open(ctx, db, master, now)
	if err != nil {
		return err
	}
	ids := identity.New(db, keys, now)
	svc := consent.NewService(db, ids, keys, now, log)
	writer := svc.StartWriter(consent.WriterOptions{MaxBatch: maxBatch})
	defer writer.Close()
	tenant, err := ids.TenantBySlug(ctx, slug)
	if err != nil {
		return err
	}

	var next, done, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				decisions := make([]consent.DecisionInput, len(purposes))
				for j, p := range purposes {
					d := consent.Denied
					if (i>>j)&1 == 1 {
						d = consent.Granted
					}
					decisions[j] = consent.DecisionInput{Purpose: p, Version: 1, Decision: d}
				}
				_, err := svc.Record(ctx, &consent.RecordRequest{TenantID: tenant.ID,
					Identifier: &identity.Identifier{Kind: identity.IDCustomerNumber, Value: CustomerNumber(i)},
					Method:     consent.MethodAPI, Language: "fi", Actor: identity.Actor("bench-seed"),
					Decisions: decisions})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if d := done.Add(1); d%50_000 == 0 {
					fmt.Fprintf(os.Stderr, "%s seeded %d of %d customers (%.0f/s)\n", time.Now().Format("15:04:05"),
						d, n, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("seed_customers=%d\n", done.Load())
	fmt.Printf("seed_customers_per_s=%.2f\n", float64(done.Load())/secs)
	fmt.Printf("seed_errors=%d\n", failed.Load())
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d customers could not be seeded, e.g. %v", f, firstErr.Load())
	}
	return nil
}
