package integrations

import (
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// Prune finds its candidates by id (prune.go): every id made before a time must sort below
// idBefore of that time, and none made at or after it.
func TestIDBefore(t *testing.T) {
	for range 1000 {
		start := time.Now()
		id := identity.NewID()
		end := time.Now()
		if lo := idBefore(start); id < lo {
			t.Fatalf("%s, made at or after %s, sorts below %s", id, start.Format(time.StampMilli), lo)
		}
		if hi := idBefore(end.Add(time.Millisecond)); id >= hi {
			t.Fatalf("%s, made before %s, does not sort below %s", id, end.Add(time.Millisecond).Format(time.StampMilli), hi)
		}
	}
	if got := idBefore(time.UnixMilli(0x0192_3456_789a)); got != "01923456-789a-0000-0000-000000000000" {
		t.Fatalf("idBefore = %s", got)
	}
}
