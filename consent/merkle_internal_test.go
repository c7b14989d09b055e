package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// mth is RFC 6962's Merkle Tree Hash written the way section 2.1 defines it, recursively:
// MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 || d0), and for n > 1 with k the largest
// power of two below n, MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
func mth(leaves [][]byte) [32]byte {
	n := len(leaves)
	switch n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0x00}, leaves[0]...))
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

func TestMerkleBuilderIsRFC6962(t *testing.T) {
	for n := 0; n <= 40; n++ {
		var data [][]byte
		var m merkleBuilder
		for i := range n {
			subject := fmt.Sprintf("0192a6c0-0000-7000-8000-%012d", i)
			hash := strings.Repeat(fmt.Sprintf("%02x", i), 32)
			// The leaf data as docs/ledger.md gives it; LeafHash adds the 0x00 prefix.
			data = append(data, fmt.Appendf(nil, "%s\x00%d\x00%s", subject, i+1, hash))
			m.add(LeafHash(subject, int64(i+1), hash))
		}
		want := mth(data)
		if got := m.root(); got != want {
			t.Fatalf("n=%d: builder %s, RFC 6962 %s", n, hex.EncodeToString(got[:]), hex.EncodeToString(want[:]))
		}
		if m.n != int64(n) {
			t.Fatalf("n=%d: builder counted %d leaves", n, m.n)
		}
	}
}

func TestMerkleEmptyTreeAndOrderMatter(t *testing.T) {
	var empty merkleBuilder
	if got := hex.EncodeToString(func() []byte { r := empty.root(); return r[:] }()); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty tree: %s", got)
	}
	a, b := LeafHash("a", 1, "x"), LeafHash("b", 1, "x")
	var ab, ba merkleBuilder
	ab.add(a)
	ab.add(b)
	ba.add(b)
	ba.add(a)
	if ab.root() == ba.root() {
		t.Fatal("leaf order does not change the root")
	}
}
