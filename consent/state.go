package consent

import "time"

// States of a subject's consent for a purpose.
const (
	StateGranted   = "granted"
	StateDenied    = "denied"
	StateWithdrawn = "withdrawn"
	StateObjected  = "objected"
	// StatePending is a grant of a double opt-in purpose not yet confirmed: not a grant.
	StatePending  = PendingConfirmation
	StateExpired  = "expired"
	StateOutdated = "outdated"
	StateNotAsked = "not_asked"
)

// Stored is the stored current state of one subject and purpose.
type Stored struct {
	SubjectID  string
	PurposeID  string
	PurposeKey string
	State      string
	Version    int
	DecidedAt  int64
	// ExpiresAt is only written (the expiry sweep's index, see expiresAt); reads never load
	// it and derive the expiry from the purpose's current interval instead.
	ExpiresAt *int64
	EventSeq  int64
	Method    string
}

// PurposeState is the state of one purpose for one subject as the API shows it.
type PurposeState struct {
	Purpose   string     `json:"purpose"`
	State     string     `json:"state"`
	Version   int        `json:"version,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Method    string     `json:"method,omitempty"`
	// MayUse says whether the purpose may be carried out for this subject right now.
	MayUse bool `json:"may_use"`
}

// Effective returns the state that holds now: a stored grant (or one waiting for its double
// opt-in confirmation) older than the purpose's latest material version is outdated; a grant
// (a pending one too: the banner asks again then) or refusal past its re-ask time is
// expired. The sweeps write the matching events later; reads never wait for them.
func Effective(s *Stored, p *Purpose, now time.Time) string {
	if s == nil {
		return StateNotAsked
	}
	st := s.State
	if (st == StateGranted || st == StatePending) && p.LegalBasis == BasisConsent && s.Version < p.MaterialVersion {
		return StateOutdated
	}
	if exp := expiresAt(s, p); exp != nil && *exp <= now.UnixMilli() && (st == StateGranted || st == StateDenied || st == StateWithdrawn || st == StatePending) {
		return StateExpired
	}
	return st
}

// expiresAt is when a stored decision is asked again: the purpose's current re-ask interval
// after the decision, for grants (confirmed or pending) and refusals of a consent. The
// current interval, not the one when the decision was made: the banner counts from its
// cookie with the interval its configuration says now, and both must agree. The stored
// expires_at is only the expiry sweep's index; the sweeper rewrites it after a change
// (RewriteExpiries).
func expiresAt(s *Stored, p *Purpose) *int64 {
	if p.LegalBasis != BasisConsent {
		return nil
	}
	switch s.State {
	case StateGranted, StateDenied, StateWithdrawn, StatePending:
		exp := addMonths(s.DecidedAt, p.ReaskMonths)
		return &exp
	}
	return nil
}

// MayUse says whether a purpose may be carried out given its effective state: consent needs
// a current grant; legitimate interest holds unless the person objected; strictly necessary
// storage always may.
func MayUse(p *Purpose, effective string) bool {
	switch p.LegalBasis {
	case BasisNecessary:
		return true
	case BasisLegitimateInterest:
		return effective != StateObjected
	default:
		return effective == StateGranted
	}
}

// View turns a stored state into what the API shows.
func View(s *Stored, p *Purpose, now time.Time) PurposeState {
	eff := Effective(s, p, now)
	ps := PurposeState{Purpose: p.Key, State: eff, MayUse: MayUse(p, eff)}
	if s != nil {
		d := time.UnixMilli(s.DecidedAt).UTC()
		ps.DecidedAt, ps.Version, ps.Method = &d, s.Version, s.Method
		if exp := expiresAt(s, p); exp != nil {
			e := time.UnixMilli(*exp).UTC()
			ps.ExpiresAt = &e
		}
	}
	return ps
}

// addMonths returns t plus n calendar months, in milliseconds.
func addMonths(ms int64, n int) int64 {
	return time.UnixMilli(ms).UTC().AddDate(0, n, 0).UnixMilli()
}

// normalize turns a requested decision into the recorded one, given the current effective
// state: refusing a current grant is a withdrawal; withdrawing nothing is a refusal; on a
// legitimate-interest purpose any refusal is an objection. It returns the event kind too.
func normalize(requested string, p *Purpose, current string) (decision, kind string) {
	if p.LegalBasis == BasisLegitimateInterest {
		if requested == Granted {
			return Granted, KindDecision
		}
		return Objected, KindObjection
	}
	switch requested {
	case Denied, Withdrawn:
		if current == StateGranted {
			return Withdrawn, KindDecision
		}
		return Denied, KindDecision
	default:
		return requested, KindDecision
	}
}

// nextState is the stored state after a decision event.
func nextState(decision string, p *Purpose, version int, at int64, seq int64, method string, subjectID string) Stored {
	s := Stored{SubjectID: subjectID, PurposeID: p.ID, PurposeKey: p.Key, State: decision, Version: version,
		DecidedAt: at, EventSeq: seq, Method: method}
	// Grants and refusals alike are asked again after the re-ask interval, never before.
	s.ExpiresAt = expiresAt(&s, p)
	return s
}
