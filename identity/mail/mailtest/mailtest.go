// Package mailtest runs a real SMTP server inside a test, so that code which sends mail
// (registration, password reset, sign-in links) can be tested end to end: the message
// crosses a TCP connection and is parsed back the way a mail client would.
//
// Point an identity/mail SMTP sender at it with TLS mode "none":
//
//	srv := mailtest.NewServer(t)
//	sender, _ := mail.NewSMTP(mail.SMTPConfig{Host: srv.Host(), Port: srv.Port(), From: "lupa@example.com", TLS: mail.NoTLS})
//	… code under test sends to "a@example.fi" …
//	got := srv.WaitFor(t, "a@example.fi", 5*time.Second)
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Received is one message as the server got it, decoded.
type Received struct {
	From    string   // envelope sender (MAIL FROM)
	Rcpt    []string // envelope recipients (RCPT TO)
	Header  netmail.Header
	To      string // the address in the To header, without display name
	Subject string // RFC 2047 decoded
	Text    string // the text/plain part, transfer-decoded, line breaks as "\n"
	HTML    string // the text/html part, if any, decoded the same way
	Raw     []byte // the message as received, CRLF line breaks
}

// Server is an SMTP server on 127.0.0.1 that keeps every message it accepts.
type Server struct {
	srv *smtp.Server
	ln  net.Listener

	mu      sync.Mutex
	msgs    []Received
	taken   []bool        // which msgs WaitFor has already returned
	arrived chan struct{} // closed (and replaced) when a message arrives
}

// NewServer starts a server on a free port of 127.0.0.1 and stops it when the test ends.
// It accepts any sender and recipient, without TLS or AUTH.
func NewServer(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s := &Server{ln: ln, arrived: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{server: s}, nil
	}))
	s.srv.Domain = "mailtest.localhost"
	s.srv.MaxMessageBytes = 4 << 20
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	// Client mistakes show up on the client's side; the server's own log is noise.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the server's IP address.
func (s *Server) Host() string { return s.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Messages returns every message received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitFor returns the oldest message to the address to (an envelope recipient or the To
// header, compared without regard to case) that WaitFor has not returned before, waiting
// up to timeout for it to arrive. Each message is returned once, so a test that sends two
// mails to one person and waits twice gets both, in order. It fails the test on timeout,
// so call it from the test's goroutine.
func (s *Server) WaitFor(t testing.TB, to string, timeout time.Duration) Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r, ok, arrived := s.take(to)
		if ok {
			return r
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: no new message to %s within %v (%d received in all)", to, timeout, len(s.Messages()))
			return Received{}
		}
	}
}

// take marks and returns the oldest untaken message to the address, or else the channel
// that the next arrival closes.
func (s *Server) take(to string) (Received, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.msgs {
		if !s.taken[i] && addressedTo(r, to) {
			s.taken[i] = true
			return r, true, nil
		}
	}
	return Received{}, false, s.arrived
}

func addressedTo(r Received, to string) bool {
	if strings.EqualFold(r.To, to) {
		return true
	}
	for _, rcpt := range r.Rcpt {
		if strings.EqualFold(rcpt, to) {
			return true
		}
	}
	return false
}

func (s *Server) add(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	s.taken = append(s.taken, false)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// session is one SMTP connection's state.
type session struct {
	server *Server
	from   string
	rcpt   []string
}

func (c *session) Reset()        { c.from, c.rcpt = "", nil }
func (c *session) Logout() error { return nil }

func (c *session) Mail(from string, _ *smtp.MailOptions) error {
	c.from = from
	return nil
}

func (c *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	c.rcpt = append(c.rcpt, to)
	return nil
}

// Data parses the message before accepting it: a message the parser cannot read is
// refused with 554, so the sending test fails where the bad message was made.
func (c *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	rec, err := Parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	rec.From, rec.Rcpt = c.from, append([]string(nil), c.rcpt...)
	c.server.add(rec)
	return nil
}

// Parse decodes a raw RFC 5322 message the way a mail client would: headers, the RFC 2047
// subject, and the text and HTML bodies of a single-part or (nested) multipart message.
// The envelope fields of the result are empty.
func Parse(raw []byte) (Received, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Received{}, fmt.Errorf("header: %w", err)
	}
	rec := Received{Header: msg.Header, Raw: raw}
	if rec.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return rec, fmt.Errorf("subject: %w", err)
	}
	to, err := netmail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		return rec, fmt.Errorf("To: %w", err)
	}
	rec.To = to.Address
	err = walk(&rec, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return rec, err
}

// walk decodes one entity into rec: the first text/plain and text/html parts found, depth
// first, win.
func walk(rec *Received, contentType, encoding string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain; charset=us-ascii" // RFC 2045 5.2
	}
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	if strings.HasPrefix(media, "multipart/") {
		return walkMultipart(rec, params["boundary"], body)
	}
	if media != "text/plain" && media != "text/html" {
		return nil
	}
	text, err := decodeBody(encoding, body)
	if err != nil {
		return err
	}
	if media == "text/plain" && rec.Text == "" {
		rec.Text = text
	} else if media == "text/html" && rec.HTML == "" {
		rec.HTML = text
	}
	return nil
}

func walkMultipart(rec *Received, boundary string, body io.Reader) error {
	if boundary == "" {
		return errors.New("multipart without boundary")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		// NextRawPart leaves the transfer encoding to us, so a wrong one is caught.
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("multipart: %w", err)
		}
		err = walk(rec, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		if err != nil {
			return err
		}
	}
}

// decodeBody undoes the transfer encoding and normalises CRLF to "\n", the line break a
// Go string of the original text has.
func decodeBody(encoding string, body io.Reader) (string, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "", "7bit", "8bit", "binary":
		r = body
	default:
		return "", fmt.Errorf("unknown transfer encoding %q", encoding)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("body: %w", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n"), nil
}
