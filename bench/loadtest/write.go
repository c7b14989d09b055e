package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// writeCmd is the write-path benchmark: concurrent widgets, each request one banner_custom
// interaction with a decision on every device-level purpose, most from new devices and the
// rest from devices that earlier answers created, each with an Idempotency-Key, an allowed
// Origin and a client IP (X-Forwarded-For) out of many. A request counts when it is answered
// 201, which Lupa does only after the commit.
func writeCmd(args []string) error {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	prefix := fs.String("prefix", "", "prefix of the figure names (sqlite_)")
	conc := fs.Int("c", 32, "concurrent clients (keep-alive connections)")
	warmup := fs.Duration("warmup", 5*time.Second, "warm-up, not measured")
	duration := fs.Duration("duration", 30*time.Second, "measured time")
	known := fs.Float64("known", 0.2, "share of requests from known devices")
	nIPs := fs.Int("ips", 1000, "client IPs, spread through X-Forwarded-For")
	pid := fs.Int("pid", 0, "pid of lupa serve: peak RSS and CPU")
	pgPid := fs.Int("pg-pid", 0, "pid of the postmaster: CPU of PostgreSQL")
	metrics := fs.String("metrics", "", "URL of lupa's /metrics: writer batch sizes")
	devicesOut := fs.String("devices-out", "", "file to write the device ids created (and those of -devices-in)")
	devicesIn := fs.String("devices-in", "", "device ids an earlier run created: known devices from the first request")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	l := newWriteLoad(t, *known, *nIPs)
	if fi, err := os.Stat(*devicesIn); *devicesIn != "" && (err != nil || fi.Size() > 0) { // empty: the first run
		ids, err := loadDevices(*devicesIn)
		if err != nil {
			return err
		}
		for _, id := range ids {
			l.pool.add(id)
		}
	}
	p := *prefix

	start := time.Now()
	warmEnd := start.Add(*warmup)
	end := warmEnd.Add(*duration)
	results := make([]*writeResult, *conc)
	var wg sync.WaitGroup
	for i := range results {
		results[i] = &writeResult{errs: newErrorLog(), lat: make(latencies, 0, 1<<16)}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l.worker(i, rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i))), warmEnd, end, results[i])
		}(i)
	}
	// Measure the machine over the measured window only.
	time.Sleep(time.Until(warmEnd))
	cpu := startCPU(*pid, *pgPid)
	before, err := scrapeWriter(*metrics)
	if err != nil {
		logf("metrics: %v", err)
	}
	time.Sleep(time.Until(end))
	after, _ := scrapeWriter(*metrics)
	cpu.report(p + "write_")
	wg.Wait()

	all := newErrorLog()
	lats := make([]latencies, len(results))
	ok, knownN := 0, 0
	for i, r := range results {
		all.mergeFrom(r.errs)
		lats[i] = r.lat
		ok += r.ok
		knownN += r.known
	}
	lat := merge(lats)
	secs := duration.Seconds()
	figure(p+"consents_per_s", float64(ok)/secs)
	figure(p+"p50_ms", lat.ms(0.50))
	figure(p+"p99_ms", lat.ms(0.99))
	figure(p+"errors", all.total())
	figure(p+"write_requests", ok)
	if ok > 0 {
		figure(p+"write_known_share", float64(knownN)/float64(ok))
	}
	figure(p+"write_max_ms", lat.ms(1))
	reportWriter(p+"write_", before, after, secs)
	if *pid > 0 {
		rss, err := peakRSSMB(*pid)
		if err != nil {
			return err
		}
		figure(p+"rss_mb", rss)
	}
	all.report(p + "write")
	if *devicesOut != "" {
		if err := l.pool.save(*devicesOut); err != nil {
			return err
		}
	}
	return nil
}

type writeResult struct {
	ok, known int // 201s answered in the measured window, of which from known devices
	lat       latencies
	errs      *errorLog // every non-201, warm-up included
}

type writeLoad struct {
	addr, path   string
	origin       []byte
	tails        [][]byte // bodies after the identifier, one per decision mix
	ips          [][]byte
	known        float64
	keyPrefix    []byte
	pool         devicePool
	knownPrefix  []byte
	knownMiddle  []byte
	newDevPrefix []byte
}

func newWriteLoad(t *target, known float64, nIPs int) *writeLoad {
	l := &writeLoad{addr: t.Addr, path: "/v1/consents?property=" + t.PropertyKey, origin: []byte(t.Origin),
		ips: clientIPs(nIPs), known: known, pool: devicePool{limit: 400_000},
		keyPrefix:   []byte("wb-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"),
		knownPrefix: []byte(`{"identifier":{"kind":"device","value":"`), knownMiddle: []byte(`"},`),
		newDevPrefix: []byte(`{`)}
	// The widget sends the hash of the banner it showed and the time on the device.
	uiHash := "9f2c4e1a7b3d5f60819a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70"
	clientTime := time.Now().UTC().Format(time.RFC3339)
	n := len(t.Device)
	// Every mix of granted and denied except all of one kind (those are accept/reject all).
	for mask := 1; mask < 1<<n-1; mask++ {
		var b strings.Builder
		fmt.Fprintf(&b, `"method":"banner_custom","language":"fi","ui_hash":%q,"client_time":%q,"decisions":[`, uiHash, clientTime)
		for i, p := range t.Device {
			d := "denied"
			if mask&(1<<i) != 0 {
				d = "granted"
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"purpose":%q,"version":%d,"decision":%q,"text_hash":%q}`, p.Key, p.Version, d, p.TextHash)
		}
		b.WriteString("]}")
		l.tails = append(l.tails, []byte(b.String()))
	}
	return l
}

var deviceIDField = []byte(`"device_id":"`)

func (l *writeLoad) worker(id int, rng *rand.Rand, warmEnd, end time.Time, res *writeResult) {
	conn := newRawConn(l.addr)
	defer conn.close()
	var rb reqBuilder
	key := make([]byte, 0, 64)
	var dev [22]byte
	for n := int64(0); ; n++ {
		if !time.Now().Before(end) {
			return
		}
		tail := l.tails[rng.IntN(len(l.tails))]
		isKnown := rng.Float64() < l.known && l.pool.pick(rng, &dev)
		key = append(key[:0], l.keyPrefix...)
		key = strconv.AppendInt(key, int64(id), 10)
		key = append(key, '-')
		key = strconv.AppendInt(key, n, 10)
		rb.start("POST", l.path, l.addr)
		rb.header("Content-Type", "application/json")
		rb.headerParts("Origin", l.origin)
		rb.headerParts("X-Forwarded-For", l.ips[rng.IntN(len(l.ips))])
		rb.headerParts("Idempotency-Key", key)
		var req []byte
		if isKnown {
			req = rb.body(l.knownPrefix, dev[:], l.knownMiddle, tail)
		} else {
			req = rb.body(l.newDevPrefix, tail)
		}
		t0 := time.Now()
		status, body, err := conn.do(req)
		t1 := time.Now()
		measured := !t1.Before(warmEnd) && !t1.After(end)
		if err != nil || status != 201 {
			res.errs.add(status, body, err)
			continue
		}
		if !isKnown {
			if i := bytes.Index(body, deviceIDField); i >= 0 && len(body) >= i+len(deviceIDField)+22 {
				l.pool.add(body[i+len(deviceIDField) : i+len(deviceIDField)+22])
			}
		}
		if measured {
			res.ok++
			if isKnown {
				res.known++
			}
			res.lat.add(t1.Sub(t0))
		}
	}
}

// devicePool holds the device ids Lupa issued, for requests from known devices.
type devicePool struct {
	mu    sync.Mutex
	ids   [][22]byte
	next  int
	limit int
}

func (p *devicePool) add(id []byte) {
	var v [22]byte
	copy(v[:], id)
	p.mu.Lock()
	if len(p.ids) < p.limit {
		p.ids = append(p.ids, v)
	} else {
		p.ids[p.next%p.limit] = v
		p.next++
	}
	p.mu.Unlock()
}

func (p *devicePool) pick(rng *rand.Rand, dst *[22]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return false
	}
	*dst = p.ids[rng.IntN(len(p.ids))]
	return true
}

func (p *devicePool) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	p.mu.Lock()
	for _, id := range p.ids {
		w.Write(id[:])
		w.WriteByte('\n')
	}
	p.mu.Unlock()
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadDevices(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 22 {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no device ids", path)
	}
	return out, nil
}
