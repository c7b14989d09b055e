package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// signinCmd is the sign-in storm: many people signing in at once through the sign-in page
// (POST /t/{slug}/signin, the form a browser sends), each with a correct password, over many
// connections and client addresses. Every password check is argon2id with OWASP's
// parameters, which the server runs in a bounded pool: what cannot wait is told 503 with
// Retry-After, and a client then waits that long, as a browser's user would try again.
// It prints signins_per_s (303 answers with a session), the busy answers, the latencies
// and the server's peak RSS.
func signinCmd(args []string) error {
	fs := flag.NewFlagSet("signin", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	accountsFile := fs.String("accounts", "", "addresses of verified accounts, one a line")
	password := fs.String("password", "a long and honest benchmark password", "their password")
	slug := fs.String("tenant", "demo-retail", "tenant slug")
	conc := fs.Int("c", 64, "concurrent connections")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up, not measured")
	duration := fs.Duration("duration", 20*time.Second, "measured time")
	nIPs := fs.Int("ips", 1000, "client IPs, spread through X-Forwarded-For")
	pid := fs.Int("pid", 0, "pid of lupa serve: peak RSS and CPU")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	emails, err := readLines(*accountsFile)
	if err != nil || len(emails) == 0 {
		return fmt.Errorf("no accounts in %s: %v", *accountsFile, err)
	}
	ips := clientIPs(*nIPs)
	path := "/t/" + *slug + "/signin"
	start := time.Now()
	warmEnd := start.Add(*warmup)
	end := warmEnd.Add(*duration)
	type result struct {
		ok, busy int
		lat      latencies
		errs     *errorLog
	}
	results := make([]*result, *conc)
	var wg sync.WaitGroup
	for i := range results {
		r := &result{errs: newErrorLog(), lat: make(latencies, 0, 1024)}
		results[i] = r
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i)))
			conn := newRawConn(t.Addr)
			defer conn.close()
			var rb reqBuilder
			for time.Now().Before(end) {
				form := []byte(url.Values{"email": {emails[rng.IntN(len(emails))]}, "password": {*password}}.Encode())
				rb.start("POST", path, t.Addr)
				rb.header("Content-Type", "application/x-www-form-urlencoded")
				rb.headerParts("X-Forwarded-For", ips[rng.IntN(len(ips))])
				req := rb.body(form)
				t0 := time.Now()
				status, body, err := conn.do(req)
				t1 := time.Now()
				measured := !t1.Before(warmEnd) && !t1.After(end)
				switch {
				case err == nil && status == 303:
					if measured {
						r.ok++
						r.lat.add(t1.Sub(t0))
					}
				case err == nil && status == 503:
					if measured {
						r.busy++
					}
					time.Sleep(time.Second) // Retry-After: 1
				default:
					r.errs.add(status, body, err)
				}
			}
		}(i)
	}
	time.Sleep(time.Until(warmEnd))
	cpu := startCPU(*pid, 0)
	time.Sleep(time.Until(end))
	cpu.report("signin_")
	wg.Wait()
	all := newErrorLog()
	lats := make([]latencies, len(results))
	ok, busy := 0, 0
	for i, r := range results {
		all.mergeFrom(r.errs)
		lats[i] = r.lat
		ok += r.ok
		busy += r.busy
	}
	lat := merge(lats)
	figure("signins_per_s", float64(ok)/duration.Seconds())
	figure("signin_busy_per_s", float64(busy)/duration.Seconds())
	figure("signin_p50_ms", lat.ms(0.50))
	figure("signin_p99_ms", lat.ms(0.99))
	figure("signin_errors", all.total())
	figure("signin_accounts", len(emails))
	if *pid > 0 {
		rss, err := peakRSSMB(*pid)
		if err != nil {
			return err
		}
		figure("signin_rss_mb", rss)
	}
	all.report("sign-in")
	return nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}
