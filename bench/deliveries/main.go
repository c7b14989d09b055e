// Command deliveries is the webhook delivery benchmark of bench/run.sh (issue 5): against a
// running `lupa serve` on PostgreSQL (set up by `loadtest setup`, started with
// LUPA_ALLOW_PRIVATE_WEBHOOKS=true) it registers a webhook endpoint through the admin API
// whose receiver (e2e/receiver) runs in this process and verifies every message with the
// official Standard Webhooks library, then measures two things and prints them as
// name=value lines on stdout (progress goes to stderr):
//
//   - deliveries_per_s: with the endpoint disabled, subjects consent through the collection
//     API, one decision (one event) per request, a share of them changing several times;
//     the endpoint is enabled and the backlog (the newest change of each subject and
//     purpose: older waiting ones are superseded) is timed until the receiver has all of it.
//   - lag_p99_ms: with the endpoint enabled, a steady rate of consents (one event each) for a
//     while; each message's lag is its arrival at the receiver minus the change's time in
//     Lupa (the envelope's timestamp).
//
// It exits 1 only when it cannot run; what went wrong otherwise is counted in
// deliveries_errors (bench/README.md, step 9). Usage:
//
//	deliveries -target TARGET.json -metrics URL [-subjects 10000] [-changers 0.2] [-changes 4]
//	    [-rate 500] [-warmup 3s] [-duration 20s] [-c 32] [-wait 3m]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lupa-cmp/lupa/e2e/receiver"
)

// target is what `loadtest setup` wrote (the fields used here).
type target struct {
	Addr        string `json:"addr"`
	AdminKey    string `json:"admin_key"`
	PropertyKey string `json:"property_key"`
	Origin      string `json:"origin"`
	Device      []struct {
		Key      string `json:"key"`
		Version  int    `json:"version"`
		TextHash string `json:"text_hash"`
	} `json:"device"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "deliveries:", err)
		os.Exit(1)
	}
}

func figure(name string, v any) {
	if f, ok := v.(float64); ok {
		fmt.Printf("%s=%s\n", name, strconv.FormatFloat(f, 'f', 2, 64))
		return
	}
	fmt.Printf("%s=%v\n", name, v)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run() error {
	targetFile := flag.String("target", "", "target file written by loadtest setup")
	metrics := flag.String("metrics", "", "URL of lupa's /metrics (the backlog and the attempts)")
	subjects := flag.Int("subjects", 10_000, "subjects (devices) of the throughput phase")
	changers := flag.Float64("changers", 0.2, "share of the subjects that change several times")
	changes := flag.Int("changes", 4, "further changes of each such subject")
	rate := flag.Int("rate", 500, "consents a second in the lag phase")
	warmup := flag.Duration("warmup", 3*time.Second, "lag phase: not measured")
	duration := flag.Duration("duration", 20*time.Second, "lag phase: measured")
	conc := flag.Int("c", 32, "concurrent clients writing consents")
	wait := flag.Duration("wait", 3*time.Minute, "longest wait for a backlog to be delivered")
	flag.Parse()
	b, err := os.ReadFile(*targetFile)
	if err != nil {
		return err
	}
	var t target
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	if len(t.Device) < 2 {
		return errors.New("the target has fewer than two device-level purposes")
	}
	l := &load{t: &t, base: "http://" + t.Addr, client: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *conc + 8, MaxConnsPerHost: *conc + 8}}}

	rcv, err := receiver.New("")
	if err != nil {
		return err
	}
	url, err := rcv.Start()
	if err != nil {
		return err
	}
	defer rcv.Close()
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := l.admin("POST", "/v1/admin/webhooks", map[string]any{"url": url, "description": "bench receiver",
		"event_types": []string{"consent.updated"}, "recipient_kind": "processor"}, 201, &ep); err != nil {
		return err
	}
	if err := rcv.SetSecret(ep.Secret); err != nil {
		return err
	}

	// ---- throughput: a backlog built with the endpoint disabled, then drained ----
	if err := l.admin("POST", "/v1/admin/webhooks/"+ep.ID+"/disable", nil, 200, nil); err != nil {
		return err
	}
	nChangers := int(float64(*subjects) * *changers)
	logf("writing the backlog: %d subjects, one event a request, %d of them changing %d more times", *subjects, nChangers, *changes)
	start := time.Now()
	devs := make([]*device, *subjects)
	for i := range devs {
		devs[i] = &device{}
	}
	// First decisions, then the changers' further changes (each subject's in order).
	if err := l.parallel(*conc, len(devs), func(i int) error {
		return l.decide(devs[i], 0, i%2 == 0)
	}); err != nil {
		return err
	}
	if err := l.parallel(*conc, nChangers, func(i int) error {
		for c := 1; c <= *changes; c++ {
			if err := l.decide(devs[i], c%2, (i+c)%3 != 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Last, one more subject: Lupa fans events out in the order they were recorded, so once
	// its message waits, every earlier event has been fanned out.
	time.Sleep(10 * time.Millisecond)
	last := &device{}
	if err := l.decide(last, 0, true); err != nil {
		return err
	}
	devs = append(devs, last)
	written := l.events.Load()
	logf("wrote %d events in %.1f s", written, time.Since(start).Seconds())
	keys := *subjects + 1 // the first purpose of every subject
	if *changes > 0 {
		keys += nChangers // the changers' second purpose
	}
	// Wait until every event is fanned out: the backlog holds one delivery per key.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := scrape(*metrics, "lupa_webhook_backlog")
		if err != nil {
			return err
		}
		if int(n) == keys {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the backlog holds %.0f deliveries, want %d (one per subject and purpose)", n, keys)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fanout := time.Since(start).Seconds()
	logf("every event fanned out %.1f s after the first was written", fanout)
	attempts0, _ := scrape(*metrics, `lupa_webhook_attempts_total{outcome="delivered"}`)
	cpu := startCPU()
	t0 := time.Now()
	if err := l.admin("POST", "/v1/admin/webhooks/"+ep.ID+"/enable", nil, 200, nil); err != nil {
		return err
	}
	// Until the receiver has the whole backlog, or -wait has passed (then the rate is what
	// arrived in that time, and what did not counts as an error).
	deadline = time.Now().Add(*wait)
	for rcv.Stats().Unique < keys && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	secs := rcv.LastAt().Sub(t0).Seconds()
	missing := keys - rcv.Stats().Unique
	if missing > 0 {
		secs = time.Since(t0).Seconds()
		logf("deliveries: %d of %d messages did not arrive within %s", missing, keys, *wait)
	}
	cpu.report("deliveries_")
	attempts1, _ := scrape(*metrics, `lupa_webhook_attempts_total{outcome="delivered"}`)
	st := rcv.Stats()
	figure("deliveries_per_s", float64(st.Unique)/secs)
	figure("deliveries_messages", st.Unique)
	figure("deliveries_events", written)
	figure("deliveries_secs", secs)
	figure("deliveries_attempts", int(attempts1-attempts0))
	figure("deliveries_missing", missing)
	figure("deliveries_fanout_secs", fanout)
	// Each subject and purpose ends at the decision Lupa answered last.
	states := rcv.States()
	wrong := 0
	for _, d := range devs {
		if missing > 0 {
			break // counted already
		}
		for p, want := range d.state {
			if got := states[receiver.Key{Subject: d.pseudonym, Purpose: p}]; got.Decision != want {
				if wrong < 5 {
					logf("deliveries: %s %s: Lupa answered %s, the receiver holds %q", d.pseudonym, p, want, got.Decision)
				}
				wrong++
			}
		}
	}
	figure("deliveries_wrong_state", wrong)
	figure("deliveries_duplicates", st.Duplicates)
	figure("deliveries_bad_signatures", st.BadSig)

	// ---- lag: a steady rate with the endpoint enabled ----
	logf("lag: %d consents a second for %s (after %s of warm-up), one event each", *rate, *duration, *warmup)
	before := rcv.Stats().Unique
	ev0 := l.events.Load()
	measureFrom := time.Now().Add(*warmup)
	rcv.KeepLagsFrom(measureFrom)
	end := measureFrom.Add(*duration)
	jobs := make(chan int, *rate)
	var wg sync.WaitGroup
	var late atomic.Int64
	lagDevs := make([]*device, 0, *rate*int((*warmup+*duration)/time.Second)+1)
	for range cap(lagDevs) {
		lagDevs = append(lagDevs, &device{})
	}
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				// Four in five from a new device, the rest a change of one written before.
				d := lagDevs[i]
				if i%5 == 4 {
					d = devs[i%len(devs)]
				}
				if err := l.decide(d, i%2, i%3 != 0); err != nil {
					logf("lag: %v", err)
				}
			}
		}()
	}
	tick := time.Now()
	for i := 0; time.Now().Before(end) && i < len(lagDevs); i++ {
		select {
		case jobs <- i:
		default:
			late.Add(1) // every client busy: the rate is not held
			jobs <- i
		}
		tick = tick.Add(time.Second / time.Duration(*rate))
		time.Sleep(time.Until(tick))
	}
	close(jobs)
	wg.Wait()
	sent := l.events.Load() - ev0
	// Wait until what was written has arrived (each change of a key that was still waiting
	// may be superseded, so the count can end below what was written).
	// A message still waiting after -wait counts with the time it has waited so far (less
	// than its lag), and as an error.
	drainEnd := time.Now().Add(*wait)
	var waiting float64
	for quiet := time.Now(); time.Since(quiet) < 3*time.Second && time.Now().Before(drainEnd); time.Sleep(100 * time.Millisecond) {
		if waiting, _ = scrape(*metrics, "lupa_webhook_backlog"); waiting > 0 {
			quiet = time.Now()
		}
	}
	lagMissing := int(waiting)
	if lagMissing > 0 {
		logf("lag: %d messages still waiting %s after the load", lagMissing, *wait)
	}
	lags := rcv.Lags()
	for range lagMissing {
		lags = append(lags, time.Since(end))
	}
	p50, n := quantile(lags, 0.50), len(lags)
	p99, pmax := quantile(lags, 0.99), quantile(lags, 1)
	figure("lag_p50_ms", float64(p50.Microseconds())/1000)
	figure("lag_p99_ms", float64(p99.Microseconds())/1000)
	figure("lag_max_ms", float64(pmax.Microseconds())/1000)
	figure("lag_messages", n)
	figure("lag_consents_per_s", float64(sent)/(*warmup+*duration).Seconds())
	figure("lag_rate_missed", late.Load())
	figure("lag_received", rcv.Stats().Unique-before)
	figure("lag_missing", lagMissing)
	// Errors: a request not answered 201, a message that did not verify, came twice or out of
	// order, or a final state that differs from Lupa's.
	st = rcv.Stats()
	for _, p := range rcv.Problems() {
		logf("receiver: %s", p)
	}
	errs := st.Problems + st.BadSig + st.Duplicates + wrong + int(l.errors.Load()) + missing + lagMissing
	figure("deliveries_errors", errs) // bench/run.sh fails the run when it is not 0
	return nil
}

// quantile returns the q-quantile (0..1) of the durations.
func quantile(l []time.Duration, q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	l = slices.Clone(l)
	slices.Sort(l)
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))]
}

// device is one subject of the load, written by one client at a time.
type device struct {
	mu        sync.Mutex
	id        string
	pseudonym string
	state     map[string]string // purpose → the state Lupa answered
}

type load struct {
	t      *target
	base   string
	client *http.Client
	events atomic.Int64 // events Lupa answered 201 for
	errors atomic.Int64
	reqs   atomic.Int64
}

// decide records one decision (one event) on the device's purpose p through the collection
// API, as the widget does (Origin, a client address among many).
func (l *load) decide(d *device, p int, grant bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dec := "denied"
	if grant {
		dec = "granted"
	}
	pp := l.t.Device[p]
	body := map[string]any{"method": "banner_custom", "language": "fi", "decisions": []map[string]any{
		{"purpose": pp.Key, "version": pp.Version, "decision": dec, "text_hash": pp.TextHash}}}
	if d.id != "" {
		body["identifier"] = map[string]string{"kind": "device", "value": d.id}
	}
	n := l.reqs.Add(1)
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", l.base+"/v1/consents?property="+l.t.PropertyKey, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", l.t.Origin)
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.78.%d.%d", n%1000/250, n%250+1))
	res, err := l.client.Do(req)
	if err != nil {
		l.errors.Add(1)
		return err
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 {
		l.errors.Add(1)
		return fmt.Errorf("POST /v1/consents: %d %s", res.StatusCode, rb)
	}
	var a struct {
		DeviceID string `json:"device_id"`
		Subject  string `json:"subject"`
		Events   []struct {
			Purpose  string `json:"purpose"`
			Decision string `json:"decision"`
		} `json:"events"`
	}
	if err := json.Unmarshal(rb, &a); err != nil {
		l.errors.Add(1)
		return err
	}
	d.id, d.pseudonym = a.DeviceID, a.Subject
	if d.state == nil {
		d.state = map[string]string{}
	}
	for _, e := range a.Events {
		d.state[e.Purpose] = e.Decision
	}
	l.events.Add(int64(len(a.Events)))
	return nil
}

// parallel runs fn(0…n-1) on c clients and returns the first error.
func (l *load) parallel(c, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// admin calls the admin API and decodes the answer into out.
func (l *load) admin(method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, l.base+path, r)
	req.Header.Set("Authorization", "Bearer "+l.t.AdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// scrape reads one sample (name with its labels, exactly) from a Prometheus text page.
func scrape(url, name string) (float64, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			return strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil // not reported yet: none so far
}

// cpuWatch measures the machine's CPU over a phase (100 = one core).
type cpuWatch struct {
	start time.Time
	busy  int64
}

func machineTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return busy
}

func startCPU() *cpuWatch { return &cpuWatch{start: time.Now(), busy: machineTicks()} }

func (w *cpuWatch) report(prefix string) {
	secs := time.Since(w.start).Seconds()
	figure(prefix+"cpu_machine_pct", float64(machineTicks()-w.busy)/secs) // 100 ticks a second
}
