package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Merge reasons: why a device joined a person.
const (
	MergeSignIn       = "sign_in"        // the person signed in on the device
	MergeRegistration = "registration"   // the person registered on the device
	MergeCIAM         = "ciam_token"     // an app sent the person's CIAM token with the device id
	MergeAnonymous    = "anonymous"      // reason of a decision carried over from an anonymous device
	MergeIdentity     = "identity_merge" // two persons a CIAM merged into one
	MergedPerson      = "merged_person"  // reason of a decision carried over from a merged person
	MergedInto        = "merged_into:"   // reason on the merged chain, followed by the survivor's pseudonym
	mergeDomainEvent  = "subject.merged" // domain event type
)

// mergeSpec asks the writer to join a device's chain to a person's.
type mergeSpec struct {
	from, into string // subject ids
	reason     string
	persons    bool // two persons, both identified: the newer explicit decision wins
}

// MergeOutcome says what linking a device to a person did.
type MergeOutcome struct {
	InteractionID string         `json:"interaction_id,omitempty"`
	Subject       string         `json:"subject"`
	AlreadyLinked bool           `json:"already_linked"`
	Carried       []string       `json:"carried"` // device-level purposes whose anonymous decision the person took over
	State         []PurposeState `json:"state"`
}

// LinkDevice joins a device's anonymous history to the person it now belongs to, as the
// rules of linking say:
//   - the device's chain stays as it is, and gains a merge event naming the person; the
//     person's chain gains a merge event carrying the device chain's head hash, so both
//     chains verify and the join is itself evidence;
//   - the device's identifiers move to the person, so the device shows the person's state;
//   - an anonymous decision never creates or overrides a person-level consent (a device
//     has none), and never overrides the person's own device-level decision; where the
//     person has none for a device-level purpose, the device's decision is carried over,
//     marked anonymous, so the device is not asked again;
//   - kiosk properties never link.
//
// It is idempotent: linking a device that already belongs to the person changes nothing.
// It goes through the ledger writer like every other write.
func (s *Service) LinkDevice(ctx context.Context, p *identity.Property, device, person identity.Identifier, reason string, actor identity.Actor) (*MergeOutcome, error) {
	if p == nil {
		return nil, identity.Errorf(identity.EInvalid, "a device is linked on a property")
	}
	if p.Kind == identity.PropertyKiosk {
		return nil, identity.Errorf(identity.EUnprocessable, "kiosk properties never link devices to people: the next person at the kiosk is someone else")
	}
	if device.Kind != identity.IDDevice || person.Kind == identity.IDDevice {
		return nil, identity.Errorf(identity.EInvalid, "link a device identifier to a person's identifier")
	}
	if err := device.Validate("device"); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	from, err := s.ids.FindSubject(ctx, p.TenantID, device)
	if err != nil {
		return nil, err
	}
	into, err := s.ids.FindSubject(ctx, p.TenantID, person)
	if err != nil {
		return nil, err
	}
	if into.Kind != identity.SubjectPerson {
		return nil, identity.Errorf(identity.EInvalid, "a device is linked to a person")
	}
	if from.ID == into.ID {
		return &MergeOutcome{Subject: into.Pseudonym, AlreadyLinked: true, Carried: []string{}, State: []PurposeState{}}, nil
	}
	if from.Kind != identity.SubjectDevice {
		return nil, errDeviceOfAnother()
	}
	in := &interaction{tenantID: p.TenantID, id: identity.NewID(), catalog: c, property: p, subjectID: into.ID,
		pseudonym: into.Pseudonym, channel: p.Channel(), method: MethodSystem, actor: string(actor),
		domainEventType: mergeDomainEvent, view: c.Asked(p, ""), merge: &mergeSpec{from: from.ID, into: into.ID, reason: reason}}
	out, err := s.writer.Submit(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.merge, nil
}

// mergeHead is a locked chain head, with the subject it was merged into, if any.
type mergeHead struct {
	Seq        int64
	Hash       string
	MergedInto *string
}

// commitMerge writes a merge in its own transaction, with both chain heads locked in the
// writer's order (by subject id), so that it serialises with every batch that touches
// either subject.
func (s *Service) commitMerge(ctx context.Context, in *interaction) (*Outcome, error) {
	m := in.merge
	var out *Outcome
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Chain heads first, then subjects: the order of every writer batch (an erasure
		// updates its subjects, a registration's account refers to its subject), so the
		// two never wait for each other in a circle.
		heads, err := lockHeadRows(tx, s.db, in.tenantID, m.from, m.into)
		if err != nil {
			return err
		}
		subjects, err := lockSubjects(tx, s.db, in.tenantID, m.from, m.into)
		if err != nil {
			return err
		}
		from, into := subjects[m.from], subjects[m.into]
		if from == nil || into == nil || from.Pseudonym == nil || into.Pseudonym == nil {
			// Erased since it was looked up (an erased subject has no pseudonym): nothing
			// joins an erased chain, and no one is linked to it.
			return identity.NotFound("subject")
		}
		if m.persons && from.Kind != identity.SubjectPerson {
			return identity.Errorf(identity.EConflict, "merge persons into persons")
		}
		if from.MergedInto != nil {
			if *from.MergedInto != m.into {
				return identity.Errorf(identity.EConflict, "the device was linked to another person a moment ago")
			}
			// Linked already (a concurrent sign-in did it): nothing to write.
			out = &Outcome{merge: &MergeOutcome{Subject: *into.Pseudonym, AlreadyLinked: true, Carried: []string{}, State: []PurposeState{}}}
			return nil
		}
		states, err := statesFor(tx, in.tenantID, m.from, m.into)
		if err != nil {
			return err
		}
		plan, err := s.planMerge(ctx, tx, in, from, into, heads, states)
		if err != nil {
			return err
		}
		if err := writeMerge(tx, in, plan); err != nil {
			return err
		}
		out = plan.out
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type mergeSubject struct {
	ID         string
	Kind       string
	Pseudonym  *string
	MergedInto *string
}

func lockSubjects(tx *gorm.DB, db *sqldb.DB, tenantID string, ids ...string) (map[string]*mergeSubject, error) {
	var rows []mergeSubject
	if err := tx.Raw("SELECT id, kind, pseudonym, merged_into FROM subjects WHERE tenant_id = ? AND id IN ? ORDER BY id"+db.ForUpdate(),
		tenantID, ids).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := map[string]*mergeSubject{}
	for i := range rows {
		out[rows[i].ID] = &rows[i]
	}
	return out, nil
}

func lockHeadRows(tx *gorm.DB, db *sqldb.DB, tenantID string, ids ...string) (map[string]head, error) {
	var rows []struct {
		SubjectID string
		Seq       int64
		Hash      string
	}
	if err := tx.Raw("SELECT subject_id, seq, hash FROM chain_heads WHERE tenant_id = ? AND subject_id IN ? ORDER BY subject_id"+db.ForUpdate(),
		tenantID, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("lock chain heads: %w", err)
	}
	out := map[string]head{}
	for _, r := range rows {
		out[r.SubjectID] = head{seq: r.Seq, hash: r.Hash}
	}
	return out, nil
}

func statesFor(tx *gorm.DB, tenantID string, ids ...string) (map[string]map[string]*Stored, error) {
	rows, err := tx.Raw(`SELECT subject_id, purpose_id, purpose_key, state, version, decided_at, event_seq, method
		FROM consent_state WHERE tenant_id = ? AND subject_id IN ?`, tenantID, ids).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]*Stored{}
	for rows.Next() {
		if err := scanState(rows, out); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// mergePlan is what a merge writes.
type mergePlan struct {
	intoEvents, fromEvents []*Event
	intoHead, fromHead     head
	states                 []Stored
	now                    int64
	out                    *Outcome
}

// explicit says whether a stored state is a decision someone made (not expired, outdated
// or never asked).
func explicit(st *Stored, p *Purpose, now time.Time) bool {
	switch Effective(st, p, now) {
	case StateGranted, StateDenied, StateWithdrawn, StateObjected:
		return true
	}
	return false
}

func (s *Service) planMerge(ctx context.Context, tx *gorm.DB, in *interaction, from, into *mergeSubject, heads map[string]head,
	states map[string]map[string]*Stored) (*mergePlan, error) {
	now := s.now()
	p := &mergePlan{now: now.UnixMilli(), intoHead: heads[into.ID], fromHead: heads[from.ID]}
	chain := func(subjectID, pseudonym string, h *head, e *Event) *Event {
		e.TenantID, e.SubjectID, e.Pseudonym = in.tenantID, subjectID, pseudonym
		e.ID, e.ServerTime, e.InteractionID, e.Actor = identity.NewID(), p.now, in.id, in.actor
		e.Channel, e.Method = in.channel, MethodSystem
		if in.property != nil {
			e.PropertyID = in.property.ID
		}
		e.Seq, e.PrevHash = h.seq+1, h.hash
		e.Hash = e.ComputeHash()
		*h = head{seq: e.Seq, hash: e.Hash}
		return e
	}
	intoPseudonym := *into.Pseudonym
	p.intoEvents = append(p.intoEvents, chain(into.ID, intoPseudonym, &p.intoHead,
		&Event{Kind: KindMerge, Reason: in.merge.reason, Ref: p.fromHead.hash}))
	carried := []string{}
	personStates := states[into.ID]
	for _, cp := range in.catalog.Purposes {
		if cp.LegalBasis == BasisNecessary || (!in.merge.persons && cp.Level != LevelDevice) {
			continue // an anonymous decision never creates or overrides a person-level consent
		}
		dev := states[from.ID][cp.ID]
		if dev == nil || !explicit(dev, cp.Purpose, now) {
			continue // nothing to carry
		}
		if own := personStates[cp.ID]; explicit(own, cp.Purpose, now) && (!in.merge.persons || own.DecidedAt >= dev.DecidedAt) {
			continue // the person's own decision stands (of two persons', the newer one)
		}
		reason := MergeAnonymous
		if in.merge.persons {
			reason = MergedPerson
		}
		ref, err := eventHash(ctx, tx, in.tenantID, from.ID, dev.EventSeq)
		if err != nil {
			return nil, err
		}
		e := chain(into.ID, intoPseudonym, &p.intoHead, &Event{Kind: KindMerge, PurposeKey: cp.Key, PurposeVersion: dev.Version,
			Decision: dev.State, Reason: reason, Ref: ref})
		st := *dev
		st.SubjectID, st.EventSeq = into.ID, e.Seq
		// The decision keeps its time; its expiry index follows the purpose's interval now.
		st.ExpiresAt = expiresAt(&st, cp.Purpose)
		p.states = append(p.states, st)
		carried = append(carried, cp.Key)
		p.intoEvents = append(p.intoEvents, e)
	}
	last := p.intoEvents[len(p.intoEvents)-1]
	fromPseudonym := ""
	if from.Pseudonym != nil {
		fromPseudonym = *from.Pseudonym
	}
	p.fromEvents = append(p.fromEvents, chain(from.ID, fromPseudonym, &p.fromHead,
		&Event{Kind: KindMerge, Reason: MergedInto + intoPseudonym, Ref: last.Hash}))

	view := map[string]*Stored{}
	for k, v := range personStates {
		view[k] = v
	}
	for i := range p.states {
		view[p.states[i].PurposeID] = &p.states[i]
	}
	mo := &MergeOutcome{InteractionID: in.id, Subject: intoPseudonym, Carried: carried, State: []PurposeState{}}
	for _, cp := range in.view {
		mo.State = append(mo.State, View(view[cp.ID], cp.Purpose, now))
	}
	p.out = &Outcome{InteractionID: in.id, Subject: intoPseudonym, RecordedAt: time.UnixMilli(p.now).UTC(), merge: mo}
	return p, nil
}

func eventHash(ctx context.Context, tx *gorm.DB, tenantID, subjectID string, seq int64) (string, error) {
	var hash string
	err := tx.WithContext(ctx).Raw("SELECT hash FROM consent_events WHERE tenant_id = ? AND subject_id = ? AND seq = ?",
		tenantID, subjectID, seq).Scan(&hash).Error
	return hash, err
}

// writeMerge inserts the merge's events, heads and states, and moves the device's
// identifiers and state to the person.
func writeMerge(tx *gorm.DB, in *interaction, p *mergePlan) error {
	insert := func(table string, cols []sqldb.Column, suffix string, rows ...[]any) error {
		names := sqldb.Names(cols)
		marks := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + ")"
		for _, r := range rows {
			if err := tx.Exec("INSERT INTO "+table+" ("+strings.Join(names, ", ")+") VALUES "+marks+suffix, r...).Error; err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
		}
		return nil
	}
	var events [][]any
	for _, e := range slices.Concat(p.intoEvents, p.fromEvents) {
		events = append(events, eventArgs(e))
	}
	if err := insert("consent_events", eventColumns, "", events...); err != nil {
		return err
	}
	if err := insert("chain_heads", headColumns, headUpsert,
		[]any{in.tenantID, in.merge.into, p.intoHead.seq, p.intoHead.hash},
		[]any{in.tenantID, in.merge.from, p.fromHead.seq, p.fromHead.hash}); err != nil {
		return err
	}
	for _, st := range p.states {
		if err := insert("consent_state", stateColumns, stateUpsert, []any{in.tenantID, st.SubjectID, st.PurposeID, st.PurposeKey,
			st.State, st.Version, st.DecidedAt, st.ExpiresAt, st.EventSeq, st.Method}); err != nil {
			return err
		}
	}
	if err := insert("domain_events", domainEventColumns, "", mergeDomainRow(in, p)); err != nil {
		return err
	}
	var into mergeSubject
	if err := tx.Raw("SELECT id, kind, pseudonym FROM subjects WHERE tenant_id = ? AND id = ?", in.tenantID, in.merge.into).
		Scan(&into).Error; err != nil {
		return err
	}
	for _, st := range []sqldb.Statement{
		{SQL: "DELETE FROM consent_state WHERE tenant_id = ? AND subject_id = ?", Args: []any{in.tenantID, in.merge.from}},
		{SQL: "UPDATE subjects SET merged_into = ? WHERE tenant_id = ? AND id = ?", Args: []any{in.merge.into, in.tenantID, in.merge.from}},
		{SQL: "UPDATE identifiers SET subject_id = ?, subject_kind = ?, pseudonym = ? WHERE tenant_id = ? AND subject_id = ?",
			Args: []any{in.merge.into, into.Kind, *into.Pseudonym, in.tenantID, in.merge.from}},
	} {
		if err := tx.Exec(st.SQL, st.Args...).Error; err != nil {
			return err
		}
	}
	if in.merge.persons {
		return mergeAccounts(tx, in.tenantID, in.merge.from, in.merge.into, p.now)
	}
	return nil
}

// mergeAccounts gives the survivor of a persons merge the merged person's account when it
// has none (its email identifier has moved to the survivor, so signing in with it must find
// an account there), with its sessions. When both had one, the survivor's stays and the
// merged one is closed (status merged) with its sessions revoked: a person has one account.
func mergeAccounts(tx *gorm.DB, tenantID, from, into string, now int64) error {
	for _, st := range []sqldb.Statement{
		{SQL: `UPDATE accounts SET subject_id = ?, updated_at = ? WHERE tenant_id = ? AND subject_id = ?
			AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.tenant_id = ? AND a.subject_id = ?)`,
			Args: []any{into, now, tenantID, from, tenantID, into}},
		{SQL: `UPDATE sessions SET subject_id = ? WHERE tenant_id = ? AND subject_id = ?
			AND account_id IN (SELECT id FROM accounts WHERE tenant_id = ? AND subject_id = ?)`,
			Args: []any{into, tenantID, from, tenantID, into}},
		{SQL: "UPDATE sessions SET revoked_at = ? WHERE tenant_id = ? AND subject_id = ? AND revoked_at IS NULL",
			Args: []any{now, tenantID, from}},
		{SQL: "UPDATE accounts SET status = 'merged', updated_at = ? WHERE tenant_id = ? AND subject_id = ? AND status = 'active'",
			Args: []any{now, tenantID, from}},
	} {
		if err := tx.Exec(st.SQL, st.Args...).Error; err != nil {
			return fmt.Errorf("merge accounts: %w", err)
		}
	}
	return nil
}

// mergeDomainRow is the subject.merged domain event: the survivor, the subject merged into
// it, and the decisions carried over.
func mergeDomainRow(in *interaction, p *mergePlan) []any {
	row := domainEventRow(in, p.intoEvents, p.now)
	var d DomainEvent
	_ = json.Unmarshal([]byte(row[6].(string)), &d)
	d.MergedFrom = in.merge.from
	body, _ := json.Marshal(d)
	row[6] = string(body)
	return row
}

// errMerged redirects a batch whose subject was merged away (or erased) while it was
// planned.
var errMerged = errors.New("writer: a subject was merged into another")

// mergedAway marks the jobs whose subject was merged into another or erased, and says
// whether any was. Only subjects whose chain moved under their plan are asked, which a
// merge and an erasure always do (each appends to the chain it ends).
func (w *Writer) mergedAway(ctx context.Context, t writeTx, jobs []*job, byTenant map[string][]string) (bool, error) {
	found := false
	for tenant, ids := range byTenant {
		moved, err := t.movedAway(ctx, tenant, uniq(ids))
		if err != nil {
			return false, err
		}
		for _, j := range jobs {
			f, ok := moved[j.in.subjectID]
			if !ok || j.in.tenantID != tenant {
				continue
			}
			found = true
			if f.erased { // erased outright, or with the person it was merged into
				j.in.erased = true
			} else {
				j.in.redirect = f.mergedInto
			}
		}
	}
	return found, nil
}

// redirectMerged points the jobs whose subject was merged at the subject it was merged into,
// to be planned again there, and settles those whose subject was erased (afterErasure).
func (s *Service) redirectMerged(ctx context.Context, jobs []*job) error {
	for _, j := range jobs {
		in := j.in
		if in.erased {
			if err := s.afterErasure(j); err != nil {
				return err
			}
			continue
		}
		if in.redirect == "" {
			continue
		}
		var row struct {
			Pseudonym *string
		}
		if err := s.db.Read.WithContext(ctx).Raw("SELECT pseudonym FROM subjects WHERE tenant_id = ? AND id = ?",
			in.tenantID, in.redirect).Scan(&row).Error; err != nil {
			return err
		}
		if row.Pseudonym == nil {
			return identity.Errorf(identity.EConflict, "the subject was merged into one that is erased")
		}
		in.subjectID, in.pseudonym, in.pre, in.redirect = in.redirect, *row.Pseudonym, nil, ""
	}
	return nil
}

// LinkTokenDevice links the device an app names to the person its CIAM token proves, at the
// person's first request with both: the person is created when new and the device is an
// anonymous one to link. A device Lupa does not know is nothing to link (nil); one already
// another person's is a conflict (the app signs out first, which gives the device a new id). actor is the token's (ciam:<issuer id>), the
// one the request's decisions carry: the person's identifier names the issuer by its URL,
// which is configuration that can change, not the actor.
func (s *Service) LinkTokenDevice(ctx context.Context, p *identity.Property, device, person identity.Identifier, actor identity.Actor) error {
	if err := device.Validate("device"); err != nil {
		return err
	}
	// The person is made only for a device that can join them: a request refused because
	// the device is unknown or another person's leaves no subject behind.
	from, err := s.ids.FindSubject(ctx, p.TenantID, device)
	switch {
	case identity.IsCode(err, identity.ENotFound):
		return nil
	case err != nil:
		return err
	case from.Kind == identity.SubjectDevice:
		if _, err := s.PersonState(ctx, p, person); err != nil { // creates the person when new
			return err
		}
	default: // a person's already: this one's, or another's
		into, err := s.ids.FindSubject(ctx, p.TenantID, person)
		if err != nil && !identity.IsCode(err, identity.ENotFound) {
			return err
		}
		if into == nil || into.ID != from.ID {
			return errDeviceOfAnother()
		}
		return nil
	}
	_, err = s.LinkDevice(ctx, p, device, person, MergeCIAM, actor)
	if identity.IsCode(err, identity.ENotFound) {
		return nil
	}
	return err
}

// errDeviceOfAnother refuses to link a device that another person's sign-in linked before.
func errDeviceOfAnother() error {
	return identity.Errorf(identity.EConflict, "the device belongs to another person: sign out on it first, which gives it a new anonymous id")
}

// MergePersons joins one person into another, when the company's CIAM merged two user
// accounts into one (user.merged). Both were identified, so for every purpose the newer
// explicit decision of the two stands; the merged person's identifiers move to the
// survivor, and both chains keep verifying as with devices. Idempotent.
func (s *Service) MergePersons(ctx context.Context, tenantID string, merged, survivor identity.Identifier) (*MergeOutcome, error) {
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	from, err := s.ids.FindSubject(ctx, tenantID, merged)
	if err != nil {
		return nil, err
	}
	into, err := s.ids.FindSubject(ctx, tenantID, survivor)
	if err != nil {
		return nil, err
	}
	if from.ID == into.ID {
		return &MergeOutcome{Subject: into.Pseudonym, AlreadyLinked: true, Carried: []string{}, State: []PurposeState{}}, nil
	}
	if from.Kind != identity.SubjectPerson || into.Kind != identity.SubjectPerson {
		return nil, identity.Errorf(identity.EUnprocessable, "merge persons into persons")
	}
	in := &interaction{tenantID: tenantID, id: identity.NewID(), catalog: c, subjectID: into.ID, pseudonym: into.Pseudonym,
		channel: "system", method: MethodSystem, actor: string(identity.ActorSystem), domainEventType: mergeDomainEvent,
		view: c.Asked(nil, ""), merge: &mergeSpec{from: from.ID, into: into.ID, reason: MergeIdentity, persons: true}}
	out, err := s.writer.Submit(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.merge, nil
}
