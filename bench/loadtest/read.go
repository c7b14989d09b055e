package main

import (
	"flag"
	"math/rand/v2"
	"sync"
	"time"
)

// readCmd is the state-read benchmark: widgets asking for the current state of random known
// devices (GET /v1/consents with Lupa-Device-Id), over many connections and client IPs.
func readCmd(args []string) error {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	devicesFile := fs.String("devices", "", "device ids, one a line (write -devices-out)")
	conc := fs.Int("c", 64, "concurrent connections")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up, not measured")
	duration := fs.Duration("duration", 20*time.Second, "measured time")
	nIPs := fs.Int("ips", 1000, "client IPs, spread through X-Forwarded-For")
	pid := fs.Int("pid", 0, "pid of lupa serve: CPU")
	pgPid := fs.Int("pg-pid", 0, "pid of the postmaster: CPU")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	devices, err := loadDevices(*devicesFile)
	if err != nil {
		return err
	}
	ips := clientIPs(*nIPs)
	path := "/v1/consents?property=" + t.PropertyKey
	origin := []byte(t.Origin)

	start := time.Now()
	warmEnd := start.Add(*warmup)
	end := warmEnd.Add(*duration)
	type result struct {
		ok   int
		lat  latencies
		errs *errorLog
	}
	results := make([]*result, *conc)
	var wg sync.WaitGroup
	for i := range results {
		r := &result{errs: newErrorLog(), lat: make(latencies, 0, 1<<16)}
		results[i] = r
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i)))
			conn := newRawConn(t.Addr)
			defer conn.close()
			var rb reqBuilder
			for time.Now().Before(end) {
				rb.start("GET", path, t.Addr)
				rb.headerParts("Origin", origin)
				rb.headerParts("X-Forwarded-For", ips[rng.IntN(len(ips))])
				rb.headerParts("Lupa-Device-Id", devices[rng.IntN(len(devices))])
				req := rb.body()
				t0 := time.Now()
				status, body, err := conn.do(req)
				t1 := time.Now()
				if err != nil || status != 200 {
					r.errs.add(status, body, err)
					continue
				}
				if !t1.Before(warmEnd) && !t1.After(end) {
					r.ok++
					r.lat.add(t1.Sub(t0))
				}
			}
		}(i)
	}
	time.Sleep(time.Until(warmEnd))
	cpu := startCPU(*pid, *pgPid)
	time.Sleep(time.Until(end))
	cpu.report("state_read_")
	wg.Wait()

	all := newErrorLog()
	lats := make([]latencies, len(results))
	ok := 0
	for i, r := range results {
		all.mergeFrom(r.errs)
		lats[i] = r.lat
		ok += r.ok
	}
	lat := merge(lats)
	figure("state_reads_per_s", float64(ok)/duration.Seconds())
	figure("state_read_p50_ms", lat.ms(0.50))
	figure("state_read_p99_ms", lat.ms(0.99))
	figure("state_read_errors", all.total())
	figure("state_read_devices", len(devices))
	all.report("state read")
	return nil
}
