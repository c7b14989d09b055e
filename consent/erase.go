package consent

import (
	"context"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Erasure. A subject is erased when its evidence period ends (the evidence sweep, sweep.go)
// or when it is asked for (EraseSubject, for the data-subject request queue). Either way an
// erasure event is chained through the writer and, in the same transaction, everything that
// links the chain to a person is destroyed: the subject's key, pseudonym and identifiers,
// its receipts, client context and current state — and the same of every subject merged
// into it (the same person's devices and former records), and whatever other domains keep
// about those subjects (OnErase). The chains stay and still verify.

// EraseHook returns statements of another domain that erase what it keeps about a
// subject (an account's personal columns, the address a connector last wrote). They run in
// the erasure's transaction, once for the erased subject and once for each subject merged
// into it.
type EraseHook func(tenantID, subjectID string, at time.Time) []sqldb.Statement

// OnErase adds a hook to every erasure. Register hooks before StartWriter.
func (s *Service) OnErase(h EraseHook) { s.eraseHooks = append(s.eraseHooks, h) }

// eraseBasis is what an evidence sweep's erasure depends on. subjectID and seq are the
// chain head the sweep saw, so that a decision made since stops the erasure. liveAccount is
// not the sweep's: the writer sets it (checkErasable) in its transaction, under the head's
// lock, just before it plans the erasure.
type eraseBasis struct {
	subjectID   string
	seq         int64
	liveAccount bool
}

// holds says whether an erasure still applies on top of head h of subject subjectID: always
// for an erasure that was asked for (nil); for the sweep's, only while the chain is the one
// it saw (no decision, expiry or merge since, and still the same subject — not the person a
// device was merged into meanwhile) and the subject has no live account.
func (b *eraseBasis) holds(subjectID string, h head) bool {
	return b == nil || (b.subjectID == subjectID && b.seq == h.seq && !b.liveAccount)
}

// hasLiveAccount is the condition that subject s (the query's alias) has a live account.
// The evidence sweep leaves such a subject alone: its identifiers (email address, identity
// provider identities) serve the account's sign-in, not only the evidence. Deleting the
// account is its own path. The sweep's query (evidenceEnded) and the writer's check under the
// lock (liveAccountSQL) share it.
const hasLiveAccount = "EXISTS (SELECT 1 FROM accounts a WHERE a.tenant_id = s.tenant_id AND a.subject_id = s.id AND a.status = 'active')"

// liveAccountSQL finds a subject again when it has a live account.
const liveAccountSQL = "SELECT s.id FROM subjects s WHERE s.tenant_id = ? AND s.id = ? AND " + hasLiveAccount

// checkErasable looks, inside the writer's transaction and after the chain head is locked,
// whether the subject of a sweep's erasure has a live account, and records it in the
// erasure's basis for holds. It looks again each time the writer plans the erasure.
func (s *Service) checkErasable(ctx context.Context, t writeTx, in *interaction) error {
	if in.erase == "" || in.eraseIf == nil {
		return nil
	}
	// The subject's row first: an account being made for the person outside the writer
	// (a sign-in with an identity provider) holds it until it commits, so the look below
	// sees that account (identity.LockLive).
	if err := t.exec(ctx, identity.LockSubject(s.db, in.tenantID, in.subjectID)); err != nil {
		return err
	}
	live, err := t.strings(ctx, sqldb.Statement{SQL: liveAccountSQL, Args: []any{in.tenantID, in.subjectID}})
	in.eraseIf.liveAccount = len(live) > 0
	return err
}

// erase destroys, in the writer's transaction, what links the erased subject's chain and
// the chains merged into it to a person.
func (s *Service) erase(ctx context.Context, t writeTx, er erasure, at int64) error {
	merged, err := t.strings(ctx, identity.MergedInto(er.tenantID, er.subjectID))
	if err != nil {
		return err
	}
	when := time.UnixMilli(at)
	for _, id := range append([]string{er.subjectID}, merged...) {
		for _, st := range s.eraseStatements(er.tenantID, id, when) {
			if err := t.exec(ctx, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// eraseStatements destroy what links one subject's chain to a person: its key, pseudonym
// and identifiers, its receipts and client context, its current state, and what the other
// domains keep about it. The chain stays.
func (s *Service) eraseStatements(tenantID, subjectID string, at time.Time) []sqldb.Statement {
	out := []sqldb.Statement{
		{SQL: "DELETE FROM receipts WHERE tenant_id = ? AND subject_id = ?", Args: []any{tenantID, subjectID}},
		{SQL: "DELETE FROM interaction_context WHERE tenant_id = ? AND subject_id = ?", Args: []any{tenantID, subjectID}},
		{SQL: "DELETE FROM consent_state WHERE tenant_id = ? AND subject_id = ?", Args: []any{tenantID, subjectID}},
	}
	out = append(out, identity.DestroySubjectKeySQL(tenantID, subjectID, at)...)
	for _, h := range s.eraseHooks {
		out = append(out, h(tenantID, subjectID, at)...)
	}
	return out
}

// ErrErasedMeanwhile answers a write whose subject was erased after the request had found
// it: nothing was recorded. Sent again, the request finds no one by that identifier.
var ErrErasedMeanwhile = identity.Errorf(identity.EConflict,
	"the subject was erased while this request was being recorded: nothing was recorded")

// afterErasure settles an interaction whose subject was erased while it was on its way:
// nothing is ever written to an erased subject. A sweep's change or another erasure has
// nothing left to do. A device's choice (a banner click) is not lost: it starts a new
// device, as a device id Lupa no longer knows does. Anything else — a server naming a
// customer, a person's own decision — is refused alone: it was meant for someone who is no
// longer there.
func (s *Service) afterErasure(j *job) error {
	in := j.in
	in.erased = false
	switch {
	case in.erase != "" || len(in.system) > 0:
		j.out, j.answered = &Outcome{InteractionID: in.id, Events: []EventRef{}, State: []PurposeState{}}, true
	case in.deviceID != "":
		return s.asNewDevice(in)
	default:
		j.err, j.answered = ErrErasedMeanwhile, true
	}
	return nil
}

// asNewDevice points an anonymous device's interaction at a new device subject with a new
// device id, to be planned again there.
func (s *Service) asNewDevice(in *interaction) error {
	id := identity.Identifier{Kind: identity.IDDevice, Value: identity.NewDeviceID()}
	if _, err := s.prepareNewSubject(in, id, s.now()); err != nil {
		return err
	}
	in.pre, in.redirect = nil, ""
	return nil
}

// maxErasureReason is how long the reason of an erasure asked for may be. The reason is a
// code (validCode), such as "dsr:<request id>": it goes into the erasure event's hashed
// form, which is never changed or deleted, and personal data must never be there (it
// outlives the erasure it records): free text — "asked for by anna@example.com" — cannot be
// given.
const maxErasureReason = 200

// EraseSubject erases a subject now, whatever its consents: an erasure event is chained
// with reason, then the subject's key, identifiers, receipts, client context and state are
// destroyed, with those of every subject merged into it and what other domains keep about
// them (OnErase), in one transaction. A subject merged into another is the same person as
// that one: the one it was merged into is erased. Erasing an erased subject changes nothing.
// It is the data-subject request queue's erasure; whether the law lets a request be carried
// out (Art. 17(3)) is decided before calling it.
func (s *Service) EraseSubject(ctx context.Context, tenantID, subjectID, reason string, actor identity.Actor) error {
	reason = strings.TrimSpace(reason)
	if !validCode(reason, maxErasureReason) {
		return identity.Unprocessable("reason", "say why with a code of 1–200 letters, digits and . _ : - (such as dsr:<request id>): it is kept in the ledger for good")
	}
	subj, err := s.personOf(ctx, tenantID, subjectID)
	if err != nil || subj.Pseudonym == "" {
		return err // erased already: nothing to do
	}
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return err
	}
	in := s.systemInteraction(c, tenantID, subj.ID, subj.Pseudonym, "subject.erased")
	in.erase = reason
	if actor != "" {
		in.actor = string(actor)
	}
	_, err = s.writer.Submit(ctx, in)
	return err
}

// personOf returns the subject, or the one its merges end at (identity.PersonOf).
func (s *Service) personOf(ctx context.Context, tenantID, subjectID string) (*identity.Subject, error) {
	person, err := identity.PersonOf(ctx, s.db.Write, tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	return s.ids.SubjectByID(ctx, s.db.Write, tenantID, person)
}
