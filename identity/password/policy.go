package password

import (
	"errors"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Policy limits.
const (
	MinRunes = 12   // NIST SP 800-63B-4 asks for at least 15 without MFA; OWASP and most sites settle on 12
	MaxBytes = 1024 // bounds hashing input and request bodies, while allowing long passphrases
)

// Policy errors. Their messages are shown to the person choosing the password, after the
// field's name ("Password must be at least 12 characters"), so they are plain English and
// compare equal with errors.Is.
var (
	ErrTooShort    = errors.New("must be at least 12 characters")
	ErrTooLong     = errors.New("must be at most 1024 bytes long")
	ErrInvalidText = errors.New("must contain only valid text characters")
	ErrRepeated    = errors.New("must not be one character repeated")
)

// Policy checks a new password. Nothing is trimmed: spaces are characters like any other.
// Length is counted in characters (runes) of the normalised form, so "ä" counts once
// however the keyboard produced it.
func Policy(password string) error {
	if !utf8.ValidString(password) {
		return ErrInvalidText
	}
	if len(password) > MaxBytes {
		return ErrTooLong
	}
	p := norm.NFKC.String(password)
	if utf8.RuneCountInString(p) < MinRunes {
		return ErrTooShort
	}
	if oneRune(p) {
		return ErrRepeated
	}
	return nil
}

// oneRune reports whether s consists of a single rune repeated.
func oneRune(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}
