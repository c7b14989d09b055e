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

// Micro-benchmarks of the key operations on the write path (`make bench` prints them as
// go.identity.keyring.*): every interaction signs a receipt, every new subject encrypts its
// key and identifier, and every lookup hashes an identifier.

func benchKeyring(b *testing.B) *keyring.Keyring {
	b.Helper()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	k, err := keyring.Open(context.Background(), sqldbtest.Open(b, sqldb.SQLite), master, func() time.Time { return time.Now().UTC() })
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkSignReceipt: one receipt JWS (EdDSA) through SignFunc, as the writer signs them,
// over a payload of the size of a five-decision receipt (about 4 KB of JSON).
func BenchmarkSignReceipt(b *testing.B) {
	k := benchKeyring(b)
	sign, err := k.SignFunc("lupa-receipt+jwt")
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"version":"KI-CR-v1.1.0","jurisdiction":"FI","lupa":{"events":[` +
		strings.Repeat(`{"id":"01a216fa-1c81-78ba-96be-67732a6da74d","purpose":"analytics","version":1,"decision":"granted","kind":"decision","seq":1,"hash":"e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a"},`, 5) +
		`{}]},"services":[{"purposes":[` + strings.Repeat(`{"purpose":"Analytiikka","purposeCategory":["https://w3id.org/dpv#ServiceUsageAnalytics"],"consentType":"EXPLICIT","piiCategory":["pages visited","device type"],"primaryPurpose":false,"termination":"Withdraw at any time where you gave it; asked again after 12 months.","thirdPartyDisclosure":false,"decision":"granted","purposeKey":"analytics","purposeVersion":1,"textHash":"e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a"},`, 5) + `{}]}]}`)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := sign(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptSubjectKey: a new subject's 32-byte key, encrypted under the active data
// key (AES-GCM), as every new device and customer needs.
func BenchmarkEncryptSubjectKey(b *testing.B) {
	k := benchKeyring(b)
	key := make([]byte, 32)
	aad := []byte("subject|01a216fa-1492-7865-92a7-0650dfb2c95a|01a216fa-1c81-78ba-96be-67732a6da74d")
	for b.Loop() {
		if _, _, err := k.Encrypt(key, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupHash: an identifier's keyed lookup hash (HMAC-SHA-256), computed for every
// identifier a request or a bulk check names.
func BenchmarkLookupHash(b *testing.B) {
	k := benchKeyring(b)
	value := []byte("01a216fa-1492-7865-92a7-0650dfb2c95a\x00customer_number\x00\x00C000123456")
	for b.Loop() {
		_ = k.Lookup(value)
	}
}
