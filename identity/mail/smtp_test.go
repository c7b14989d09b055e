package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

const finnishSubject = "Vahvista sähköpostiosoitteesi"

// finnishText has what quoted-printable must get right: non-ASCII letters, a line that
// starts with a dot, trailing white space and a line longer than 76 characters.
var finnishText = "Hei!\n\nVahvista sähköpostiosoitteesi avaamalla linkki:\nhttps://lupa.example/v?t=abc123\n\nÄlä vastaa tähän viestiin. Åbo, Öja.\n.piste rivin alussa\nrivi, jonka lopussa on välilyönti \n" +
	strings.Repeat("pitkä rivi ", 20) + "\n"

func newTestSMTP(t *testing.T, cfg SMTPConfig) *SMTP {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "Lupa Tietosuoja <noreply@lupa.example>"
	}
	s, err := NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Date(2026, 11, 26, 15, 4, 5, 0, time.FixedZone("EET", 2*3600)) }
	return s
}

func plainServer(t *testing.T) (*mailtest.Server, *SMTP) {
	srv := mailtest.NewServer(t)
	return srv, newTestSMTP(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: NoTLS})
}

func TestSendPlainText(t *testing.T) {
	srv, s := plainServer(t)
	err := s.Send(context.Background(), Message{
		To: "Matti Meikäläinen <matti@example.fi>", Subject: finnishSubject, Text: finnishText, Language: "fi",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, "matti@example.fi", 5*time.Second)

	if got.From != "noreply@lupa.example" || len(got.Rcpt) != 1 || got.Rcpt[0] != "matti@example.fi" {
		t.Errorf("envelope from %q to %q", got.From, got.Rcpt)
	}
	if got.Subject != finnishSubject {
		t.Errorf("subject %q, want %q", got.Subject, finnishSubject)
	}
	if got.Text != finnishText {
		t.Errorf("text does not round-trip:\n got %q\nwant %q", got.Text, finnishText)
	}
	h := got.Header
	wantHeaders := map[string]string{
		"Date":                      "Thu, 26 Nov 2026 15:04:05 +0200",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Content-Language":          "fi",
		"Auto-Submitted":            "auto-generated",
	}
	for k, want := range wantHeaders {
		if v := h.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Lupa Tietosuoja" || from[0].Address != "noreply@lupa.example" {
		t.Errorf("From %v, %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || to[0].Name != "Matti Meikäläinen" || to[0].Address != "matti@example.fi" {
		t.Errorf("To %v, %v", to, err)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@lupa.example>") || len(id) < 20 {
		t.Errorf("Message-ID %q", id)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date does not parse: %v", err)
	}
	checkSevenBit(t, got.Raw)
	if !strings.Contains(string(got.Raw), "Subject: =?utf-8?q?") {
		t.Errorf("subject not Q-encoded:\n%s", got.Raw)
	}
}

// checkSevenBit checks that the message is 7-bit ASCII in lines of at most 78 characters
// that do not end in white space, which every relay passes unchanged.
func checkSevenBit(t *testing.T, raw []byte) {
	t.Helper()
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line %d is %d characters: %q", i+1, len(line), line)
		}
		if strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
			t.Errorf("line %d ends in white space: %q", i+1, line)
		}
		for _, c := range []byte(line) {
			if c >= 0x80 || c == '\n' || c == '\r' {
				t.Fatalf("line %d has byte %#x: %q", i+1, c, line)
			}
		}
	}
}

func TestSendMultipartAlternative(t *testing.T) {
	srv, s := plainServer(t)
	const html = "<p>Hei!</p><p><a href=\"https://lupa.example/v?t=abc123\">Vahvista sähköpostiosoitteesi</a></p>\n"
	err := s.Send(context.Background(), Message{
		To: "liisa@example.fi", Subject: finnishSubject, Text: finnishText, HTML: html, Language: "fi",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, "liisa@example.fi", 5*time.Second)
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative; boundary=") {
		t.Fatalf("Content-Type %q", ct)
	}
	if got.Text != finnishText || got.HTML != html {
		t.Fatalf("parts do not round-trip:\ntext %q\nhtml %q", got.Text, got.HTML)
	}
	raw := string(got.Raw)
	plain, htmlAt := strings.Index(raw, "Content-Type: text/plain"), strings.Index(raw, "Content-Type: text/html")
	if plain < 0 || htmlAt < plain {
		t.Fatal("text/plain must come before text/html")
	}
	if n := strings.Count(raw, "Content-Transfer-Encoding: quoted-printable"); n != 2 {
		t.Fatalf("%d quoted-printable parts, want 2", n)
	}
	checkSevenBit(t, got.Raw)
}

func TestLongSubjectIsFolded(t *testing.T) {
	subject := strings.Repeat("Vahvista sähköpostiosoitteesi – ", 8)
	srv, s := plainServer(t)
	if err := s.Send(context.Background(), Message{To: "a@example.fi", Subject: subject, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitFor(t, "a@example.fi", 5*time.Second)
	if got.Subject != subject {
		t.Fatalf("subject %q, want %q", got.Subject, subject)
	}
	checkSevenBit(t, got.Raw)
}

func TestInvalidMessagesRefused(t *testing.T) {
	ok := Message{To: "a@example.fi", Subject: "Hei", Text: "x"}
	cases := map[string]func(*Message){
		"CRLF in To":         func(m *Message) { m.To = "a@example.fi\r\nBcc: victim@example.com" },
		"LF in To":           func(m *Message) { m.To = "a@example.fi\nBcc: victim@example.com" },
		"CR in To":           func(m *Message) { m.To = "a@example.fi\rBcc: victim@example.com" },
		"CRLF in Subject":    func(m *Message) { m.Subject = "Hei\r\nBcc: victim@example.com" },
		"LF in Subject":      func(m *Message) { m.Subject = "Hei\n\nfake body" },
		"LF in Language":     func(m *Message) { m.Language = "fi\nX-Evil: 1" },
		"bad language":       func(m *Message) { m.Language = "fi; x" },
		"no address":         func(m *Message) { m.To = "not an address" },
		"two addresses":      func(m *Message) { m.To = "a@example.fi, b@example.fi" },
		"empty subject":      func(m *Message) { m.Subject = " " },
		"huge subject":       func(m *Message) { m.Subject = strings.Repeat("x", 501) },
		"huge recipient":     func(m *Message) { m.To = strings.Repeat("x", 310) + "@example.fi" },
		"empty text":         func(m *Message) { m.Text = "" },
		"NUL in Subject":     func(m *Message) { m.Subject = "Hei\x00" },
		"injection via name": func(m *Message) { m.To = "\"x\r\nBcc: v@example.com\" <a@example.fi>" },
	}
	srv, s := plainServer(t)
	box := NewMailbox(discardLogger(), 0)
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m := ok
			mutate(&m)
			if err := s.Send(context.Background(), m); !errors.Is(err, ErrInvalid) {
				t.Errorf("SMTP.Send: err = %v, want ErrInvalid", err)
			}
			if err := box.Send(context.Background(), m); !errors.Is(err, ErrInvalid) {
				t.Errorf("Mailbox.Send: err = %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestConfigRefused(t *testing.T) {
	cases := map[string]SMTPConfig{
		"no host":            {From: "a@lupa.example"},
		"bad From":           {Host: "smtp.example", From: "nobody"},
		"unknown mode":       {Host: "smtp.example", From: "a@lupa.example", TLS: "ssl"},
		"AUTH in none":       {Host: "smtp.example", From: "a@lupa.example", TLS: NoTLS, Username: "u", Password: "p"},
		"password, no user":  {Host: "smtp.example", From: "a@lupa.example", Password: "p"},
		"line break in From": {Host: "smtp.example", From: "a@lupa.example\r\nBcc: x@y"},
		"port":               {Host: "smtp.example", From: "a@lupa.example", Port: 70000},
	}
	for name, cfg := range cases {
		if _, err := NewSMTP(cfg); err == nil {
			t.Errorf("%s: NewSMTP accepted %+v", name, cfg)
		}
	}
	s, err := NewSMTP(SMTPConfig{Host: "smtp.example", From: "a@lupa.example"})
	if err != nil || s.cfg.TLS != StartTLS || s.cfg.Port != 587 || s.cfg.HelloName != "lupa.example" {
		t.Fatalf("defaults: %+v, %v", s.cfg, err)
	}
}

// fake is a go-smtp server whose behaviour the test sets: TLS, AUTH and refusals.
type fake struct {
	addr *net.TCPAddr

	mu       sync.Mutex
	auths    []string // "user:password" of each AUTH attempt
	tlsAtAll []bool   // per DATA: was the connection TLS
	mails    int
}

type fakeOptions struct {
	tls      *tls.Config // offered through STARTTLS, or spoken at once when implicit
	implicit bool
	rcptErr  error
}

func startFake(t *testing.T, o fakeOptions) *fake {
	t.Helper()
	f := &fake{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &fakeSession{f: f, conn: c, rcptErr: o.rcptErr}, nil
	}))
	srv.Domain = "fake.localhost"
	// The server would take AUTH in clear: refusing it must be the client's doing.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	var err error
	if o.implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", o.tls)
	} else {
		srv.TLSConfig = o.tls
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().(*net.TCPAddr)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

type fakeSession struct {
	f       *fake
	conn    *smtp.Conn
	rcptErr error
}

func (s *fakeSession) Reset()                                   {}
func (s *fakeSession) Logout() error                            { return nil }
func (s *fakeSession) Mail(string, *smtp.MailOptions) error     { return nil }
func (s *fakeSession) AuthMechanisms() []string                 { return []string{sasl.Plain} }
func (s *fakeSession) Rcpt(_ string, _ *smtp.RcptOptions) error { return s.rcptErr }

func (s *fakeSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.f.mu.Lock()
		defer s.f.mu.Unlock()
		s.f.auths = append(s.f.auths, user+":"+pass)
		return nil
	}), nil
}

func (s *fakeSession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.mails++
	s.f.tlsAtAll = append(s.f.tlsAtAll, isTLS)
	return nil
}

func (f *fake) state() (auths []string, tlsAtData []bool, mails int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...), append([]bool(nil), f.tlsAtAll...), f.mails
}

var testMessage = Message{To: "a@example.fi", Subject: finnishSubject, Text: finnishText}

func TestStartTLSRefusesClearText(t *testing.T) {
	f := startFake(t, fakeOptions{}) // offers no STARTTLS
	for _, user := range []string{"lupa", ""} {
		cfg := SMTPConfig{Host: "127.0.0.1", Port: f.addr.Port, Username: user}
		if user != "" {
			cfg.Password = "salainen"
		}
		err := newTestSMTP(t, cfg).Send(context.Background(), testMessage)
		if !errors.Is(err, ErrNoTLS) {
			t.Fatalf("user %q: err = %v, want ErrNoTLS", user, err)
		}
	}
	if auths, _, mails := f.state(); len(auths) != 0 || mails != 0 {
		t.Fatalf("server saw %d AUTH and %d messages in clear", len(auths), mails)
	}
}

func TestStartTLSWithAuth(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	f := startFake(t, fakeOptions{tls: serverTLS})
	s := newTestSMTP(t, SMTPConfig{
		Host: "127.0.0.1", Port: f.addr.Port, Username: "lupa", Password: "salainen",
		TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err := s.Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	auths, tlsAtData, mails := f.state()
	if len(auths) != 1 || auths[0] != "lupa:salainen" || mails != 1 || !tlsAtData[0] {
		t.Fatalf("auths %q, TLS at DATA %v, %d mails", auths, tlsAtData, mails)
	}
}

func TestStartTLSUntrustedCertificate(t *testing.T) {
	serverTLS, _ := selfSigned(t)
	f := startFake(t, fakeOptions{tls: serverTLS})
	s := newTestSMTP(t, SMTPConfig{Host: "127.0.0.1", Port: f.addr.Port, Username: "lupa", Password: "salainen"})
	var unknown x509.UnknownAuthorityError
	if err := s.Send(context.Background(), testMessage); !errors.As(err, &unknown) {
		t.Fatalf("err = %v, want an unknown-authority error", err)
	}
	if auths, _, _ := f.state(); len(auths) != 0 {
		t.Fatal("credentials sent to an untrusted server")
	}
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	f := startFake(t, fakeOptions{tls: serverTLS, implicit: true})
	s := newTestSMTP(t, SMTPConfig{
		Host: "127.0.0.1", Port: f.addr.Port, TLS: ImplicitTLS, Username: "lupa", Password: "salainen",
		TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err := s.Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	if auths, tlsAtData, _ := f.state(); len(auths) != 1 || !tlsAtData[0] {
		t.Fatalf("auths %q, TLS at DATA %v", auths, tlsAtData)
	}
}

func TestServerRefusal(t *testing.T) {
	cases := []struct {
		code      int
		temporary bool
	}{{550, false}, {451, true}}
	for _, c := range cases {
		f := startFake(t, fakeOptions{rcptErr: &smtp.SMTPError{
			Code: c.code, EnhancedCode: smtp.EnhancedCode{c.code / 100, 1, 1},
			Message: "<a@example.fi>: mailbox unavailable",
		}})
		s := newTestSMTP(t, SMTPConfig{Host: "127.0.0.1", Port: f.addr.Port, TLS: NoTLS})
		err := s.Send(context.Background(), testMessage)
		var se *ServerError
		if !errors.As(err, &se) || se.Code != c.code || se.Stage != "RCPT TO" || se.Temporary() != c.temporary {
			t.Fatalf("err = %#v, want a ServerError %d at RCPT TO", err, c.code)
		}
		if strings.Contains(err.Error(), "example.fi") {
			t.Errorf("error message leaks the address: %q", err)
		}
	}
}

// hangingServer accepts connections and never says anything. accepted receives each
// accepted connection so the test knows the client is waiting for the greeting.
func hangingServer(t *testing.T) (port int, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 4)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			ch <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, ch
}

func TestCancelStopsHangingServer(t *testing.T) {
	port, accepted := hangingServer(t)
	s := newTestSMTP(t, SMTPConfig{Host: "127.0.0.1", Port: port, TLS: NoTLS})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, testMessage) }()
	<-accepted
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return after cancel")
	}
}

func TestSendTimeoutStopsHangingServer(t *testing.T) {
	port, _ := hangingServer(t)
	s := newTestSMTP(t, SMTPConfig{Host: "127.0.0.1", Port: port, TLS: NoTLS, SendTimeout: 50 * time.Millisecond})
	if err := s.Send(context.Background(), testMessage); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// selfSigned returns a server TLS config for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mail test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}
