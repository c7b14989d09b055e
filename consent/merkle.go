package consent

import (
	"crypto/sha256"
	"strconv"
)

// The signed roots are Merkle trees (RFC 6962 shape: leaves hashed with a 0x00 prefix,
// inner nodes with 0x01) over every chain head of a tenant, ordered by subject id. The tree
// is built as the sorted leaves stream past, keeping only one node per level.

// LeafHash is the Merkle leaf of one chain head.
func LeafHash(subjectID string, seq int64, hash string) [32]byte {
	b := make([]byte, 0, 1+len(subjectID)+1+20+1+len(hash))
	b = append(b, 0x00)
	b = append(b, subjectID...)
	b = append(b, 0x00)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, 0x00)
	b = append(b, hash...)
	return sha256.Sum256(b)
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 0x01
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

type subtree struct {
	size int64
	hash [32]byte
}

// merkleBuilder computes the RFC 6962 tree hash of leaves added in order.
type merkleBuilder struct {
	stack []subtree
	n     int64
}

func (m *merkleBuilder) add(leaf [32]byte) {
	m.n++
	m.stack = append(m.stack, subtree{1, leaf})
	for len(m.stack) >= 2 {
		a, b := m.stack[len(m.stack)-2], m.stack[len(m.stack)-1]
		if a.size != b.size {
			break
		}
		m.stack = append(m.stack[:len(m.stack)-2], subtree{a.size * 2, nodeHash(a.hash, b.hash)})
	}
}

// root folds the remaining perfect subtrees from the right; the empty tree hashes "".
func (m *merkleBuilder) root() [32]byte {
	if len(m.stack) == 0 {
		return sha256.Sum256(nil)
	}
	h := m.stack[len(m.stack)-1].hash
	for i := len(m.stack) - 2; i >= 0; i-- {
		h = nodeHash(m.stack[i].hash, h)
	}
	return h
}
