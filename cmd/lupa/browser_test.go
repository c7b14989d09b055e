package main

// Browser tests drive Debian's Chromium (headless, through chromedp) against a web site
// on its own origin that embeds the real widget served by the real Lupa. The test command
// installs Chromium; outside CI a machine without it skips these tests.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/lupa-cmp/lupa/identity"
)

// chromium returns the browser to test with: LUPA_TEST_CHROMIUM (set by the test
// command), else Debian's. Without one the test fails in CI and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LUPA_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium: CI must run the test command, which installs Debian's chromium")
	}
	t.Skip("no Chromium here; `make test` installs it")
	return ""
}

// browser is one fresh headless Chromium (its own profile: no cookies, no storage).
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []string
}

func newBrowser(t *testing.T, opts ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	all := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
	}
	all = append(all, opts...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), all...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first call starts the browser; it must not carry a timeout (that would stop it).
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.mu.Lock()
			b.console = append(b.console, string(e.Type)+": "+strings.Join(parts, " "))
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// do runs actions with a time limit, failing the test on error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\nconsole:\n%s", err, strings.Join(b.consoleLines(), "\n"))
	}
}

func (b *browser) consoleLines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// evalJS evaluates a JavaScript expression in the page and returns its value.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v\nconsole:\n%s", expr, err, strings.Join(b.consoleLines(), "\n"))
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func (b *browser) waitJS(expr string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingInterval(20*time.Millisecond)))
		cancel()
		// A page that reloads while we wait ends the poll; wait on in the new page.
		reloaded := err != nil && (strings.Contains(err.Error(), "navigated or closed") || strings.Contains(err.Error(), "Cannot find context"))
		if err == nil || !reloaded || time.Now().After(deadline) {
			if err != nil {
				b.t.Fatalf("waiting for %s: %v\nconsole:\n%s", expr, err, strings.Join(b.consoleLines(), "\n"))
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gpc makes the browser send Global Privacy Control, as browsers with the setting on do:
// navigator.globalPrivacyControl is true before any script runs, and every request
// carries Sec-GPC: 1.
func (b *browser) gpc() {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		b.t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}}); err != nil {
		b.t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `Object.defineProperty(Navigator.prototype, "globalPrivacyControl", {get: () => true, configurable: true})`}); err != nil {
		b.t.Fatal(err)
	}
}

// site is a web shop on its own origin (http://localhost:PORT, while Lupa is on
// 127.0.0.1 behind a switchable proxy) whose pages embed the widget.
type site struct {
	*httptest.Server
	t      *testing.T
	lupa   *testServer
	proxy  *httptest.Server
	down   atomic.Bool // the proxy drops every connection to Lupa
	Origin string
	pages  map[string]string
	mu     sync.Mutex
	// lupaURL, when set, is where pages load Lupa from instead of the proxy (Lupa over
	// TLS, for sign-ins whose cookies are Secure).
	lupaURL string
}

// newSite starts the site and adds its origin to the demo web shop's allow-list.
func newSite(t *testing.T, lupa *testServer) *site {
	t.Helper()
	s := &site{t: t, lupa: lupa, pages: map[string]string{}}
	target, _ := url.Parse(lupa.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	s.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			// The server cannot be reached: the connection closes without an answer.
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.proxy.Close)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Server.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	s.Origin = "http://localhost:" + port
	origins := append(lupa.demo.WebShop.AllowedOrigins, s.Origin)
	if _, err := lupa.app.ids.UpdateProperty(context.Background(), lupa.demo.Tenant.ID, lupa.demo.WebShop.ID,
		identity.PropertyPatch{AllowedOrigins: &origins}, identity.ActorSystem); err != nil {
		t.Fatal(err)
	}
	return s
}

// Lupa is the base URL pages load the widget from.
func (s *site) Lupa() string {
	if s.lupaURL != "" {
		return s.lupaURL
	}
	return s.proxy.URL
}

// page adds a page at path; {{lupa}} and {{pk}} in html become Lupa's URL and the web
// shop's property key.
func (s *site) page(path, html string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	html = strings.ReplaceAll(html, "{{lupa}}", s.Lupa())
	html = strings.ReplaceAll(html, "{{pk}}", s.lupa.demo.WebShop.PublicKey)
	s.pages[path] = html
	return s.Origin + path
}

func (s *site) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/js/") {
		// External sample scripts: each records that it ran, slowly, so that order matters.
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/js/"), ".js")
		time.Sleep(50 * time.Millisecond)
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprintf(w, "(window.ran = window.ran || []).push(%q);\n", name)
		return
	}
	s.mu.Lock()
	html, ok := s.pages[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, html)
}
