package consent

import (
	"context"
	"slices"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Reasons WithdrawAll's withdrawals are recorded with. The callers are under identity/,
// which cannot import consent, and pass the same strings; the integrations tell downstream
// systems the cause from them (reason account_deleted, not a decision of the person's).
const (
	WithdrawUserDeleted    = "idp_user_deleted" // the company's CIAM deleted the user (user.deleted)
	WithdrawAccountDeleted = "account_deleted"  // the person deleted their Lupa account
)

// WithdrawAll records `withdrawn` for every consent-based purpose the subject named by id
// currently grants, as one interaction (channel system, the given method, actor system),
// through the writer like any decision: the withdrawals are chained ledger events, change
// the state and write a domain event, so downstream systems hear of them. It is for a
// person who is gone — a deleted CIAM user or account — and returns how many consents it
// withdrew (none when nothing was granted). A grant still pending its double opt-in
// confirmation is ended as well (a refusal, not counted). Refusals, objections and
// legitimate-interest purposes are left as they are.
//
// reason says why (WithdrawUserDeleted, WithdrawAccountDeleted); the withdrawal events and
// the domain event's changes carry it.
func (s *Service) WithdrawAll(ctx context.Context, tenantID string, id identity.Identifier, method, reason string) (int, error) {
	if !slices.Contains(Methods, method) {
		return 0, identity.FieldErrors("validation failed", identity.FieldError{Field: "method", Message: "unknown method"})
	}
	id = id.Normalized()
	if err := id.Validate("identifier"); err != nil {
		return 0, err
	}
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	subj, err := s.lookup(ctx, tenantID, id, true)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var decisions []resolved
	for _, st := range subj.states {
		cp, ok := c.PurposeByID(st.PurposeID)
		eff := ""
		if ok {
			eff = Effective(st, cp.Purpose, now)
		}
		// A grant still waiting for its double opt-in confirmation ends too (recorded as a
		// refusal: it was never a grant), so the emailed link confirms nothing afterwards.
		if !ok || cp.LegalBasis != BasisConsent || (eff != StateGranted && eff != StatePending) {
			continue
		}
		v := cp.Versions[st.Version]
		if v == nil {
			v = cp.Latest
		}
		if v == nil {
			continue
		}
		// Only while still so when the writer gets to it: a person who decides in the same
		// instant keeps their own decision.
		decisions = append(decisions, resolved{purpose: cp, version: v, requested: Withdrawn, onlyIf: eff})
	}
	if len(decisions) == 0 {
		return 0, nil
	}
	// In purpose order, so the chain reads the same whoever replays it.
	slices.SortFunc(decisions, func(a, b resolved) int { return cmpString(a.purpose.Key, b.purpose.Key) })
	in := &interaction{tenantID: tenantID, id: identity.NewID(), catalog: c, subjectID: subj.id, pseudonym: subj.pseudonym,
		identifier: &id, channel: "system", method: method, actor: string(identity.ActorSystem), decisions: decisions,
		reason: reason}
	// No plan is made here: the writer plans it under the head lock, on the state as it is
	// then.
	out, err := s.writer.Submit(ctx, in)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range out.Events {
		if e.Decision == Withdrawn {
			n++
		}
	}
	return n, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// PersonState returns an authenticated person's state for every purpose the property asks,
// person-level and device-level alike. A person Lupa has not met yet (the first request of
// a new CIAM user) is created: the token proves the person, and the answer then names the
// pseudonym their decisions will be recorded under.
func (s *Service) PersonState(ctx context.Context, p *identity.Property, id identity.Identifier) (*StateView, error) {
	if err := id.Validate("identifier"); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	subj, err := s.lookup(ctx, p.TenantID, id, false)
	if identity.IsCode(err, identity.ENotFound) {
		var ns *identity.Subject
		err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			ns, _, err = s.ids.EnsurePerson(ctx, tx, p.TenantID, id)
			return err
		})
		if isUnique(err) { // created a moment ago by a concurrent request
			subj, err = s.lookup(ctx, p.TenantID, id, false)
		} else if err == nil {
			subj = &subjectState{id: ns.ID, pseudonym: ns.Pseudonym, kind: ns.Kind, states: map[string]*Stored{}}
		}
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	level := ""
	if subj.kind == identity.SubjectDevice {
		level = LevelDevice
	}
	v := &StateView{Subject: subj.pseudonym, State: []PurposeState{}}
	for _, cp := range c.Asked(p, level) {
		v.State = append(v.State, View(subj.states[cp.ID], cp.Purpose, now))
	}
	return v, nil
}
