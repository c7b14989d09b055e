package mailtest

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// send delivers raw with the standard library's client, independently of identity/mail.
func send(t *testing.T, s *Server, from string, to []string, raw string) {
	t.Helper()
	if err := smtp.SendMail(s.Addr(), nil, from, to, []byte(raw)); err != nil {
		t.Fatal(err)
	}
}

func TestWaitForReturnsEachMessageOnce(t *testing.T) {
	s := NewServer(t)
	for _, subject := range []string{"first", "second"} {
		send(t, s, "lupa@example.com", []string{"a@example.fi"},
			"To: a@example.fi\r\nSubject: "+subject+"\r\n\r\nbody\r\n")
	}
	send(t, s, "lupa@example.com", []string{"b@example.fi"}, "To: b@example.fi\r\nSubject: other\r\n\r\nx\r\n")

	for _, want := range []string{"first", "second"} {
		if got := s.WaitFor(t, "A@Example.fi", time.Second); got.Subject != want {
			t.Fatalf("WaitFor = %q, want %q", got.Subject, want)
		}
	}
	if got := s.WaitFor(t, "b@example.fi", time.Second); got.From != "lupa@example.com" || got.Text != "x\n" {
		t.Fatalf("WaitFor(b) = %+v", got)
	}
	if n := len(s.Messages()); n != 3 {
		t.Fatalf("Messages() has %d, want 3", n)
	}
}

func TestWaitForWaitsForArrival(t *testing.T) {
	s := NewServer(t)
	go func() {
		_ = smtp.SendMail(s.Addr(), nil, "lupa@example.com", []string{"late@example.fi"},
			[]byte("To: late@example.fi\r\nSubject: late\r\n\r\nx\r\n"))
	}()
	if got := s.WaitFor(t, "late@example.fi", 10*time.Second); got.Subject != "late" {
		t.Fatalf("got %+v", got)
	}
}

func TestParseNestedBase64(t *testing.T) {
	raw := strings.ReplaceAll(`To: "Åsa" <asa@example.se>
Subject: =?utf-8?b?SGVqIMOFc2E=?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVqIMOFc2EK
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Hej =C3=85sa</p>
--inner--
--outer
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
`, "\n", "\r\n")
	got, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got.To != "asa@example.se" || got.Subject != "Hej Åsa" || got.Text != "Hej Åsa\n" || got.HTML != "<p>Hej Åsa</p>" {
		t.Fatalf("Parse = To %q, Subject %q, Text %q, HTML %q", got.To, got.Subject, got.Text, got.HTML)
	}
}

func TestParseRefusesUnknownEncoding(t *testing.T) {
	raw := "To: a@example.fi\r\nSubject: s\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbody\r\n"
	if _, err := Parse([]byte(raw)); err == nil {
		t.Fatal("Parse accepted an unknown transfer encoding")
	}
}

func TestUnparsableMessageIsRefused(t *testing.T) {
	s := NewServer(t)
	err := smtp.SendMail(s.Addr(), nil, "lupa@example.com", []string{"a@example.fi"},
		[]byte("To: a@example.fi\r\nSubject: s\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbody\r\n"))
	if err == nil || !strings.Contains(err.Error(), "554") {
		t.Fatalf("err = %v, want a 554 refusal", err)
	}
}
