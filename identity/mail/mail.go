// Package mail sends Lupa's own emails: address verification, password reset,
// passwordless sign-in links, double opt-in and consent receipts.
//
// Callers depend on Sender. Production uses SMTP; development uses Mailbox, which keeps
// messages in memory for a developer page instead of sending them.
package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
)

// Message is one email to one person. Text is required because some people read mail as
// plain text only; HTML is an optional alternative of the same content.
type Message struct {
	To       string // an address, optionally with a display name
	Subject  string
	Text     string
	HTML     string
	Language string // BCP 47 tag of the content, e.g. "fi"; becomes Content-Language
}

// Sender delivers a message. Implementations are safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrInvalid is wrapped by every error about a message that cannot be sent as given; a
// retry will not help.
var ErrInvalid = errors.New("mail: invalid message")

// Limits of a message's header values, well within a header line's 998 characters even
// after encoding. A subject this long is a bug, not a message.
const (
	maxTo       = 320 // a 254-character address and a display name
	maxSubject  = 500
	maxLanguage = 35 // RFC 5646's longest well-formed tag that matters in practice
)

// validate checks what every Sender needs before it does anything. It refuses CR and LF
// in header values: they would let a value that reached a header start a new header (or
// the body), the classic mail header injection.
func (m Message) validate() (*netmail.Address, error) {
	if hasLineBreak(m.To) || hasLineBreak(m.Subject) || hasLineBreak(m.Language) {
		return nil, invalid("line break in a header value")
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil || len(m.To) > maxTo {
		return nil, invalid("recipient is not an email address")
	}
	if strings.TrimSpace(m.Subject) == "" || len(m.Subject) > maxSubject {
		return nil, invalid("subject empty or longer than %d bytes", maxSubject)
	}
	if m.Text == "" {
		return nil, invalid("text part is empty")
	}
	if !validLanguage(m.Language) {
		return nil, invalid("language is not a language tag")
	}
	return to, nil
}

func hasLineBreak(s string) bool {
	return strings.ContainsAny(s, "\r\n\x00")
}

// validLanguage accepts the empty tag and the characters of BCP 47 tags, which is all
// that a Content-Language header needs to stay well-formed.
func validLanguage(s string) bool {
	if len(s) > maxLanguage {
		return false
	}
	for _, r := range s {
		ok := r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// domainOf returns the part of an address after the last "@", lower-cased.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// invalid builds an ErrInvalid error. Details never quote the message: it holds an
// address, and errors end up in logs.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
