package consent_test

import (
	"context"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// TestAgentIsAnID: a verbal consent names its agent by id. The agent is hashed into the
// event, which is never changed or deleted, so a name or an address given there would
// outlive every erasure: it is refused with the field named, and nothing is written.
func TestAgentIsAnID(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		before := e.tableCounts(t)
		for _, agent := range []string{"Maija Virtanen", "maija.virtanen@callcentre.example", "-17", "agent 17", "ägent-17"} {
			_, err := e.svc.Record(ctx, e.customerRequest("C-7", consent.MethodVerbal, agent, grant("marketing_email", 1)))
			wantField(t, wantCode(t, err, identity.EInvalid), "agent", "id")
		}
		if got := e.grew(t, before); got["consent_events"] != 0 {
			t.Fatalf("refused requests wrote %v", got)
		}
		out, err := e.svc.Record(ctx, e.customerRequest("C-7", consent.MethodVerbal, " CC-agent_17.fi:2 ", grant("marketing_email", 1)))
		if err != nil {
			t.Fatal(err)
		}
		var agent string
		e.db.Read.Raw("SELECT agent FROM consent_events WHERE id = ?", out.Events[0].ID).Scan(&agent)
		if agent != "CC-agent_17.fi:2" {
			t.Fatalf("recorded agent %q", agent)
		}
	})
}
