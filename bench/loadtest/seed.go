package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// customerNumber is the i-th seeded customer's number; numbers past the seeded count are
// customers Lupa has never heard of.
func customerNumber(b []byte, i int) []byte {
	b = append(b, 'C')
	s := strconv.Itoa(i)
	for range 9 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// seedCmd records decisions on the person-level purposes for n customers, through the
// server API (POST /v1/subjects/consents, the same writer the widgets use), many requests at
// once so the writer's batches are large. It is set-up for the check, not a measurement.
func seedCmd(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	n := fs.Int("n", 250_000, "customers")
	conc := fs.Int("c", 96, "concurrent connections")
	perCustomer := fs.Int("purposes", 4, "person-level purposes decided per customer")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	if len(t.Person) < *perCustomer {
		return fmt.Errorf("the tenant has %d person-level purposes, want %d", len(t.Person), *perCustomer)
	}
	// One body tail per mix of decisions.
	var tails [][]byte
	for mask := 0; mask < 1<<*perCustomer; mask++ {
		var b bytes.Buffer
		b.WriteString(`"},"method":"api","language":"fi","decisions":[`)
		for i, p := range t.Person[:*perCustomer] {
			d := "denied"
			if mask&(1<<i) != 0 {
				d = "granted"
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"purpose":%q,"version":%d,"decision":%q}`, p.Key, p.Version, d)
		}
		b.WriteString("]}")
		tails = append(tails, b.Bytes())
	}
	head := []byte(`{"identifier":{"kind":"customer_number","value":"`)
	auth := []byte("Bearer " + t.AdminKey)

	var next, done atomic.Int64
	errs := newErrorLog()
	var mu sync.Mutex
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				d := done.Load()
				logf("seeded %d of %d customers (%.0f/s)", d, *n, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := newRawConn(t.Addr)
			defer conn.close()
			var rb reqBuilder
			num := make([]byte, 0, 16)
			local := newErrorLog()
			for {
				i := int(next.Add(1))
				if i > *n {
					break
				}
				num = customerNumber(num[:0], i)
				rb.start("POST", "/v1/subjects/consents", t.Addr)
				rb.header("Content-Type", "application/json")
				rb.headerParts("Authorization", auth)
				req := rb.body(head, num, tails[i%len(tails)])
				status, body, err := conn.do(req)
				if err != nil || status != 201 {
					local.add(status, body, err)
					continue
				}
				done.Add(1)
			}
			mu.Lock()
			errs.mergeFrom(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	secs := time.Since(start).Seconds()
	figure("seed_customers", done.Load())
	figure("seed_customers_per_s", float64(done.Load())/secs)
	figure("seed_errors", errs.total())
	errs.report("seed")
	if errs.total() > 0 {
		return fmt.Errorf("%d customers could not be seeded", errs.total())
	}
	return nil
}

// checkCmd is the bulk-check benchmark: POST /v1/consents/check with batch identifiers of
// the customer_number kind (a share of them unknown) for one purpose; after a few warm-up
// calls, the median of calls.
func checkCmd(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	n := fs.Int("n", 250_000, "customers seeded")
	batch := fs.Int("batch", 10_000, "identifiers per call")
	unknown := fs.Float64("unknown", 0.1, "share of unknown customer numbers")
	calls := fs.Int("calls", 20, "measured calls")
	warm := fs.Int("warmup-calls", 3, "warm-up calls")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	purpose := t.Person[0].Key
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	auth := []byte("Bearer " + t.AdminKey)
	conn := newRawConn(t.Addr)
	defer conn.close()
	var rb reqBuilder
	var body []byte
	var times []float64
	unknownSeen, results := 0, 0
	for call := 0; call < *warm+*calls; call++ {
		body = append(body[:0], `{"purpose":"`...)
		body = append(body, purpose...)
		body = append(body, `","identifiers":[`...)
		for i := 0; i < *batch; i++ {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"kind":"customer_number","value":"`...)
			c := 1 + rng.IntN(*n)
			if rng.Float64() < *unknown {
				c = *n + 1 + rng.IntN(100_000_000)
			}
			body = customerNumber(body, c)
			body = append(body, `"}`...)
		}
		body = append(body, "]}"...)
		rb.start("POST", "/v1/consents/check", t.Addr)
		rb.header("Content-Type", "application/json")
		rb.headerParts("Authorization", auth)
		req := rb.body(body)
		t0 := time.Now()
		status, resp, err := conn.do(req)
		d := time.Since(t0)
		if err != nil {
			return err
		}
		if status != 200 {
			return statusError(status, resp)
		}
		if call >= *warm {
			times = append(times, float64(d.Microseconds())/1000)
			unknownSeen += bytes.Count(resp, []byte(`"unknown_subject"`))
			results += bytes.Count(resp, []byte(`"may_use"`))
		}
	}
	sort.Float64s(times)
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	figure("check_10k_p50_ms", median)
	figure("check_10k_max_ms", times[len(times)-1])
	figure("check_10k_min_ms", times[0])
	figure("check_10k_results", results)
	if results > 0 {
		figure("check_10k_unknown_share", float64(unknownSeen)/float64(results))
	}
	return nil
}
