// Command browser measures the banner in headless Chromium against a running Lupa, for
// bench/run.sh: banner_visible_ms (median over first visits, each in a fresh browser
// context: no cache, no cookies) and widget_gzip_bytes (gzip -9 sizes of every file the
// browser fetched from Lupa to show both layers, the configuration excepted).
//
//	browser -target TARGET.json [-visits 20] [-chromium /usr/bin/chromium]
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

type target struct {
	Addr        string `json:"addr"`
	AdminKey    string `json:"admin_key"`
	PropertyKey string `json:"property_key"`
}

// page is the site's page: it starts observing Element Timing before the widget loads, and
// computes the time from the widget's first statement (its lupa:start mark) to the render of
// the banner's title.
const page = `<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Shop</title>
<script>
window.__bannerMs = null;
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (e) {
    if (e.identifier !== "lupa-title") return;
    var s = performance.getEntriesByName("lupa:start")[0];
    window.__bannerMs = e.renderTime - (s ? s.startTime : 0);
  });
}).observe({type: "element", buffered: true});
</script>
<script src="LUPA/v1/widget.js" data-property="PK" async></script>
</head><body><h1>Demo Market</h1><p>Products.</p></body></html>`

func main() {
	targetFile := flag.String("target", "", "target file written by loadtest setup")
	visits := flag.Int("visits", 20, "first visits to measure")
	chromium := flag.String("chromium", "/usr/bin/chromium", "Chromium to drive")
	flag.Parse()
	if err := run(*targetFile, *visits, *chromium); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

func run(targetFile string, visits int, chromium string) error {
	raw, err := os.ReadFile(targetFile)
	if err != nil {
		return err
	}
	var t target
	if err := json.Unmarshal(raw, &t); err != nil {
		return err
	}
	lupa := "http://" + t.Addr
	siteURL, stop, err := startSite(strings.NewReplacer("LUPA", lupa, "PK", t.PropertyKey).Replace(page),
		strings.NewReplacer("LUPA", lupa, "PK", t.PropertyKey).Replace(regPage))
	if err != nil {
		return err
	}
	defer stop()
	regURL := siteURL + "join"
	if err := allowOrigin(lupa, t, strings.TrimSuffix(siteURL, "/")); err != nil {
		return err
	}
	allocCtx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))
	defer cancel()
	root, cancelRoot := chromedp.NewContext(allocCtx)
	defer cancelRoot()
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		return fmt.Errorf("start Chromium: %w", err)
	}
	// One visit to warm the browser process and Lupa's configuration cache; not measured.
	if _, err := visit(root, siteURL); err != nil {
		return err
	}
	var ms []float64
	for i := 0; i < visits; i++ {
		v, err := visit(root, siteURL)
		if err != nil {
			return err
		}
		ms = append(ms, v)
	}
	sort.Float64s(ms)
	fmt.Printf("banner_visible_ms=%.2f\n", median(ms))
	fmt.Printf("banner_visible_p90_ms=%.2f\n", ms[len(ms)*9/10])
	fmt.Printf("banner_visible_visits=%d\n", len(ms))
	if err := widgetBytes(root, siteURL, lupa); err != nil {
		return err
	}
	return registerBytes(root, regURL, lupa)
}

// registerBytes loads a page with a registration form and sums the gzip -9 sizes of the
// registration loader chunk(s) the browser fetched from Lupa.
func registerBytes(root context.Context, url, lupa string) error {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 30*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	var mu sync.Mutex
	fetched := map[network.RequestID]string{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.HasPrefix(e.Response.URL, lupa+"/v1/static/register.") && e.Response.Status == 200 {
			mu.Lock()
			fetched[e.RequestID] = e.Response.URL
			mu.Unlock()
		}
	}); err != nil {
		return err
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(`#reg iframe`)), chromedp.Sleep(200*time.Millisecond)); err != nil {
		return fmt.Errorf("the registration form did not load: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fetched) == 0 {
		return errors.New("the browser fetched no registration loader")
	}
	total := 0
	for id, u := range fetched {
		res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
		if err != nil {
			return fmt.Errorf("body of %s: %w", u, err)
		}
		n := gzipSize(res.Body)
		fmt.Fprintf(os.Stderr, "register file %s: %d bytes, %d gzip -9\n", u[strings.LastIndex(u, "/")+1:], len(res.Body), n)
		total += n
	}
	fmt.Printf("register_gzip_bytes=%d\n", total)
	return nil
}

// visit opens the page in a fresh browser context and returns banner_visible_ms.
func visit(root context.Context, url string) (float64, error) {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 20*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return 0, err
	}
	v, err := chromedp.Run(ctx, chromedp.Poll[float64](`window.__bannerMs`, chromedp.WithPollingInterval(5*time.Millisecond)))
	if err != nil {
		return 0, fmt.Errorf("the banner did not show: %w", err)
	}
	return v, nil
}

// widgetBytes opens both layers in a fresh context and sums the gzip -9 sizes of every
// answer Lupa gave except the configuration (tenant content).
func widgetBytes(root context.Context, url, lupa string) error {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 30*time.Second)
	defer cancelT()
	var mu sync.Mutex
	fetched := map[network.RequestID]string{}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.HasPrefix(e.Response.URL, lupa) &&
			e.Response.Status == 200 && !strings.Contains(e.Response.URL, "/config") {
			mu.Lock()
			fetched[e.RequestID] = e.Response.URL
			mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	settings := chromedp.CSS(`[data-lupa-action="settings"]`)
	err = chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(settings), chromedp.Click(settings),
		chromedp.WaitVisible(chromedp.CSS(`#lupa-settings`)), chromedp.Sleep(300*time.Millisecond))
	if err != nil {
		return fmt.Errorf("open the settings layer: %v", err)
	}
	total := 0
	mu.Lock()
	defer mu.Unlock()
	if len(fetched) == 0 {
		return errors.New("the browser fetched nothing from Lupa")
	}
	for id, u := range fetched {
		res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
		if err != nil {
			return fmt.Errorf("body of %s: %w", u, err)
		}
		body := res.Body
		n := gzipSize(body)
		name := u[strings.LastIndex(u, "/")+1:]
		fmt.Fprintf(os.Stderr, "widget file %s: %d bytes, %d gzip -9\n", name, len(body), n)
		total += n
	}
	fmt.Printf("widget_files=%d\n", len(fetched))
	fmt.Printf("widget_gzip_bytes=%d\n", total)
	return nil
}

func gzipSize(b []byte) int {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Len()
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// regPage is a page with the widget and a registration form.
const regPage = `<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Join</title>
<script src="LUPA/v1/widget.js" data-property="PK" async></script>
</head><body><h1>Join</h1><div id="reg" data-lupa-register></div></body></html>`

// startSite serves the page at http://localhost:PORT/ and the registration page at /join
// (their own origin, not Lupa's).
func startSite(html, join string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/join" {
			_, _ = io.WriteString(w, join)
			return
		}
		_, _ = io.WriteString(w, html)
	})}
	go func() { _ = srv.Serve(l) }()
	return fmt.Sprintf("http://localhost:%d/", l.Addr().(*net.TCPAddr).Port), func() { _ = srv.Close() }, nil
}

// allowOrigin adds the site's origin to the web shop property's allow-list.
func allowOrigin(lupa string, t target, origin string) error {
	var list struct {
		Items []struct {
			ID             string   `json:"id"`
			PublicKey      string   `json:"public_key"`
			AllowedOrigins []string `json:"allowed_origins"`
		} `json:"items"`
	}
	if err := call(lupa, t.AdminKey, http.MethodGet, "/v1/admin/properties", nil, &list); err != nil {
		return err
	}
	for _, p := range list.Items {
		if p.PublicKey == t.PropertyKey {
			body := map[string]any{"allowed_origins": append(p.AllowedOrigins, origin)}
			return call(lupa, t.AdminKey, http.MethodPatch, "/v1/admin/properties/"+p.ID, body, nil)
		}
	}
	return errors.New("the web shop property is not in the admin API's list")
}

func call(base, key, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, r)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
