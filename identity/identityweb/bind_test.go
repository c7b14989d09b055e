package identityweb

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/identity"
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

// Each way a body can be wrong JSON for its endpoint is answered 400 with the field it is
// about, in the validator's notation, and a message saying what is wrong.
func TestDecodeNamesTheField(t *testing.T) {
	gin.SetMode(gin.TestMode)
	type decision struct {
		Purpose string `json:"purpose"`
		Version int    `json:"version"`
	}
	type in struct {
		Method    string            `json:"method"`
		Decisions []decision        `json:"decisions"`
		Labels    map[string]string `json:"labels"`
		Limit     *int              `json:"limit"`
		When      *time.Time        `json:"when"`
	}
	a := NewAPI(slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		name, body, field, message string
	}{
		{"unknown member", `{"method":"api","extra":1}`, "extra", "is not a field of this request"},
		{"unknown nested member", `{"decisions":[{"purpose":"a"},{"purpose":"b","why":"x"}]}`, "decisions[1].why", "is not a field of this request"},
		{"name in another case", `{"Method":"api"}`, "Method", "is not a field of this request"},
		{"name given twice", `{"method":"api","method":"verbal"}`, "method", "is given twice"},
		{"nested name given twice", `{"decisions":[{"purpose":"a","purpose":"b"}]}`, "decisions[0].purpose", "is given twice"},
		{"string for integer", `{"decisions":[{"version":"one"}]}`, "decisions[0].version", "must be an integer"},
		{"fraction for integer", `{"decisions":[{"version":1.5}]}`, "decisions[0].version", "must be an integer"},
		{"number for string", `{"method":7}`, "method", "must be a string"},
		{"object for array", `{"decisions":{}}`, "decisions", "must be an array"},
		{"number for map value", `{"labels":{"a":1}}`, "labels[a]", "must be a string"},
		{"string for pointer to integer", `{"limit":"ten"}`, "limit", "must be an integer"},
		{"array for the body", `[]`, "", "must be an object"},
		{"no such date", `{"when":"2026-13-45"}`, "when", "must be an RFC 3339 date-time"},
		{"words for a time", `{"when":"yesterday"}`, "when", "must be an RFC 3339 date-time"},
		{"object for a time", `{"when":{}}`, "when", "must be an RFC 3339 date-time"},
		{"syntax", `{"method":"api",}`, "", "syntax error at byte 15"},
		{"trailing data", `{"method":"api"}{}`, "", "syntax error at byte 16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			g, _ := gin.CreateTestContext(w)
			g.Request = httptest.NewRequest(http.MethodPost, "/x", nil)
			var dst in
			if a.Decode(g, []byte(c.body), &dst) {
				t.Fatalf("%s was accepted", c.body)
			}
			var p struct {
				Status int                   `json:"status"`
				Errors []identity.FieldError `json:"errors"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != c.field || p.Errors[0].Message != c.message {
				t.Fatalf("%s: got %s, want field %q: %q", c.body, w.Body, c.field, c.message)
			}
		})
	}
}
