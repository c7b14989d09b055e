package consent

import (
	"crypto/sha256"
	"math"
	"math/bits"
	"slices"
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

// leafSet is the set of leaves of a tenant's roots, one root after another: each root
// changes some subjects' leaves and adds new subjects, and verification needs every root's
// tree hash. Rebuilding each tree from scratch would cost every head for every root; leafSet
// keeps the hash of every complete, aligned subtree instead (the nodes an RFC 6962 tree is
// made of: its left subtrees are perfect and start at a multiple of their size), so a
// changed leaf costs one path, and a new subject one path too when it sorts last, as new
// subjects do (their ids are UUIDv7, which sort by time). Leaves are ordered by subject id as
// byte strings.
type leafSet struct {
	ids  []string
	seqs []int64
	// levels[0] are the leaf hashes; levels[j][i] is the hash of the leaves
	// [i·2^j, (i+1)·2^j), for every such range that is complete.
	levels  [][][32]byte
	dirty   int   // the first position whose subtrees are stale (math.MaxInt: none)
	changed []int // positions before dirty whose leaf changed in place
}

func newLeafSet() *leafSet { return &leafSet{levels: make([][][32]byte, 1), dirty: math.MaxInt} }

// set makes subject's leaf (seq, hash), adding the subject when it is new.
func (s *leafSet) set(subject string, seq int64, hash string) {
	leaf := LeafHash(subject, seq, hash)
	i, found := slices.BinarySearch(s.ids, subject)
	if found {
		s.seqs[i], s.levels[0][i] = seq, leaf
		if i < s.dirty {
			s.changed = append(s.changed, i)
		}
		return
	}
	s.ids = slices.Insert(s.ids, i, subject)
	s.seqs = slices.Insert(s.seqs, i, seq)
	s.levels[0] = slices.Insert(s.levels[0], i, leaf)
	s.dirty = min(s.dirty, i) // positions in changed from i on have moved: rebuilt from i
}

// seq returns subject's leaf sequence number, or 0 when it has no leaf.
func (s *leafSet) seq(subject string) int64 {
	if i, found := slices.BinarySearch(s.ids, subject); found {
		return s.seqs[i]
	}
	return 0
}

// root returns the RFC 6962 tree hash of the leaves and their number: the same as
// merkleBuilder's over the leaves in order.
func (s *leafSet) root() ([32]byte, int64) {
	n := len(s.levels[0])
	d := min(s.dirty, n)
	var pos []int
	for _, p := range s.changed {
		if p < d {
			pos = append(pos, p)
		}
	}
	for j := 1; 1<<j <= n; j++ {
		if len(s.levels) <= j {
			s.levels = append(s.levels, nil)
		}
		below, lv := s.levels[j-1], s.levels[j]
		// Keep the subtrees wholly before the first stale position, and recompute those of
		// them above a leaf changed in place.
		lv = lv[:min(len(lv), d>>j)]
		next := pos[:0]
		for _, p := range pos {
			if i := p >> 1; i < len(lv) {
				lv[i] = nodeHash(below[2*i], below[2*i+1])
				if len(next) == 0 || next[len(next)-1] != i {
					next = append(next, i)
				}
			}
		}
		pos = next
		for i := len(lv); (i+1)<<j <= n; i++ {
			lv = append(lv, nodeHash(below[2*i], below[2*i+1]))
		}
		s.levels[j] = lv
	}
	s.dirty, s.changed = math.MaxInt, s.changed[:0]
	if n == 0 {
		return sha256.Sum256(nil), 0
	}
	// The perfect subtrees of n's binary digits, largest first, folded from the right.
	var parts [][32]byte
	start := 0
	for j := bits.Len(uint(n)) - 1; j >= 0; j-- {
		if n&(1<<j) != 0 {
			parts = append(parts, s.levels[j][start>>j])
			start += 1 << j
		}
	}
	h := parts[len(parts)-1]
	for k := len(parts) - 2; k >= 0; k-- {
		h = nodeHash(parts[k], h)
	}
	return h, int64(n)
}
