package keyring_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/lupa-cmp/lupa/identity/clocktest"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/migrations"
)

func now() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }

func master(t *testing.T) []byte {
	t.Helper()
	m := make([]byte, 32)
	_, _ = rand.Read(m)
	return m
}

func TestKeysSurviveRotationAndRestart(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		m := master(t)
		k, err := keyring.Open(ctx, db, m, now)
		if err != nil {
			t.Fatal(err)
		}
		aad := []byte("identifier|tenant|customer_number|")
		kid, ct, err := k.Encrypt([]byte("C-1"), aad)
		if err != nil {
			t.Fatal(err)
		}
		_, signed, err := k.Sign("lupa-receipt+jwt", []byte(`{"hello":"world"}`))
		if err != nil {
			t.Fatal(err)
		}
		oldSigner := k.ActiveID(keyring.Signing)
		oldLookup := k.Lookup([]byte("value"))

		newIDs, err := k.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(newIDs) != len(keyring.Kinds) || newIDs[0] == kid {
			t.Fatalf("rotate: %v", newIDs)
		}
		// A second instance, started after the rotation with the same master key, sees the
		// same keys: it reads old data and verifies old signatures.
		k2, err := keyring.Open(ctx, db, m, now)
		if err != nil {
			t.Fatal(err)
		}
		for name, kr := range map[string]*keyring.Keyring{"rotated": k, "restarted": k2} {
			plain, err := kr.Decrypt(ctx, kid, ct, aad)
			if err != nil || string(plain) != "C-1" {
				t.Fatalf("%s: decrypt under the old key: %q %v", name, plain, err)
			}
			if _, err := kr.Decrypt(ctx, kid, ct, []byte("identifier|other-tenant|customer_number|")); err == nil {
				t.Fatalf("%s: a ciphertext moved to another row decrypts", name)
			}
			payload, signedBy, err := kr.Verify(ctx, signed, "lupa-receipt+jwt")
			if err != nil || string(payload) != `{"hello":"world"}` || signedBy != oldSigner {
				t.Fatalf("%s: old signature: %s %s %v", name, payload, signedBy, err)
			}
			// Searches use both lookup keys; new rows keep the old one until every running
			// instance has loaded the new one (LookupKeyDelay).
			hs := kr.Lookup([]byte("value"))
			if len(hs) != 2 || hs[0].KeyID != kr.ActiveID(keyring.Lookup) || string(hs[0].Sum) != string(oldLookup[0].Sum) ||
				hs[1].KeyID != newIDs[2] {
				t.Fatalf("%s: lookups after rotation: %+v", name, hs)
			}
			if n := len(kr.JWKS().Keys); n != 2 {
				t.Fatalf("%s: JWKS has %d keys, want the old and the new", name, n)
			}
		}
		// One changed byte and the signature fails.
		bad := []byte(signed)
		bad[len(bad)-5] ^= 0x02
		if _, _, err := k.Verify(ctx, string(bad), "lupa-receipt+jwt"); err == nil {
			t.Fatal("a changed signature verifies")
		}
	})
}

func TestWrongMasterKeyIsRefused(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := keyring.Open(ctx, db, master(t), now); err != nil {
			t.Fatal(err)
		}
		_, err := keyring.Open(ctx, db, master(t), now)
		if err == nil || !strings.Contains(err.Error(), "master key") {
			t.Fatalf("opening with another master key: %v", err)
		}
		if _, err := keyring.Open(ctx, db, []byte("short"), now); err == nil {
			t.Fatal("a short master key was accepted")
		}
	})
}

// A receipt is checked by others against the key set they fetched earlier, perhaps from an
// instance that had not reloaded its keys yet, and cached for JWKSMaxAge. So a new signing
// key is published first and signs only when every such copy of the key set holds it.
func TestNewSigningKeyIsPublishedBeforeItSigns(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		m := master(t)
		clk := clocktest.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		clock, wait := clk.Now, clk.Add
		server, err := keyring.Open(ctx, db, m, clock)
		if err != nil {
			t.Fatal(err)
		}
		oldKid := server.ActiveID(keyring.Signing)
		rotator, err := keyring.Open(ctx, db, m, clock) // `lupa keys rotate`'s process
		if err != nil {
			t.Fatal(err)
		}
		wait(time.Hour)
		ids, err := rotator.Rotate(ctx, keyring.Signing)
		if err != nil {
			t.Fatal(err)
		}
		newKid := ids[0]
		// verifies says whether a third party holding set accepts the signature.
		verifies := func(set jose.JSONWebKeySet, compact string) bool {
			obj, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.EdDSA})
			if err != nil {
				t.Fatal(err)
			}
			keys := set.Key(obj.Signatures[0].Header.KeyID)
			if len(keys) != 1 {
				return false
			}
			_, err = obj.Verify(keys[0].Key)
			return err == nil
		}
		// A verifier fetched the server's key set just before the server reloaded.
		cached := server.JWKS()
		if len(cached.Keys) != 1 {
			t.Fatalf("the server has not reloaded yet, but publishes %d keys", len(cached.Keys))
		}
		if got := rotator.JWKS(); len(got.Keys) != 2 || got.Keys[0].KeyID != newKid {
			t.Fatalf("the new key is not published at once: %+v", got.Keys)
		}
		// Until SigningKeyDelay has passed, every instance signs with the old key, which the
		// cached set holds.
		for _, step := range []time.Duration{0, keyring.ReloadInterval, keyring.SigningKeyDelay - keyring.ReloadInterval - time.Second} {
			wait(step)
			for name, k := range map[string]*keyring.Keyring{"server": server, "rotator": rotator} {
				if err := k.Reload(ctx); err != nil {
					t.Fatal(err)
				}
				_, sig, err := k.Sign("lupa-receipt+jwt", []byte(`{"n":1}`))
				if err != nil {
					t.Fatal(err)
				}
				if kid := k.ActiveID(keyring.Signing); kid != oldKid || !verifies(cached, sig) {
					t.Fatalf("%s, before SigningKeyDelay: signs with %s, which a cached key set does not verify", name, kid)
				}
			}
		}
		refreshed := server.JWKS() // what a verifier caches after the server's reload
		if len(refreshed.Keys) != 2 {
			t.Fatalf("after its reload the server publishes %d keys", len(refreshed.Keys))
		}
		wait(2 * time.Second)
		if err := server.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		_, sig, err := server.Sign("lupa-receipt+jwt", []byte(`{"n":2}`))
		if err != nil {
			t.Fatal(err)
		}
		if kid := server.ActiveID(keyring.Signing); kid != newKid || !verifies(refreshed, sig) || verifies(cached, sig) {
			t.Fatalf("after SigningKeyDelay: signs with %s, want the new key %s", kid, newKid)
		}
		if _, by, err := rotator.Verify(ctx, sig, "lupa-receipt+jwt"); err != nil || by != newKid {
			t.Fatalf("another instance verifies the new signature: %s %v", by, err)
		}
	})
}

// Instances started together on an empty database must end with one key of each kind,
// the same for all: a second set would make one instance hash identifiers with a key the
// other does not search with until it reloads, and sign with a key its JWKS lacks.
func TestInstancesStartingTogetherShareTheFirstKeys(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			m := master(t)
			for round := range 10 {
				url := sqldbtest.URL(t, dialect)
				var dbs [2]*sqldb.DB
				for i := range dbs {
					db, err := sqldb.Open(ctx, url, t.TempDir(), sqldb.Options{MaxConns: 4})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = db.Close() })
					dbs[i] = db
				}
				if dialect == sqldb.SQLite {
					if _, err := migrations.Up(ctx, dbs[0].SQL(), dialect); err != nil {
						t.Fatal(err)
					}
				}
				// The second host's clock is a little behind: the older key must not win there.
				clocks := [2]func() time.Time{now, func() time.Time { return now().Add(-50 * time.Millisecond) }}
				var keys [2]*keyring.Keyring
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i := range keys {
					wg.Go(func() { keys[i], errs[i] = keyring.Open(ctx, dbs[i], m, clocks[i]) })
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				for _, kind := range keyring.Kinds {
					if keys[0].ActiveID(kind) != keys[1].ActiveID(kind) || keys[0].Count(kind) != 1 || keys[1].Count(kind) != 1 {
						t.Fatalf("round %d, %s keys: %s (of %d) and %s (of %d)", round, kind,
							keys[0].ActiveID(kind), keys[0].Count(kind), keys[1].ActiveID(kind), keys[1].Count(kind))
					}
				}
			}
		})
	}
}

// TestUnknownKeyIdReloadsAtMostOnceASecond: anyone may send the public receipt check a JWS
// naming a key id this instance does not know, and each look in the database reads and
// unwraps every key. Such a JWS makes the instance read the keys again only when it last
// read them a second or more ago; a key made meanwhile by another instance is found then.
func TestUnknownKeyIdReloadsAtMostOnceASecond(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		m := master(t)
		clk := clocktest.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
		server, err := keyring.Open(ctx, db, m, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		rotator, err := keyring.Open(ctx, db, m, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := rotator.Rotate(ctx, keyring.Signing)
		if err != nil {
			t.Fatal(err)
		}
		naming := func(kid string) string {
			b64 := base64.RawURLEncoding.EncodeToString
			return b64([]byte(`{"alg":"EdDSA","kid":"`+kid+`","typ":"lupa-receipt+jwt"}`)) + "." + b64([]byte(`{}`)) + "." + b64(make([]byte, 64))
		}
		published := func() bool {
			for _, k := range server.JWKS().Keys {
				if k.KeyID == ids[0] {
					return true
				}
			}
			return false
		}
		for i := 0; i < 50; i++ {
			if _, _, err := server.Verify(ctx, naming(ids[0]), "lupa-receipt+jwt"); err == nil {
				t.Fatal("a JWS with no real signature verified")
			}
		}
		if published() {
			t.Fatal("JWSs naming an unknown key made the server read its keys within the second it read them")
		}
		clk.Add(time.Second)
		if _, _, err := server.Verify(ctx, naming(ids[0]), "lupa-receipt+jwt"); err == nil {
			t.Fatal("a JWS with no real signature verified")
		}
		if !published() {
			t.Fatal("a second later the unknown key id did not make the server read its keys")
		}
	})
}
