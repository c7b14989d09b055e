package identityweb

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// The scan for control characters may only be skipped for bodies that cannot hold one:
// whatever string a client encodes, a control character in it must make mayHoldControl
// true, however the encoder chose to write it (escaped or raw).
func TestMayHoldControlNeverMissesOne(t *testing.T) {
	runes := []rune{'a', 'Ä', '€', ' ', '"', '/', '\t', '\n', '\r', 0, 0x08, 0x0c, 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9f, 0xa0, 0x2028, 0x1F600}
	rng := rand.New(rand.NewPCG(1, 2))
	controls := 0
	for range 20000 {
		r := make([]rune, 1+rng.IntN(8))
		for i := range r {
			r[i] = runes[rng.IntN(len(runes))]
		}
		s := string(r)
		body, err := json.Marshal(map[string]string{"name": s})
		if err != nil {
			t.Fatal(err)
		}
		if hasControl(s) {
			controls++
			if !mayHoldControl(body) {
				t.Fatalf("%q encoded as %s: the control character would go unnoticed", s, body)
			}
		}
	}
	if controls == 0 {
		t.Fatal("no string with a control character was tried")
	}
	// Raw DEL and C1 characters are valid JSON, unescaped.
	for _, body := range []string{"{\"name\":\"a\x7fb\"}", "{\"name\":\"a\u0085b\"}", "{\"name\":\"\u009f\"}"} {
		if !mayHoldControl([]byte(body)) {
			t.Fatalf("%q: raw control character missed", body)
		}
	}
	// Plain text, including other characters encoded with 0xC2, skips the scan.
	for _, body := range []string{`{"name":"Demo Retail Oy","city":"Åbo"}`, "{\"price\":\"5 \u00a3\",\"x\":\"\u00a0\u00bf\"}"} {
		if mayHoldControl([]byte(body)) {
			t.Fatalf("%s: no control character, yet the scan would run", body)
		}
	}
}
