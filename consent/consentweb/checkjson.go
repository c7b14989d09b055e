package consentweb

import (
	"github.com/go-json-experiment/json/jsontext"

	"github.com/lupa-cmp/lupa/consent"
)

// appendCheckAnswer writes the bulk check's answer, {"purpose": …, "results": [...]}, the
// same JSON that encoding CheckResult would give. A check answers up to 10,000 identifiers
// and reflection over them cost a few milliseconds of the call's budget; this costs a
// fraction of one. Strings go through jsontext's quoting, so a client's identifier comes
// back escaped as JSON requires.
func appendCheckAnswer(dst []byte, purpose string, results []consent.CheckResult) ([]byte, error) {
	w := jsonWriter{b: dst}
	w.raw(`{"purpose":`)
	w.str(purpose)
	w.raw(`,"results":[`)
	for i := range results {
		if i > 0 {
			w.raw(",")
		}
		r := &results[i]
		w.raw(`{"identifier":{"kind":`)
		w.str(r.Identifier.Kind)
		if r.Identifier.Namespace != "" {
			w.raw(`,"namespace":`)
			w.str(r.Identifier.Namespace)
		}
		w.raw(`,"value":`)
		w.str(r.Identifier.Value)
		if r.MayUse {
			w.raw(`},"may_use":true,"state":`)
		} else {
			w.raw(`},"may_use":false,"state":`)
		}
		w.str(r.State)
		w.raw(`,"reason":`)
		w.str(r.Reason)
		w.raw("}")
	}
	w.raw("]}")
	return w.b, w.err
}

// jsonWriter appends JSON text and keeps the first error (a string that is not UTF-8).
type jsonWriter struct {
	b   []byte
	err error
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *jsonWriter) str(s string) {
	var err error
	if w.b, err = jsontext.AppendQuote(w.b, s); err != nil && w.err == nil {
		w.err = err
	}
}
