// Package password hashes customer passwords with argon2id and checks them against a
// password policy.
//
// argon2id is deliberately memory-hard: each hash holds Params.Memory KiB for its whole run.
// A Hasher therefore runs at most a fixed number of hashes at once and lets only a bounded
// queue wait behind them, so a burst of registrations or sign-ins costs a known amount of
// memory and the excess is told to come back later (ErrBusy) instead of exhausting the host.
//
// The package depends on nothing of Lupa's: the identity package uses it, so importing
// identity from here would be a cycle.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Params are argon2id's cost parameters plus the salt and key sizes.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// check applies the bounds that decode applies to stored hashes.
func (p Params) check() error {
	_, err := decode(encode(p, make([]byte, p.SaltLen), make([]byte, p.KeyLen)))
	return err
}

// OWASP is the OWASP Password Storage Cheat Sheet's first argon2id choice: 19 MiB, two
// passes, one lane.
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ErrBusy means every worker is hashing and the queue is full. It is an overload, not a
// fault of the caller: the HTTP layer answers 503 with Retry-After.
var ErrBusy = errors.New("password: hasher busy")

// Hasher hashes and verifies passwords with at most a fixed number of argon2id
// computations in flight. It is safe for concurrent use.
type Hasher struct {
	params Params
	dummy  string // a well-formed hash nobody's password matches, for Dummy

	admit chan struct{} // one token per admitted caller: workers + queue
	slots chan struct{} // one token per running hash: workers

	running atomic.Int64
	waiting atomic.Int64

	hooks testHooks
}

// testHooks let tests hold the pool in a known state without sleeping. Nil in production.
type testHooks struct {
	waiting func() // called when a caller starts waiting for a slot
	working func() // called while a caller holds a slot, before hashing
}

// NewHasher returns a Hasher that runs at most workers hashes at once (runtime.GOMAXPROCS
// when 0) and lets at most queue further callers wait (4 × workers when 0). It panics when
// p is outside the bounds Verify accepts, since such a hasher would write hashes it could
// not read back; p is fixed in code, so that is a programming error.
func NewHasher(p Params, workers, queue int) *Hasher {
	if err := p.check(); err != nil {
		panic(err)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if queue <= 0 {
		queue = 4 * workers
	}
	h := &Hasher{
		params: p,
		admit:  make(chan struct{}, workers+queue),
		slots:  make(chan struct{}, workers),
	}
	h.dummy = encode(p, randomBytes(p.SaltLen), randomBytes(p.KeyLen))
	return h
}

// Hash returns the PHC string of password under the hasher's parameters. The password is
// NFKC-normalised first (see normalize). ctx bounds only the wait for a worker: a hash that
// has started runs to its end.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := randomBytes(h.params.SaltLen)
	var key []byte
	err := h.run(ctx, func() { key = derive(normalize(password), salt, h.params) })
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches the PHC string phc. needsRehash is true when it
// matches but phc was made with other parameters than the hasher's, so the caller should
// store a fresh Hash while it has the plain password. A malformed phc is an error wrapping
// ErrMalformed and costs no hashing.
func (h *Hasher) Verify(ctx context.Context, password, phc string) (ok, needsRehash bool, err error) {
	d, err := decode(phc)
	if err != nil {
		return false, false, err
	}
	var key []byte
	err = h.run(ctx, func() { key = derive(normalize(password), d.salt, d.params) })
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(key, d.key) == 1
	return ok, ok && d.params != h.params, nil
}

// Dummy does the work of a failed Verify against a hash that belongs to no one, so that
// signing in to an account that does not exist takes as long as a wrong password. It
// returns Verify's errors (ErrBusy, ctx's) so the caller can answer an overload the same
// way on both paths; otherwise a 503 would itself reveal that the account exists.
func (h *Hasher) Dummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

// Stats reports how many hashes are running and how many callers wait for a worker, for
// metrics.
func (h *Hasher) Stats() (running, waiting int) {
	return int(h.running.Load()), int(h.waiting.Load())
}

// run admits the caller, waits for a worker slot and runs work in it. Callers beyond the
// queue are refused at once rather than left to pile up, because waiting would hold their
// requests (and memory) without bound.
func (h *Hasher) run(ctx context.Context, work func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.admit <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-h.admit }()

	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	if h.hooks.working != nil {
		h.hooks.working()
	}
	work()
	return nil
}

// acquire takes a worker slot, waiting no longer than ctx allows.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		h.running.Add(1)
		return nil
	default:
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	if h.hooks.waiting != nil {
		h.hooks.waiting()
	}
	select {
	case h.slots <- struct{}{}:
		h.running.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() {
	h.running.Add(-1)
	<-h.slots
}

// normalize applies NFKC so that one password typed on different systems (a precomposed
// "ä" on one keyboard, "a" plus a combining diaeresis on another) gives one hash, as NIST
// SP 800-63B advises.
func normalize(password string) []byte {
	return norm.NFKC.Bytes([]byte(password))
}

func derive(password, salt []byte, p Params) []byte {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// randomBytes reads n bytes from crypto/rand, which never fails on supported systems (it
// aborts the program rather than return weak bytes).
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
