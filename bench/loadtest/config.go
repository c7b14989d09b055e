package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/lupa-cmp/lupa/static"
)

// configCmd compares the banner's configuration endpoint with a bare net/http handler that
// writes the same bytes: 64 connections, Origin set, no If-None-Match, rounds taken in
// turns (the machine's speed drifts), each after a short warm-up.
func configCmd(args []string) error {
	fs := flag.NewFlagSet("config", flag.ExitOnError)
	targetFile := fs.String("target", "", "target file written by setup")
	conc := fs.Int("c", 64, "concurrent connections")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up of each slice, not measured")
	duration := fs.Duration("duration", 10*time.Second, "measured time of each slice")
	rounds := fs.Int("rounds", 3, "rounds of Lupa then bare")
	_ = fs.Parse(args)
	t, err := loadTarget(*targetFile)
	if err != nil {
		return err
	}
	path := "/v1/properties/" + t.PropertyKey + "/config?lang=fi&build=" + static.Build
	body, header, err := fetchConfig(t, path)
	if err != nil {
		return err
	}
	bare, stop, err := startBare(body, header)
	if err != nil {
		return err
	}
	defer stop()
	var lupaSum, bareSum float64
	var perRound []string
	for r := 0; r < *rounds; r++ {
		l, err := getLoad(t.Addr, path, t.Origin, len(body), *conc, *warmup, *duration)
		if err != nil {
			return fmt.Errorf("lupa: %w", err)
		}
		b, err := getLoad(bare, path, t.Origin, len(body), *conc, *warmup, *duration)
		if err != nil {
			return fmt.Errorf("bare: %w", err)
		}
		fmt.Fprintf(os.Stderr, "round %d: config_rps=%.0f bare_rps=%.0f\n", r+1, l, b)
		lupaSum, bareSum = lupaSum+l, bareSum+b
		perRound = append(perRound, fmt.Sprintf("%.2f", l/b))
	}
	figure("config_rps", lupaSum/float64(*rounds))
	figure("bare_rps", bareSum/float64(*rounds))
	figure("config_vs_bare", lupaSum/bareSum)
	fmt.Printf("config_vs_bare_rounds=%s\n", strings.Join(perRound, ","))
	figure("config_bytes", len(body))
	return nil
}

// fetchConfig asks Lupa for the configuration once, as the widget does.
func fetchConfig(t *target, path string) ([]byte, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+t.Addr+path, nil)
	req.Header.Set("Origin", t.Origin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET config: %d %s %v", res.StatusCode, body, err)
	}
	return body, res.Header, nil
}

// startBare runs `loadtest bare` as its own process (as Lupa is), serving body with the
// same headers, and returns its address.
func startBare(body []byte, header http.Header) (string, func(), error) {
	dir, err := os.MkdirTemp("", "lupa-bare")
	if err != nil {
		return "", nil, err
	}
	bodyFile := dir + "/body"
	if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{"bare", "-addr", addr, "-body", bodyFile}
	for _, h := range []string{"Content-Type", "Etag", "Cache-Control", "Vary", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers"} {
		if v := header.Get(h); v != "" {
			args = append(args, "-header", h+": "+v)
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("the bare server did not start")
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// bareCmd serves one body with fixed headers from a plain net/http handler: the baseline.
func bareCmd(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := fs.String("body", "", "the body to serve")
	var headers headerFlags
	fs.Var(&headers, "header", "Name: value (repeatable)")
	_ = fs.Parse(args)
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		h.Set(k, v)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		_, _ = w.Write(body)
	})
	return (&http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}).ListenAndServe()
}

// getLoad sends GET path with Origin over conc keep-alive connections and returns the
// answers per second in the measured window. Any answer but 200 with the expected size
// fails the run.
func getLoad(addr, path, origin string, size, conc int, warmup, duration time.Duration) (float64, error) {
	start := time.Now()
	warmEnd, end := start.Add(warmup), start.Add(warmup+duration)
	counts := make([]int, conc)
	errs := newErrorLog()
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn := newRawConn(addr)
			defer conn.close()
			var rb reqBuilder
			rb.start("GET", path, addr)
			rb.header("Origin", origin)
			req := rb.body()
			for ctx.Err() == nil {
				status, body, err := conn.do(req)
				now := time.Now()
				if err != nil || status != 200 || len(body) != size {
					mu.Lock()
					errs.add(status, body, err)
					mu.Unlock()
					continue
				}
				if now.After(warmEnd) && now.Before(end) {
					counts[i]++
				}
			}
		}(i)
	}
	wg.Wait()
	if n := errs.total(); n > 0 {
		errs.report("config load")
		return 0, fmt.Errorf("%d requests were not answered 200", n)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(total) / duration.Seconds(), nil
}
