package keyring_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
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
		signed, err := k.Sign("lupa-receipt+jwt", []byte(`{"hello":"world"}`))
		if err != nil {
			t.Fatal(err)
		}
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
			payload, signedBy, err := kr.Verify(ctx, signed)
			if err != nil || string(payload) != `{"hello":"world"}` || signedBy == kr.ActiveID(keyring.Signing) {
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
		// Signatures from the new key name it.
		fresh, _ := k.Sign("lupa-receipt+jwt", []byte("{}"))
		if _, by, err := k2.Verify(ctx, fresh); err != nil || by != k.ActiveID(keyring.Signing) {
			t.Fatalf("new signature: %s %v", by, err)
		}
		// One changed byte and the signature fails.
		bad := []byte(signed)
		bad[len(bad)-5] ^= 0x02
		if _, _, err := k.Verify(ctx, string(bad)); err == nil {
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
