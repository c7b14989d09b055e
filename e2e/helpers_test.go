package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the final checks
)

// The lupa binary, built once per test process with `go build`, as an operator runs it.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the built binary when the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func lupaBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lupa-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lupa")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/lupa-cmp/lupa/cmd/lupa")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer is an output a running process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lupaProc is one `lupa serve` process.
type lupaProc struct {
	cmd    *exec.Cmd
	Addr   string
	URL    string
	Stdout *syncBuffer
	Stderr *syncBuffer
	done   chan struct{}
}

// freeAddr returns a loopback address nobody listened on a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startLupa runs `lupa serve` on addr with env and waits until /healthz answers 200.
func startLupa(t testing.TB, addr string, env map[string]string) *lupaProc {
	t.Helper()
	return launchLupa(t, addr, env, false)
}

// startLupaOnFreePort starts lupa serve on a free port. The port is picked before serve
// binds it, so another connection can take it in between; serve then stops at once, before
// it touches the database, and the start is tried again on another port.
func startLupaOnFreePort(t testing.TB, env map[string]string) *lupaProc {
	t.Helper()
	for try := 1; ; try++ {
		if p := launchLupa(t, freeAddr(t), env, try < 3); p != nil {
			return p
		}
	}
}

// launchLupa is startLupa; with retryBusy it returns nil when the address was taken.
func launchLupa(t testing.TB, addr string, env map[string]string, retryBusy bool) *lupaProc {
	t.Helper()
	p := &lupaProc{Addr: addr, URL: "http://" + addr, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(lupaBinary(t), "serve")
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LUPA_ADDR=" + addr,
		"LUPA_METRICS_ADDR=off", "LUPA_LOG_LEVEL=warn"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			if retryBusy && strings.Contains(p.Stderr.String(), "address already in use") {
				return nil
			}
			t.Fatalf("lupa serve exited before it was healthy:\n%s\n%s", p.Stdout, p.Stderr)
		default:
		}
		if res, err := c.Get(p.URL + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lupa serve did not become healthy within 60 s:\n%s", p.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL (kill -9) and waits for it.
func (p *lupaProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process with SIGTERM, as an operator's shutdown does.
func (p *lupaProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

var (
	adminKeyRe = regexp.MustCompile(`(?i)admin API key \(shown once\): (sk_\S+)`)
	appKeyRe   = regexp.MustCompile(`App property key:\s+(pk_\S+)`)
)

// demoKeys reads the demo tenant's admin API key and app property key from the first
// start's output.
func demoKeys(t testing.TB, p *lupaProc) (admin, app string) {
	t.Helper()
	out := p.Stdout.String()
	a, b := adminKeyRe.FindStringSubmatch(out), appKeyRe.FindStringSubmatch(out)
	if a == nil || b == nil {
		t.Fatalf("no demo keys in lupa's output:\n%s", out)
	}
	return a[1], b[1]
}

func newMasterKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// call sends a JSON request and returns the status and body; err is a transport error.
func call(ctx context.Context, c *http.Client, method, url string, body any, headers ...string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// mustCall is call for set-up requests that must succeed with want.
func mustCall(t testing.TB, method, url string, body any, want int, headers ...string) []byte {
	t.Helper()
	status, b, err := call(context.Background(), &http.Client{Timeout: 30 * time.Second}, method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if status != want {
		t.Fatalf("%s %s: %d %s", method, url, status, b)
	}
	return b
}

// openDB opens the database Lupa runs on, for the final checks.
func openDB(t testing.TB, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
