package consent

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// leafSet, which verification uses to rebuild every signed root, gives the tree hash of
// merkleBuilder (and so RFC 6962's, TestMerkleBuilderIsRFC6962) over the same leaves, however
// the leaves change between roots: changed in place, new subjects before, among and after
// the others, several changes at once, or none.
func TestLeafSetIsTheTreeOfItsLeaves(t *testing.T) {
	rng := rand.New(rand.NewPCG(6962, 8785))
	type leaf struct {
		seq  int64
		hash string
	}
	for run := range 60 {
		set := newLeafSet()
		want := map[string]leaf{}
		var ids []string
		for round := range 40 {
			for range rng.IntN(12) {
				var subject string
				switch k := rng.IntN(4); {
				case k == 0 && len(ids) > 0: // a known subject moves on
					subject = ids[rng.IntN(len(ids))]
				case k == 1: // a new subject sorting last, as UUIDv7 ids do
					subject = fmt.Sprintf("z%08d-%03d", round, len(ids))
				default: // a new subject anywhere
					subject = fmt.Sprintf("%c%08x", 'a'+rng.IntN(26), rng.Uint32())
				}
				if !slices.Contains(ids, subject) {
					ids = append(ids, subject)
				}
				l := leaf{want[subject].seq + 1, fmt.Sprintf("%064x", rng.Uint64())}
				want[subject] = l
				set.set(subject, l.seq, l.hash)
			}
			sorted := slices.Sorted(func(yield func(string) bool) {
				for s := range want {
					if !yield(s) {
						return
					}
				}
			})
			var m merkleBuilder
			for _, s := range sorted {
				m.add(LeafHash(s, want[s].seq, want[s].hash))
			}
			got, n := set.root()
			if got != m.root() || n != m.n {
				t.Fatalf("run %d round %d: leafSet %x over %d leaves, merkleBuilder %x over %d", run, round, got, n, m.root(), m.n)
			}
			for _, s := range sorted {
				if set.seq(s) != want[s].seq {
					t.Fatalf("seq of %s: %d, want %d", s, set.seq(s), want[s].seq)
				}
			}
		}
	}
	if got, n := newLeafSet().root(); got != (&merkleBuilder{}).root() || n != 0 {
		t.Fatal("the empty set is not the empty tree")
	}
}
