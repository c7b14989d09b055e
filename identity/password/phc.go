package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformed is wrapped by every error about a stored hash that cannot be used: not
// argon2id, another version, parameters out of bounds, or bad encoding.
var ErrMalformed = errors.New("password: malformed hash")

// Bounds on what a stored hash may ask for. A stored string is trusted only as far as the
// database is; a tampered row must not make one sign-in allocate gigabytes or spin for
// minutes, so values beyond these are refused before any hashing.
const (
	maxMemory  = 1 << 20 // KiB, that is 1 GiB
	maxTime    = 16
	maxThreads = 16
	minSaltLen = 8 // RFC 9106 recommends 16; 8 is argon2's own minimum
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	maxPHCLen  = 256 // far above any string within the bounds above
)

// phcEncoding is what the reference implementation writes: standard alphabet, no padding.
// Strict refuses non-zero trailing bits so that each hash has exactly one spelling.
var phcEncoding = base64.RawStdEncoding.Strict()

type decoded struct {
	params Params
	salt   []byte
	key    []byte
}

// encode writes the PHC string $argon2id$v=19$m=…,t=…,p=…$salt$key.
func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		phcEncoding.EncodeToString(salt), phcEncoding.EncodeToString(key))
}

// decode parses and bounds-checks a PHC string. It accepts only what encode writes, in
// that order; PHC's optional keyid and data fields are never written by Lupa.
func decode(s string) (decoded, error) {
	var d decoded
	if len(s) > maxPHCLen {
		return d, malformed("longer than %d bytes", maxPHCLen)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return d, malformed("want 5 fields")
	}
	if f[1] != "argon2id" {
		return d, malformed("algorithm is not argon2id")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return d, malformed("unsupported version")
	}
	p, err := decodeParams(f[3])
	if err != nil {
		return d, err
	}
	if d.salt, err = decodeB64(f[4], "salt", minSaltLen, maxSaltLen); err != nil {
		return d, err
	}
	if d.key, err = decodeB64(f[5], "key", minKeyLen, maxKeyLen); err != nil {
		return d, err
	}
	p.SaltLen, p.KeyLen = uint32(len(d.salt)), uint32(len(d.key))
	d.params = p
	return d, nil
}

// decodeParams parses "m=…,t=…,p=…" in that order and within the package's bounds.
func decodeParams(s string) (Params, error) {
	var p Params
	kv := strings.Split(s, ",")
	if len(kv) != 3 {
		return p, malformed("want parameters m, t and p")
	}
	m, err := decodeUint(kv[0], "m", 1, maxMemory)
	if err != nil {
		return p, err
	}
	t, err := decodeUint(kv[1], "t", 1, maxTime)
	if err != nil {
		return p, err
	}
	th, err := decodeUint(kv[2], "p", 1, maxThreads)
	if err != nil {
		return p, err
	}
	// argon2 needs at least 8 KiB per lane (RFC 9106 3.1).
	if m < 8*th {
		return p, malformed("m below 8 × p")
	}
	p.Memory, p.Time, p.Threads = uint32(m), uint32(t), uint8(th)
	return p, nil
}

// decodeUint parses "name=value" where value is canonical decimal (no sign, no leading
// zero) within [lo, hi].
func decodeUint(s, name string, lo, hi uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, malformed("want %s=", name)
	}
	if v == "" || len(v) > 10 || (len(v) > 1 && v[0] == '0') {
		return 0, malformed("%s is not a canonical number", name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, malformed("%s is not a number", name)
	}
	if n < lo || n > hi {
		return 0, malformed("%s outside %d..%d", name, lo, hi)
	}
	return n, nil
}

// decodeB64 decodes one base64 field after checking its encoded length, so an oversized
// field is refused before it is decoded.
func decodeB64(s, name string, lo, hi int) ([]byte, error) {
	if n := phcEncoding.DecodedLen(len(s)); n < lo || n > hi {
		return nil, malformed("%s length outside %d..%d bytes", name, lo, hi)
	}
	b, err := phcEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed("%s is not unpadded standard base64", name)
	}
	return b, nil
}

// malformed builds an ErrMalformed error. The detail never quotes the input: a hash is a
// secret of sorts and errors end up in logs.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
