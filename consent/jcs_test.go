package consent_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/lupa-cmp/lupa/consent"
)

// consent.Canonical is Lupa's own RFC 8785 (JCS) encoder for the values the ledger hashes.
// An independent verifier will use some other JCS implementation, so the bytes must be the
// same: these tests compare it with github.com/gowebpki/jcs and with RFC 8785's examples.

func independentJCS(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		t.Fatalf("jcs.Transform(%s): %v", raw, err)
	}
	return string(out)
}

func TestCanonicalMatchesIndependentJCS(t *testing.T) {
	var controls strings.Builder
	for r := rune(0); r < 0x20; r++ {
		controls.WriteRune(r)
	}
	controls.WriteString("\x7f")
	cases := map[string]any{
		"control characters": consent.Obj{"s": controls.String()},
		"quotes and slashes": consent.Obj{"s": `"\/'<>&`},
		"line separators":    consent.Obj{"s": "a\u2028b\u2029c\u0085d"},
		"non-ASCII":          consent.Obj{"fi": "Välttämättömät evästeet", "sv": "Nödvändiga", "el": "Ελληνικά", "ja": "同意"},
		"astral plane":       consent.Obj{"s": "😀🇫🇮𝄞", "😀": 1, "\U00010000": 2, "\uffff": 3, "\ue000": 4},
		"invalid UTF-8":      consent.Obj{"s": "a\xffb\xc3"},
		"keys by UTF-16 not by code point": consent.Obj{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4,
			"\U0001F600": 5, "\u0080": 6, "\u00f6": 7, "": 8, "a": 9, "A": 10, "aa": 11, "a\x00": 12},
		"integers": consent.Obj{"zero": 0, "neg": -42, "ms": int64(1795687200123), "max_safe": int64(1<<53 - 1),
			"min_safe": int64(-(1<<53 - 1))},
		"booleans and null": consent.Obj{"t": true, "f": false, "n": nil},
		"nested": consent.Obj{"b": []any{consent.Obj{"z": "1", "y": []string{"b", "a"}}, "x", 3, []any{}},
			"a": consent.Obj{}, "c": map[string]string{"k2": "v", "k1": "w"}, "d": []consent.Obj{{"q": 1}}},
		"empty object": consent.Obj{},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			got, want := string(consent.Canonical(v)), independentJCS(t, v)
			if got != want {
				t.Fatalf("\nlupa: %q\njcs:  %q", got, want)
			}
		})
	}
}

// RFC 8785 section 3.2.3 orders these keys by UTF-16 code units; section 3.2.2.2 shows the
// serialisation of a string with escapes.
func TestCanonicalRFC8785Examples(t *testing.T) {
	sorting := consent.Obj{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
		"1": "One", "\U0001F600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
	want := "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\"," +
		"\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"
	if got := string(consent.Canonical(sorting)); got != want {
		t.Fatalf("RFC 8785 3.2.3:\n got %q\nwant %q", got, want)
	}
	// "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/" serialises as "€$\u000f\nA'B\"\\\\\"/".
	str := "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"/"
	if got, want := string(consent.Canonical(str)), `"€$\u000f\nA'B\"\\\\\"/"`; got != want {
		t.Fatalf("RFC 8785 3.2.2.2:\n got %s\nwant %s", got, want)
	}
}

// A seeded random walk over awkward characters, in keys and values, against the
// independent implementation.
func TestCanonicalRandomAgainstIndependentJCS(t *testing.T) {
	alphabet := []rune("aAzZ09 _-\"\\/\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\u0080\u00e4\u00f6\u2028\u20ac\ud7ff\ue000\ufb33\ufeff\uffff\U00010000\U0001F600\U0010FFFF")
	rng := rand.New(rand.NewPCG(8785, 6962))
	word := func() string {
		n := rng.IntN(6)
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := rng.IntN(6); {
		case k == 0 && depth < 3:
			o := consent.Obj{}
			for range rng.IntN(6) {
				o[word()] = value(depth + 1)
			}
			return o
		case k == 1 && depth < 3:
			a := []any{}
			for range rng.IntN(4) {
				a = append(a, value(depth+1))
			}
			return a
		case k == 2:
			return rng.Int64N(1<<53) - 1<<52
		case k == 3:
			return rng.IntN(2) == 0
		default:
			return word()
		}
	}
	for i := range 2000 {
		o := consent.Obj{}
		for range 1 + rng.IntN(8) {
			o[word()] = value(0)
		}
		if got, want := string(consent.Canonical(o)), independentJCS(t, o); got != want {
			t.Fatalf("case %d:\nlupa: %q\njcs:  %q", i, got, want)
		}
	}
}
