package consentweb

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/lupa-cmp/lupa/consent"
)

// appendCheckAnswer writes the bulk check's answer, {"purpose": …, "results": [...]}, the
// same JSON that encoding CheckResult would give. A check answers up to 10,000 identifiers
// and reflection over them cost a few milliseconds of the call's budget; this costs a
// fraction of one. Strings go through jsontext's quoting, so a client's identifier comes
// back escaped as JSON requires.
func appendCheckAnswer(dst []byte, purpose string, results []consent.CheckResult) ([]byte, error) {
	var err error
	dst = append(dst, `{"purpose":`...)
	if dst, err = jsontext.AppendQuote(dst, purpose); err != nil {
		return nil, err
	}
	dst = append(dst, `,"results":[`...)
	for i := range results {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendCheckResult(dst, &results[i]); err != nil {
			return nil, err
		}
	}
	return append(dst, "]}"...), nil
}

func appendCheckResult(dst []byte, r *consent.CheckResult) ([]byte, error) {
	var err error
	dst = append(dst, `{"identifier":{"kind":`...)
	if dst, err = jsontext.AppendQuote(dst, r.Identifier.Kind); err != nil {
		return nil, err
	}
	if r.Identifier.Namespace != "" {
		dst = append(dst, `,"namespace":`...)
		if dst, err = jsontext.AppendQuote(dst, r.Identifier.Namespace); err != nil {
			return nil, err
		}
	}
	dst = append(dst, `,"value":`...)
	if dst, err = jsontext.AppendQuote(dst, r.Identifier.Value); err != nil {
		return nil, err
	}
	dst = append(dst, `},"may_use":`...)
	dst = strconv.AppendBool(dst, r.MayUse)
	dst = append(dst, `,"state":`...)
	if dst, err = jsontext.AppendQuote(dst, r.State); err != nil {
		return nil, err
	}
	dst = append(dst, `,"reason":`...)
	if dst, err = jsontext.AppendQuote(dst, r.Reason); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}
