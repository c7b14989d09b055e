package consent

import (
	"context"
	"slices"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// SystemDecision is what a person did in a connected system — unsubscribing through a
// newsletter's link at Mailchimp, opting out in HubSpot — to be recorded in Lupa.
type SystemDecision struct {
	TenantID   string
	Identifier identity.Identifier // how the system named the person (their email)
	Purposes   []string
	// Channel names the system ("mailchimp"); Reason says what it reported
	// ("vendor_unsubscribe", "vendor_compliance_state").
	Channel string
	Reason  string
	// OccurredAt is when it happened there; a decision made in Lupa since stands. Zero when
	// the system reports a standing fact rather than an event (Mailchimp's compliance state:
	// the person can't be mailed, whatever Lupa says).
	OccurredAt time.Time
}

// RecordFromSystem records a withdrawal (or, for a legitimate-interest purpose, an
// objection) for each purpose the person currently grants, as one interaction through the
// writer (method system, actor system, the system as channel). Purposes not granted now, or
// decided in Lupa after OccurredAt, are left alone: the vendor only ever takes away, and
// never overrides a newer choice. It returns how many decisions it recorded. A person Lupa
// does not know is identity.ENotFound.
func (s *Service) RecordFromSystem(ctx context.Context, in SystemDecision) (int, error) {
	id := in.Identifier.Normalized()
	if err := id.Validate("identifier"); err != nil {
		return 0, err
	}
	c, err := s.Catalog(ctx, in.TenantID)
	if err != nil {
		return 0, err
	}
	subj, err := s.lookup(ctx, in.TenantID, id, true)
	if err != nil {
		return 0, err
	}
	if subj.id == "" {
		return 0, identity.NotFound("subject")
	}
	now := s.now()
	var decisions []resolved
	for _, st := range subj.states {
		cp, ok := c.PurposeByID(st.PurposeID)
		if !ok || !slices.Contains(in.Purposes, cp.Key) || Effective(st, cp.Purpose, now) != StateGranted {
			continue
		}
		v := cp.Versions[st.Version]
		if v == nil {
			v = cp.Latest
		}
		if v == nil {
			continue
		}
		requested := Withdrawn
		if cp.LegalBasis == BasisLegitimateInterest {
			requested = Objected
		}
		r := resolved{purpose: cp, version: v, requested: requested, onlyIf: StateGranted}
		if !in.OccurredAt.IsZero() {
			r.decidedBefore = in.OccurredAt.UnixMilli()
		}
		decisions = append(decisions, r)
	}
	if len(decisions) == 0 {
		return 0, nil
	}
	slices.SortFunc(decisions, func(a, b resolved) int { return cmpString(a.purpose.Key, b.purpose.Key) })
	ir := &interaction{tenantID: in.TenantID, id: identity.NewID(), catalog: c, subjectID: subj.id, pseudonym: subj.pseudonym,
		identifier: &id, channel: in.Channel, method: MethodSystem, actor: string(identity.ActorSystem), decisions: decisions,
		reason: in.Reason}
	out, err := s.writer.Submit(ctx, ir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range out.Events {
		if e.Decision == Withdrawn || e.Decision == Objected {
			n++
		}
	}
	return n, nil
}
