package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// cheap keeps the functional tests fast; the format and the pool do not depend on cost.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := NewHasher(cheap, 2, 0)
	ctx := context.Background()
	phc, err := h.Hash(ctx, "oikea hevonen patteri niitti")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", phc)
	}
	ok, rehash, err := h.Verify(ctx, "oikea hevonen patteri niitti", phc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, rehash, err = h.Verify(ctx, "oikea hevonen patteri niittI", phc)
	if err != nil || ok || rehash {
		t.Fatalf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	other, _ := h.Hash(ctx, "oikea hevonen patteri niitti")
	if other == phc {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

// TestOWASPFormat checks the production parameters' exact PHC shape once.
func TestOWASPFormat(t *testing.T) {
	h := NewHasher(OWASP, 1, 0)
	phc, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(phc, "$")
	if len(f) != 6 || f[1] != "argon2id" || f[2] != "v=19" || f[3] != "m=19456,t=2,p=1" {
		t.Fatalf("unexpected PHC string %q", phc)
	}
	// 16 and 32 bytes in unpadded base64.
	if len(f[4]) != 22 || len(f[5]) != 43 {
		t.Fatalf("salt/key encoded lengths %d/%d, want 22/43", len(f[4]), len(f[5]))
	}
}

// knownKey is the key for "password" with salt "somesaltsomesalt" under cheap, from the
// reference implementation's command-line tool (Debian package argon2):
//
//	echo -n password | argon2 somesaltsomesalt -id -t 1 -k 64 -p 1 -l 32 -e
const knownKey = "55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM"

// TestKnownVectors checks hashes made by the reference implementation verify here, so the
// encoding and the parameter order agree with other argon2id libraries.
func TestKnownVectors(t *testing.T) {
	cases := []struct{ password, phc string }{
		{"password", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$" + knownKey},
		// argon2 somesaltsomesalt -id -t 2 -k 19456 -p 1 -l 32 -e
		{"sähköinen salasana", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$FJtgrdcgNmw5zhg7tUvHyjT7txSWwGqemyHtxRbbko8"},
	}
	h := NewHasher(OWASP, 1, 0)
	for _, c := range cases {
		ok, _, err := h.Verify(context.Background(), c.password, c.phc)
		if err != nil || !ok {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", c.phc, ok, err)
		}
		if ok, _, _ := h.Verify(context.Background(), c.password+"x", c.phc); ok {
			t.Errorf("Verify(wrong, %q) = true", c.phc)
		}
	}
}

func TestNormalization(t *testing.T) {
	h := NewHasher(cheap, 1, 0)
	ctx := context.Background()
	composed := "sähkö\u00e4"                // precomposed ä
	decomposed := "sa\u0308hko\u0308a\u0308" // a + combining diaeresis
	phc, err := h.Hash(ctx, composed)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := h.Verify(ctx, decomposed, phc); !ok {
		t.Fatal("decomposed spelling of the same password does not verify")
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	old := NewHasher(cheap, 1, 0)
	phc, err := old.Hash(ctx, "vanha mutta hyvä salasana")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 32, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 64},
	} {
		ok, rehash, err := NewHasher(p, 1, 0).Verify(ctx, "vanha mutta hyvä salasana", phc)
		if err != nil || !ok || !rehash {
			t.Errorf("params %+v: Verify = %v, %v, %v; want true, true, nil", p, ok, rehash, err)
		}
	}
	// A wrong password never asks for a rehash: there is nothing to store.
	if _, rehash, _ := NewHasher(OWASP, 1, 0).Verify(ctx, "väärä", phc); rehash {
		t.Error("needsRehash on a wrong password")
	}
}

func TestMalformedRefusedWithoutHashing(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", knownKey
	valid := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	cases := map[string]string{
		"empty":           "",
		"garbage":         "not a hash",
		"bcrypt":          "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"argon2i":         strings.Replace(valid, "argon2id", "argon2i", 1),
		"version 16":      strings.Replace(valid, "v=19", "v=16", 1),
		"no version":      "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"m 4 GiB":         "$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key,
		"m overflow":      "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"m just over cap": "$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key,
		"t huge":          "$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key,
		"t zero":          "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"p 17":            "$argon2id$v=19$m=1024,t=1,p=17$" + salt + "$" + key,
		"p 256":           "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key,
		"m below 8p":      "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key,
		"negative m":      "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key,
		"plus m":          "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"leading zero":    "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"params reorder":  "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"extra param":     "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key,
		"padded salt":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"url alphabet":    "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.ReplaceAll(key, "+", "-") + "-_",
		"short salt":      "$argon2id$v=19$m=64,t=1,p=1$c29tZQ$" + key,
		"huge salt":       "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 200) + "$" + key,
		"short key":       "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$c29tZQ",
		"trailing field":  valid + "$",
		"no leading $":    valid[1:],
		"huge string":     valid + strings.Repeat("A", 1<<20),
	}
	h := NewHasher(OWASP, 1, 1)
	ran := false
	h.hooks.working = func() { ran = true }
	for name, phc := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			ok, rehash, err := h.Verify(context.Background(), "password", phc)
			if !errors.Is(err, ErrMalformed) || ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want ErrMalformed", ok, rehash, err)
			}
			if ran {
				t.Fatal("a malformed hash reached the hashing pool")
			}
			// The hook above is the real check; this only catches a refusal that is slow
			// for another reason, with room for a loaded machine.
			if d := time.Since(start); d > time.Second {
				t.Fatalf("refusing took %v", d)
			}
		})
	}
}

func TestNewHasherRefusesUnreadableParams(t *testing.T) {
	for _, p := range []Params{
		{},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 4 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 17, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHasher(%+v) did not panic", p)
				}
			}()
			NewHasher(p, 1, 1)
		}()
	}
}

func TestBusyWhenPoolAndQueueFull(t *testing.T) {
	h := NewHasher(cheap, 1, 1)
	working, waiting, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.hooks.working = func() {
		once.Do(func() { close(working); <-release }) // only the first caller blocks
	}
	h.hooks.waiting = func() { close(waiting) }
	ctx := context.Background()

	errs := make(chan error, 2)
	go func() { _, err := h.Hash(ctx, "first"); errs <- err }()
	<-working
	go func() { _, err := h.Hash(ctx, "second"); errs <- err }()
	<-waiting
	if r, w := h.Stats(); r != 1 || w != 1 {
		t.Fatalf("Stats = %d running, %d waiting; want 1, 1", r, w)
	}

	if _, err := h.Hash(ctx, "third"); !errors.Is(err, ErrBusy) {
		t.Fatalf("third Hash: err = %v, want ErrBusy", err)
	}
	if err := h.Dummy(ctx, "fourth"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Dummy: err = %v, want ErrBusy", err)
	}

	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("queued Hash: %v", err)
		}
	}
	if r, w := h.Stats(); r != 0 || w != 0 {
		t.Fatalf("Stats after = %d, %d; want 0, 0", r, w)
	}
	// The pool is usable again.
	if _, err := h.Hash(ctx, "fifth"); err != nil {
		t.Fatal(err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	h := NewHasher(cheap, 1, 1)
	working, waiting, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.hooks.working = func() { once.Do(func() { close(working); <-release }) }
	h.hooks.waiting = func() { close(waiting) }

	done := make(chan error, 1)
	go func() { _, err := h.Hash(context.Background(), "first"); done <- err }()
	<-working

	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { _, _, err := h.Verify(ctx, "second", h.dummy); waited <- err }()
	<-waiting
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting Verify: err = %v, want context.Canceled", err)
	}
	if _, w := h.Stats(); w != 0 {
		t.Fatalf("%d still waiting after cancel", w)
	}

	// A cancelled caller gave its queue place back: a new one may wait again.
	h.hooks.waiting = nil
	go func() { _, err := h.Hash(context.Background(), "third"); done <- err }()
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDoneContextRefusedAtOnce(t *testing.T) {
	h := NewHasher(cheap, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "whatever"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestDummyDoesVerifyWork(t *testing.T) {
	h := NewHasher(cheap, 1, 0)
	ran := 0
	h.hooks.working = func() { ran++ }
	if err := h.Dummy(context.Background(), "anything"); err != nil {
		t.Fatal(err)
	}
	if ran != 1 {
		t.Fatalf("Dummy hashed %d times, want 1", ran)
	}
	// The fake hash carries the hasher's own parameters, so it costs what a real one does.
	d, err := decode(h.dummy)
	if err != nil || d.params != cheap {
		t.Fatalf("dummy params %+v, %v; want %+v", d.params, err, cheap)
	}
}

func TestPolicy(t *testing.T) {
	cases := []struct {
		name     string
		password string
		want     error
	}{
		{"11 ASCII", "abcdefghijk", ErrTooShort},
		{"12 ASCII", "abcdefghijkl", nil},
		{"11 runes, 22 bytes", "ääööååääööå", ErrTooShort},
		{"12 runes, 24 bytes", "ääööååääööåå", nil},
		{"11 runes, emoji", "🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒", ErrTooShort},
		{"12 runes, emoji", "🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑", nil},
		{"decomposed ä counts once", strings.Repeat("a\u0308b", 5) + "c", ErrTooShort},
		{"spaces are not trimmed", "     abcdefg", nil},
		{"only spaces", strings.Repeat(" ", 12), ErrRepeated},
		{"one rune repeated", strings.Repeat("ä", 20), ErrRepeated},
		{"empty", "", ErrTooShort},
		{"1024 bytes", strings.Repeat("ab", 512), nil},
		{"1025 bytes", strings.Repeat("ab", 512) + "c", ErrTooLong},
		{"1026 bytes of 513 runes", strings.Repeat("äö", 256) + "å", ErrTooLong},
		{"invalid UTF-8", "abcdefghijkl\xff", ErrInvalidText},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Policy(c.password); !errors.Is(err, c.want) {
				t.Fatalf("Policy(%q) = %v, want %v", c.password, err, c.want)
			}
		})
	}
	if got := ErrTooShort.Error(); got != "must be at least 12 characters" {
		t.Fatalf("message %q", got)
	}
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher(OWASP, 1, 0)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
