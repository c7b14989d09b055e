package safehttp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fd00:ec2::254", false}, {"100.100.100.200", false}, {"0.0.0.0", false},
		{"::", false}, {"fe80::1", false}, {"224.0.0.1", false}, {"255.255.255.255", false}, {"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false}, {"64:ff9b::a00:1", false}, {"198.18.0.1", false},
		{"93.184.215.14", true}, {"2a00:1450:4001:80b::200e", true}, {"::ffff:93.184.215.14", true},
	} {
		if got := Public(netip.MustParseAddr(tc.ip)); got != tc.public {
			t.Errorf("Public(%s) = %v, want %v", tc.ip, got, tc.public)
		}
	}
}

// TestClientRefusesInternal: the check happens at dial time, so a loopback server and the
// metadata address are refused at once (nothing is sent), and allowed when private
// addresses are allowed.
func TestClientRefusesInternal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	strict := New(Options{Timeout: 2 * time.Second})
	for _, url := range []string{srv.URL, "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://localhost:9/"} {
		start := time.Now()
		res, err := strict.Get(url)
		if err == nil {
			res.Body.Close()
			t.Fatalf("GET %s: no error", url)
		}
		if !errors.Is(err, ErrBlocked) {
			t.Fatalf("GET %s: %v, want ErrBlocked", url, err)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("GET %s took %s: refused before connecting?", url, time.Since(start))
		}
	}
	open := New(Options{AllowPrivate: true})
	res, err := open.Get(srv.URL)
	if err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("status %d", res.StatusCode)
	}
}
