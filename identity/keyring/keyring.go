// Package keyring keeps Lupa's secrets by envelope encryption: one master key, held outside
// the database, encrypts the data keys stored in it. Each data key has a key id (kid) and a
// kind; rotation adds a new active key per kind and keeps the old ones, so what was signed
// stays verifiable and what was encrypted stays readable.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Kind says what a data key is for.
type Kind string

const (
	// Signing keys are Ed25519: receipts and signed ledger roots. Shared by every instance.
	Signing Kind = "signing"
	// Encryption keys are AES-256-GCM: identifier values, per-subject keys, later webhook
	// secrets and connector credentials.
	Encryption Kind = "encryption"
	// Lookup keys are HMAC-SHA256 keys that turn an identifier into a searchable hash, so a
	// database dump alone reveals no email address or customer number.
	Lookup Kind = "lookup"
)

// Kinds lists every kind, in the order keys are created.
var Kinds = []Kind{Signing, Encryption, Lookup}

// LookupKeyDelay is how long a new lookup key is only searched with before new rows are
// hashed with it. A running instance that has not yet loaded the new key cannot tell that
// a row it misses was hashed with that key, so it would create the person again; every
// instance reloads its keys at least once a minute (ReloadInterval), so after this delay
// every instance finds rows under the new key. (Encryption keys need no delay: an unknown
// kid makes an instance reload at once.)
const LookupKeyDelay = 2 * ReloadInterval

// JWKSMaxAge is how long others may cache /.well-known/jwks.json.
const JWKSMaxAge = 5 * time.Minute

// SigningKeyDelay is how long a new signing key is only published before it signs. A
// receipt is checked by others against the key set they fetched, perhaps from an instance
// that has not reloaded yet (ReloadInterval) and then kept for JWKSMaxAge: a key that
// signed at once would make fresh receipts fail there. Lupa's own verification needs no
// delay (an unknown kid makes it reload), so this is for third parties.
const SigningKeyDelay = 2*ReloadInterval + JWKSMaxAge

// ReloadInterval is how often a running instance reads the data keys again.
const ReloadInterval = time.Minute

// Key statuses: the newest key of a kind is active; older ones stay for verifying,
// decrypting and looking up.
const (
	StatusActive   = "active"
	StatusPrevious = "previous"
)

type dataKey struct {
	id      string
	kind    Kind
	status  string
	secret  []byte // AES or HMAC key, or the Ed25519 seed
	public  ed25519.PublicKey
	private ed25519.PrivateKey
	created time.Time
	signers sync.Map // JWS typ → jose.Signer, built once per key
}

// Keyring holds the decrypted data keys of this instance.
type Keyring struct {
	db       *sqldb.DB
	master   []byte
	masterID string
	now      func() time.Time

	mu       sync.RWMutex
	keys     map[string]*dataKey
	active   map[Kind]*dataKey // the key each kind's new data is made with
	lookup   []*dataKey        // the active one first, then the others newest first
	loadedAt time.Time         // when Reload last read the keys

	missMu sync.Mutex // one reload at a time for a JWS naming a key not known here
}

// verifyReloadEvery bounds the reloads that a JWS naming an unknown key causes. Anyone may
// send such a JWS to the public receipt check, and each reload reads and unwraps every key;
// a genuine new key is known here long before it signs (SigningKeyDelay), so a reload a
// second is more than any real receipt needs.
const verifyReloadEvery = time.Second

// MasterKeyID is a short fingerprint of a master key, stored beside every data key so that
// starting with the wrong master key fails with a clear message instead of garbage.
func MasterKeyID(master []byte) string {
	sum := sha256.Sum256(append([]byte("lupa master key id\x00"), master...))
	return hex.EncodeToString(sum[:8])
}

// ErrNoMasterKey says that no master key was given where one is required.
var ErrNoMasterKey = errors.New("LUPA_MASTER_KEY is required with PostgreSQL: generate one with `openssl rand -base64 32`")

// LoadMasterKey returns the master key from value (base64 of 32 bytes), else from the file
// named by file, else — only when generate is true (the embedded default) — from
// dataDir/master.key, creating that file with a new random key the first time.
func LoadMasterKey(value, file, dataDir string, generate bool) ([]byte, error) {
	if value != "" {
		return decodeMaster(value)
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read master key file: %w", err)
		}
		return decodeMaster(strings.TrimSpace(string(b)))
	}
	if !generate {
		return nil, ErrNoMasterKey
	}
	path := filepath.Join(dataDir, "master.key")
	if b, err := os.ReadFile(path); err == nil {
		return decodeMaster(strings.TrimSpace(string(b)))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create master key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(enc + "\n"); err != nil {
		return nil, err
	}
	return key, f.Sync()
}

func decodeMaster(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("master key must be 32 random bytes, base64-encoded (openssl rand -base64 32)")
}

// Open loads the data keys, creating the first key of each kind on an empty database.
func Open(ctx context.Context, db *sqldb.DB, master []byte, now func() time.Time) (*Keyring, error) {
	if len(master) != 32 {
		return nil, errors.New("keyring: master key must be 32 bytes")
	}
	k := &Keyring{db: db, master: master, masterID: MasterKeyID(master), now: now}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	var missing []Kind
	for _, kind := range Kinds {
		if k.active[kind] == nil {
			missing = append(missing, kind)
		}
	}
	if len(missing) > 0 {
		// First keys only add: an instance creating them at the same moment makes this
		// insert fail on the one active key of a kind, instead of being replaced by it.
		if _, err := k.create(ctx, missing, false); err != nil && !sqldb.IsUniqueViolation(err) {
			return nil, err
		}
		// Another instance may have created them at the same moment: read what won.
		if err := k.Reload(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

type keyRow struct {
	ID          string
	Kind        string
	Status      string
	MasterKeyID string
	Wrapped     []byte
	Public      []byte
	CreatedAt   int64
}

// Reload reads every data key again, so keys rotated by another instance take effect.
func (k *Keyring) Reload(ctx context.Context) error {
	var rows []keyRow
	if err := k.db.Read.WithContext(ctx).Raw(
		"SELECT id, kind, status, master_key_id, wrapped, public, created_at FROM data_keys").Scan(&rows).Error; err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	keys := make(map[string]*dataKey, len(rows))
	active := map[Kind]*dataKey{}
	var lookup, signing []*dataKey
	for _, r := range rows {
		if r.MasterKeyID != k.masterID {
			return fmt.Errorf("data key %s was encrypted with master key %s, but this master key is %s: start Lupa with the master key it was set up with", r.ID, r.MasterKeyID, k.masterID)
		}
		secret, err := k.unwrap(r.ID, Kind(r.Kind), r.Wrapped)
		if err != nil {
			return err
		}
		dk := &dataKey{id: r.ID, kind: Kind(r.Kind), status: r.Status, secret: secret,
			created: time.UnixMilli(r.CreatedAt).UTC()}
		keys[r.ID] = dk
		switch dk.kind {
		case Signing:
			dk.private = ed25519.NewKeyFromSeed(secret)
			dk.public = dk.private.Public().(ed25519.PublicKey)
			signing = append(signing, dk)
		case Lookup:
			lookup = append(lookup, dk)
		default:
			if r.Status == StatusActive {
				active[dk.kind] = dk
			}
		}
	}
	// New data uses the newest key every instance (and, for signing, every verifier) knows.
	if i := usable(signing, k.now(), SigningKeyDelay); i >= 0 {
		active[Signing] = signing[i]
	}
	if i := usable(lookup, k.now(), LookupKeyDelay); i >= 0 {
		active[Lookup] = lookup[i]
		lookup = append(append([]*dataKey{lookup[i]}, lookup[:i]...), lookup[i+1:]...)
	}
	k.mu.Lock()
	k.keys, k.active, k.lookup, k.loadedAt = keys, active, lookup, k.now()
	k.mu.Unlock()
	return nil
}

// usable sorts keys newest first and returns the index of the one new data is made with:
// the newest one older than delay, or the oldest when none is (a new database's first key
// is used at once); -1 when there are none.
func usable(keys []*dataKey, now time.Time, delay time.Duration) int {
	newestFirst(keys)
	for i, dk := range keys {
		if !dk.created.After(now.Add(-delay)) {
			return i
		}
	}
	return len(keys) - 1
}

// newestFirst sorts keys by creation, newest first; of two made in the same millisecond the
// later rotation's (the active one) comes first.
func newestFirst(keys []*dataKey) {
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].created.Equal(keys[j].created) {
			return keys[i].created.After(keys[j].created)
		}
		return keys[i].status == StatusActive && keys[j].status != StatusActive
	})
}

func (k *Keyring) wrapAEAD() cipher.AEAD {
	block, _ := aes.NewCipher(k.master)
	aead, _ := cipher.NewGCM(block)
	return aead
}

func (k *Keyring) unwrap(id string, kind Kind, wrapped []byte) ([]byte, error) {
	aead := k.wrapAEAD()
	if len(wrapped) < aead.NonceSize() {
		return nil, fmt.Errorf("data key %s is damaged", id)
	}
	secret, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte(id+"|"+string(kind)))
	if err != nil {
		return nil, fmt.Errorf("data key %s cannot be decrypted with this master key: %w", id, err)
	}
	return secret, nil
}

func (k *Keyring) wrap(id string, kind Kind, secret []byte) []byte {
	aead := k.wrapAEAD()
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, secret, []byte(id+"|"+string(kind)))
}

func newKeyID(kind Kind, now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", kind, now.UTC().Format("20060102"), hex.EncodeToString(b))
}

// create inserts a new active key for each kind in one transaction; with demote, the
// previous active one of the kind becomes a previous key (a rotation).
func (k *Keyring) create(ctx context.Context, kinds []Kind, demote bool) ([]string, error) {
	now := k.now()
	var ids []string
	err := k.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ids = ids[:0]
		for _, kind := range kinds {
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			id := newKeyID(kind, now)
			var public []byte
			if kind == Signing {
				public = ed25519.NewKeyFromSeed(secret).Public().(ed25519.PublicKey)
			}
			if demote {
				if err := tx.Exec("UPDATE data_keys SET status = ? WHERE kind = ? AND status = ?",
					StatusPrevious, string(kind), StatusActive).Error; err != nil {
					return err
				}
			}
			if err := tx.Exec(`INSERT INTO data_keys (id, kind, status, master_key_id, wrapped, public, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, id, string(kind), StatusActive, k.masterID,
				k.wrap(id, kind, secret), public, now.UnixMilli()).Error; err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Rotate adds a new active key of each kind given (every kind when none is given) and keeps
// the old ones. It returns the new key ids. A new lookup key hashes new rows only after
// LookupKeyDelay, a new signing key signs only after SigningKeyDelay.
func (k *Keyring) Rotate(ctx context.Context, kinds ...Kind) ([]string, error) {
	if len(kinds) == 0 {
		kinds = Kinds
	}
	ids, err := k.create(ctx, kinds, true)
	if err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	return ids, nil
}

// Count returns how many keys of a kind there are, the active one and the older ones.
func (k *Keyring) Count(kind Kind) int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	n := 0
	for _, dk := range k.keys {
		if dk.kind == kind {
			n++
		}
	}
	return n
}

// ActiveID returns the id of the key a kind's new data is made with: the active key, and
// for lookups and signatures the newest key older than LookupKeyDelay or SigningKeyDelay.
func (k *Keyring) ActiveID(kind Kind) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if dk := k.active[kind]; dk != nil {
		return dk.id
	}
	return ""
}

// known returns the key with the id if this instance has read it, else nil.
func (k *Keyring) known(id string) *dataKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[id]
}

func (k *Keyring) get(ctx context.Context, id string) (*dataKey, error) {
	if dk := k.known(id); dk != nil {
		return dk, nil
	}
	// Another instance may have rotated: look again once.
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	dk := k.known(id)
	if dk == nil {
		return nil, fmt.Errorf("unknown data key %q", id)
	}
	return dk, nil
}

// Encrypt seals plaintext with the active encryption key; aad binds the ciphertext to its
// place (tenant, table, row), so it cannot be moved to another row.
func (k *Keyring) Encrypt(plaintext, aad []byte) (kid string, ciphertext []byte, err error) {
	k.mu.RLock()
	dk := k.active[Encryption]
	k.mu.RUnlock()
	if dk == nil {
		return "", nil, errors.New("keyring: no active encryption key")
	}
	aead := gcm(dk.secret)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return dk.id, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Decrypt opens a ciphertext made by Encrypt with the key it names.
func (k *Keyring) Decrypt(ctx context.Context, kid string, ciphertext, aad []byte) ([]byte, error) {
	dk, err := k.get(ctx, kid)
	if err != nil {
		return nil, err
	}
	aead := gcm(dk.secret)
	if len(ciphertext) < aead.NonceSize() {
		return nil, errors.New("keyring: ciphertext too short")
	}
	return aead.Open(nil, ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():], aad)
}

func gcm(key []byte) cipher.AEAD {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return aead
}

// LookupHash is a keyed hash of a value under one lookup key.
type LookupHash struct {
	KeyID string
	Sum   []byte
}

// Lookup returns the keyed hashes of value under every lookup key, the one new rows are
// hashed with first (see LookupKeyDelay). New rows store the first; searches try all, so
// identifiers hashed before a rotation, or under a key too new to hash with, are found.
func (k *Keyring) Lookup(value []byte) []LookupHash {
	k.mu.RLock()
	keys := k.lookup
	k.mu.RUnlock()
	out := make([]LookupHash, len(keys))
	for i, dk := range keys {
		m := hmac.New(sha256.New, dk.secret)
		m.Write(value)
		out[i] = LookupHash{KeyID: dk.id, Sum: m.Sum(nil)}
	}
	return out
}

// Lookuper hashes many values with every lookup key, reusing one HMAC per key (a bulk
// check hashes ten thousand identifiers). Not safe for concurrent use.
type Lookuper struct {
	macs []hash.Hash
}

// Lookuper returns a Lookuper for the lookup keys as they are now.
func (k *Keyring) Lookuper() *Lookuper {
	k.mu.RLock()
	keys := k.lookup
	k.mu.RUnlock()
	l := &Lookuper{macs: make([]hash.Hash, len(keys))}
	for i, dk := range keys {
		l.macs[i] = hmac.New(sha256.New, dk.secret)
	}
	return l
}

// Sums returns value's keyed hashes, the active key's first.
func (l *Lookuper) Sums(value []byte) [][]byte {
	out := make([][]byte, len(l.macs))
	for i, m := range l.macs {
		m.Reset()
		m.Write(value)
		out[i] = m.Sum(nil)
	}
	return out
}

// Signer returns the id of the key that signs now (see SigningKeyDelay) and a JWS signer
// (EdDSA) that sets kid and typ.
func (k *Keyring) Signer(typ string) (string, jose.Signer, error) {
	k.mu.RLock()
	dk := k.active[Signing]
	k.mu.RUnlock()
	if dk == nil {
		return "", nil, errors.New("keyring: no active signing key")
	}
	if s, ok := dk.signers.Load(typ); ok {
		return dk.id, s.(jose.Signer), nil
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", dk.id)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: dk.private}, opts)
	if err != nil {
		return "", nil, err
	}
	dk.signers.Store(typ, s)
	return dk.id, s, nil
}

// Sign returns the compact JWS of payload and the id of the key that signed it (the key
// that signs now: a reload may change it at any moment, so ask no one else).
func (k *Keyring) Sign(typ string, payload []byte) (kid, compact string, err error) {
	kid, s, err := k.Signer(typ)
	if err != nil {
		return "", "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", "", err
	}
	compact, err = obj.CompactSerialize()
	return kid, compact, err
}

// SignFunc returns a function that signs with the active key (its signer is built once).
func (k *Keyring) SignFunc(typ string) (func(payload []byte) (string, error), error) {
	_, s, err := k.Signer(typ)
	if err != nil {
		return nil, err
	}
	return func(payload []byte) (string, error) {
		obj, err := s.Sign(payload)
		if err != nil {
			return "", err
		}
		return obj.CompactSerialize()
	}, nil
}

// Verify checks a compact JWS that Lupa signed as typ against every signing key, old ones
// included, and returns the payload and the kid that signed it. Its protected header must be
// exactly {"alg":"EdDSA","kid":…,"typ":typ}, the one Sign writes, and is checked before any
// key is looked up: a JWS of another type signed with the same key (a signed root is not a
// receipt, nor a confirmation link), one naming no key, and one with any other member —
// "crit" above all, whose extensions Lupa does not implement, or a key of its own ("jwk",
// "jku", "x5c") — is refused, whatever its payload says.
func (k *Keyring) Verify(ctx context.Context, compact, typ string) (payload []byte, kid string, err error) {
	if !canonicalCompact(compact) {
		return nil, "", errors.New("not a compact JWS in canonical base64url")
	}
	obj, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, "", fmt.Errorf("not a compact JWS signed with EdDSA: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return nil, "", errors.New("expected exactly one signature")
	}
	kid = obj.Signatures[0].Header.KeyID
	if err := checkHeader(compact, typ); err != nil {
		return nil, kid, err
	}
	dk, err := k.signingKey(ctx, kid)
	if err != nil || dk.kind != Signing {
		return nil, kid, fmt.Errorf("unknown signing key %q", kid)
	}
	payload, err = obj.Verify(dk.public)
	if err != nil {
		return nil, kid, errors.New("signature does not verify")
	}
	return payload, kid, nil
}

// checkHeader checks that the protected header of compact (canonical, and signed with EdDSA:
// ParseSigned took no other algorithm) has exactly the members alg, kid and typ, with a kid
// and the type typ.
func checkHeader(compact, typ string) error {
	head, _, _ := strings.Cut(compact, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(head)
	var members map[string]json.RawMessage
	var h struct {
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &members) != nil || json.Unmarshal(raw, &h) != nil {
		return errors.New("the JWS header is not a JSON object")
	}
	for name := range members {
		if name != "alg" && name != "kid" && name != "typ" {
			return fmt.Errorf("the JWS header has a member %q: only alg, kid and typ are accepted", name)
		}
	}
	switch {
	case h.Typ != typ:
		return fmt.Errorf("typ %q: want %s", h.Typ, typ)
	case h.Kid == "":
		return errors.New("the JWS header names no key (kid)")
	}
	return nil
}

// signingKey is get for a key id that came from outside: an unknown id reads the keys again
// only when they were read more than verifyReloadEvery ago, one reader at a time.
func (k *Keyring) signingKey(ctx context.Context, id string) (*dataKey, error) {
	if dk := k.known(id); dk != nil {
		return dk, nil
	}
	k.missMu.Lock()
	defer k.missMu.Unlock()
	if dk := k.known(id); dk != nil { // read by the reload another miss made meanwhile
		return dk, nil
	}
	k.mu.RLock()
	stale := k.now().Sub(k.loadedAt) >= verifyReloadEvery
	k.mu.RUnlock()
	if !stale {
		return nil, fmt.Errorf("unknown data key %q", id)
	}
	return k.get(ctx, id)
}

// canonicalCompact reports whether compact is three base64url segments, each spelled the one
// way its bytes encode. Go's decoder (and so go-jose's) skips CR and LF and ignores the unused
// low bits of a segment's last character, so without this check several spellings of one
// receipt would all verify, and a changed character would not always be a broken receipt.
func canonicalCompact(compact string) bool {
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if strings.ContainsAny(p, "\r\n") {
			return false
		}
		if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
			return false
		}
	}
	return true
}

// JWKS returns the public signing keys, newest first, as a JSON Web Key Set: old ones, for
// what they signed, and new ones not yet signing (SigningKeyDelay).
func (k *Keyring) JWKS() jose.JSONWebKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var set jose.JSONWebKeySet
	var keys []*dataKey
	for _, dk := range k.keys {
		if dk.kind == Signing {
			keys = append(keys, dk)
		}
	}
	newestFirst(keys)
	for _, dk := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: dk.public, KeyID: dk.id, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	return set
}
