package mail

import (
	"bytes"
	"crypto/rand"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
)

// compose writes m as an RFC 5322 message in 7-bit ASCII: non-ASCII header values become
// RFC 2047 encoded-words and bodies are quoted-printable, so the message passes any relay
// whether or not it speaks 8BITMIME or SMTPUTF8.
func compose(from, to *netmail.Address, m Message, now time.Time) []byte {
	var b bytes.Buffer
	header(&b, "Date", now.Format(time.RFC1123Z))
	header(&b, "From", from.String())
	header(&b, "To", to.String())
	header(&b, "Subject", encodeSubject(m.Subject))
	header(&b, "Message-ID", "<"+rand.Text()+"@"+domainOf(from.Address)+">")
	header(&b, "MIME-Version", "1.0")
	if m.Language != "" {
		header(&b, "Content-Language", m.Language)
	}
	// RFC 3834: tells vacation responders and the like not to answer a machine.
	header(&b, "Auto-Submitted", "auto-generated")
	if m.HTML == "" {
		header(&b, "Content-Type", "text/plain; charset=utf-8")
		header(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, m.Text)
		return b.Bytes()
	}
	alternative(&b, m.Text, m.HTML)
	return b.Bytes()
}

// alternative writes the Content-Type header and a multipart/alternative body. The plain
// part comes first because readers show the last part they understand (RFC 2046 5.1.4).
func alternative(b *bytes.Buffer, text, html string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	// Go's default boundary (60 hex digits) pushes the header past 78 characters; 130
	// random bits are as unguessable and keep it on one line.
	_ = mw.SetBoundary(rand.Text())
	header(b, "Content-Type", mime.FormatMediaType("multipart/alternative",
		map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	part(mw, "text/plain; charset=utf-8", text)
	part(mw, "text/html; charset=utf-8", html)
	_ = mw.Close() // writes only to a bytes.Buffer, which cannot fail
	b.Write(body.Bytes())
}

func part(mw *multipart.Writer, contentType, content string) {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", contentType)
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	w, _ := mw.CreatePart(h) // writes only to a bytes.Buffer, which cannot fail
	var qp bytes.Buffer
	writeQP(&qp, content)
	_, _ = w.Write(qp.Bytes())
}

// writeQP writes s quoted-printable; line breaks, LF or CRLF, become CRLF.
func writeQP(b *bytes.Buffer, s string) {
	w := quotedprintable.NewWriter(b)
	_, _ = w.Write([]byte(s)) // bytes.Buffer cannot fail
	_ = w.Close()
}

// header writes one header field. A value that starts folded gets no space before the
// fold, so no line ends in white space.
func header(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	if !strings.HasPrefix(value, "\r\n") {
		b.WriteString(" ")
	}
	b.WriteString(value)
	b.WriteString("\r\n")
}

// encodeSubject returns the Subject header's value: s as is when it is printable ASCII,
// otherwise RFC 2047 Q-encoded words. RFC 2047 limits a line holding encoded-words to 76
// characters; the encoder keeps each word within 75, so each goes on a line of its own,
// the first too when it would not fit after "Subject: ". Folding there changes nothing:
// the white space between encoded-words is not part of the decoded text.
func encodeSubject(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	words := strings.Split(enc, " ")
	folded := strings.Join(words, "\r\n ")
	if len("Subject: ")+len(words[0]) > maxEncodedLine {
		return "\r\n " + folded
	}
	return folded
}

const maxEncodedLine = 76
