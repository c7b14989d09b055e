package consentweb

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// The hand-written answer must say exactly what encoding the results would: every
// identifier comes back as the client sent it, however hostile its characters.
func TestCheckAnswerMatchesEncodingJSON(t *testing.T) {
	runes := []rune{'a', 'Z', '0', ' ', '"', '\\', '/', '<', '>', '&', '\t', '\n', 0, 0x1f, 0x7f, 0x85, 'Ä', '€', 0x2028, 0x2029, 0xfeff, 0x1F600}
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string {
		r := make([]rune, rng.IntN(12))
		for i := range r {
			r[i] = runes[rng.IntN(len(runes))]
		}
		return string(r)
	}
	for round := range 200 {
		res := make([]consent.CheckResult, rng.IntN(20))
		for i := range res {
			res[i] = consent.CheckResult{
				Identifier: identity.Identifier{Kind: str(), Value: str()},
				MayUse:     rng.IntN(2) == 0, State: str(), Reason: str()}
			if rng.IntN(3) == 0 {
				res[i].Identifier.Namespace = str()
			}
		}
		purpose := str()
		got, err := appendCheckAnswer(nil, purpose, res)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{"purpose": purpose, "results": res})
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("round %d: not JSON: %v\n%s", round, err, got)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("round %d:\n got %s\nwant %s", round, got, want)
		}
	}
}

// Strings that are not UTF-8 cannot reach the check (the body is refused first); if one
// did, the answer is an error rather than a quietly altered identifier.
func TestCheckAnswerRefusesInvalidUTF8(t *testing.T) {
	res := []consent.CheckResult{{Identifier: identity.Identifier{Kind: "customer_number", Value: "C1\xff"}}}
	if _, err := appendCheckAnswer(nil, "p", res); err == nil {
		t.Fatal("an identifier that is not UTF-8 was written")
	}
}

func BenchmarkCheckAnswer(b *testing.B) {
	res := make([]consent.CheckResult, consent.MaxCheck)
	for i := range res {
		res[i] = consent.CheckResult{Identifier: identity.Identifier{Kind: "customer_number", Value: "C00012345"},
			MayUse: i%2 == 0, State: "granted", Reason: "granted"}
	}
	buf := make([]byte, 0, 64+len(res)*checkResultSize)
	for b.Loop() {
		if _, err := appendCheckAnswer(buf[:0], "marketing_email", res); err != nil {
			b.Fatal(err)
		}
	}
}
