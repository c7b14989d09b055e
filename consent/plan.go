package consent

import (
	"encoding/json"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// iplan is everything one interaction writes, computed in memory on top of a chain head
// and the subject's stored states: the chained events, the new states, the domain event,
// the signed receipt, the answer and the stored answer for retries.
type iplan struct {
	now    int64
	events []*Event
	// decided holds, for each of the first events, the decision that wrote it: decisions
	// that write nothing (decided otherwise since) leave no gap, so the receipt pairs each
	// event with its own purpose and text.
	decided []*resolved
	head    head
	states  []Stored
	domain  []any
	receipt []any
	context []any
	idem    []any
	erase   bool // the subject's key is destroyed with these events
	out     *Outcome
}

// planOne plans an interaction on top of head h and the subject's stored states (by
// purpose id; not changed). sign signs receipts.
func (s *Service) planOne(in *interaction, h head, stored map[string]*Stored, now time.Time, sign func([]byte) (string, error)) (*iplan, error) {
	p := &iplan{now: now.UnixMilli()}
	local := map[string]*Stored{}
	current := func(purposeID string) *Stored {
		if st, ok := local[purposeID]; ok {
			return st
		}
		return stored[purposeID]
	}
	set := func(st Stored) {
		local[st.PurposeID] = &st
		for i := range p.states {
			if p.states[i].PurposeID == st.PurposeID {
				p.states[i] = st
				return
			}
		}
		p.states = append(p.states, st)
	}
	chain := func(e *Event) {
		e.TenantID, e.SubjectID, e.Pseudonym = in.tenantID, in.subjectID, in.pseudonym
		e.ID, e.ServerTime = identity.NewID(), p.now
		e.Seq, e.PrevHash = h.seq+1, h.hash
		e.Hash = e.ComputeHash()
		h = head{seq: e.Seq, hash: e.Hash}
		p.events = append(p.events, e)
	}
	for _, d := range in.decisions {
		cur := current(d.purpose.ID)
		effective := Effective(cur, d.purpose.Purpose, now)
		if d.onlyIf != "" && effective != d.onlyIf {
			continue // decided otherwise since: the confirmation comes too late
		}
		if d.onlyIfSeq != 0 && (cur == nil || cur.EventSeq != d.onlyIfSeq) {
			continue // changed since the link was checked (a newer request has its own link)
		}
		if d.decidedBefore > 0 && cur != nil && cur.DecidedAt >= d.decidedBefore {
			continue // decided in Lupa after it happened elsewhere: the newer decision stands
		}
		decision, kind := normalize(d.requested, d.purpose.Purpose, effective)
		if decision == Granted && d.purpose.DoubleOptIn && in.method != MethodImport && in.method != MethodDoubleOptIn &&
			effective != StateGranted {
			// Not a grant yet: the person confirms it from the email first (optin.go). A
			// grant repeated while the person's confirmed grant stands stays a grant.
			decision = PendingConfirmation
		}
		e := &Event{Kind: kind, PurposeKey: d.purpose.Key, PurposeVersion: d.version.Number,
			VersionHash: d.version.ContentHash, TextHash: d.textHash, Decision: decision, Channel: in.channel,
			Method: in.method, Agent: in.agent, Language: in.language, UIHash: in.uiHash, Actor: in.actor, Reason: in.reason,
			InteractionID: in.id, ClientTime: in.clientTime}
		if in.property != nil {
			e.PropertyID = in.property.ID
		}
		chain(e)
		p.decided = append(p.decided, &d)
		at := p.now
		if d.decidedAt > 0 {
			at = d.decidedAt
		}
		set(nextState(decision, d.purpose.Purpose, d.version.Number, at, e.Seq, in.method, in.subjectID))
	}
	for _, sc := range in.system {
		cur := current(sc.purpose.ID)
		if cur == nil || cur.EventSeq != sc.expectSeq {
			continue // the person decided since the sweep looked: nothing to do
		}
		e := &Event{Kind: sc.kind, PurposeKey: sc.purpose.Key, PurposeVersion: cur.Version, Channel: "system",
			Method: MethodSystem, Actor: string(identity.ActorSystem), Reason: sc.reason, InteractionID: in.id}
		chain(e)
		ns := *cur
		ns.State, ns.ExpiresAt, ns.EventSeq, ns.DecidedAt, ns.Method = stateOf(sc.kind), nil, e.Seq, p.now, MethodSystem
		set(ns)
	}
	if in.erase != "" && in.eraseIf.holds(in.subjectID, h) {
		p.erase = true
		chain(&Event{Kind: KindErasure, Channel: "system", Method: MethodSystem, Actor: in.actor,
			Reason: in.erase, InteractionID: in.id})
	}
	p.head = h
	out := &Outcome{InteractionID: in.id, DeviceID: in.deviceID, Subject: in.pseudonym,
		RecordedAt: time.UnixMilli(p.now).UTC(), Events: make([]EventRef, len(p.events)), State: []PurposeState{}}
	for i, e := range p.events {
		out.Events[i] = eventRef(e)
	}
	for _, cp := range in.view {
		out.State = append(out.State, View(current(cp.ID), cp.Purpose, now))
	}
	p.out = out
	if len(p.events) > 0 {
		p.domain = domainEventRow(in, p.events, p.now)
		if in.context != nil {
			p.context = []any{in.tenantID, in.id, in.subjectID, in.context.ipPrefix, in.context.userAgent, in.context.expiresAt}
		}
	}
	if len(p.events) > 0 && in.receipt {
		payload, err := buildReceipt(in, p.events, p.decided, p.now)
		if err != nil {
			return nil, err
		}
		jws, err := sign(payload)
		if err != nil {
			return nil, err
		}
		p.receipt = []any{in.tenantID, in.id, in.subjectID, jws, p.now}
		out.Receipt = jws
	}
	// The answer is encoded once. The stored answer for retries leaves the receipt out (it
	// is in the receipts table already) and the receipt is spliced in when it is sent.
	receipt := out.Receipt
	out.Receipt = ""
	body, err := json.Marshal(out)
	out.Receipt = receipt
	if err != nil {
		return nil, err
	}
	out.JSON = withReceipt(body, receipt)
	if k := in.idem; k != nil {
		// Encrypted: the answer names the device id, which Lupa otherwise keeps only hashed
		// and encrypted.
		kid, sealed, err := s.ids.SealAnswer(in.tenantID, k.Route, k.Key, nil, body)
		if err != nil {
			return nil, err
		}
		p.idem = []any{in.tenantID, k.Route, k.Key, k.RequestHash, 201, sealed, p.now, p.now + idempotencyTTL.Milliseconds(), kid}
	}
	return p, nil
}

// withReceipt adds the receipt member to an encoded outcome. A compact JWS is base64url
// and dots: nothing in it needs escaping.
func withReceipt(body []byte, jws string) []byte {
	if jws == "" || len(body) < 2 || body[len(body)-1] != '}' {
		return body
	}
	out := make([]byte, 0, len(body)+len(jws)+14)
	out = append(out, body[:len(body)-1]...)
	out = append(out, `,"receipt":"`...)
	out = append(out, jws...)
	return append(out, '"', '}')
}

func stateOf(kind string) string {
	if kind == KindOutdated {
		return StateOutdated
	}
	return StateExpired
}

// DomainEvent is the payload of a domain_events row: what the integrations deliver, one per
// interaction and subject. Its schema_version is 1.
type DomainEvent struct {
	Tenant      string         `json:"tenant"`
	Subject     string         `json:"subject"`
	SubjectID   string         `json:"subject_id"`
	Interaction string         `json:"interaction"`
	Property    string         `json:"property,omitempty"`
	Channel     string         `json:"channel"`
	Method      string         `json:"method"`
	At          time.Time      `json:"at"`
	Changes     []DomainChange `json:"changes"`
	// MergedFrom is the subject merged into this one (subject.merged events).
	MergedFrom string `json:"merged_from,omitempty"`
}

// DomainChange is one ledger event of a domain event.
type DomainChange struct {
	EventID  string `json:"event_id"`
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	Purpose  string `json:"purpose,omitempty"`
	Version  int    `json:"version,omitempty"`
	Decision string `json:"decision,omitempty"`
	// Reason is the ledger event's reason, when it has one: on a decision Lupa recorded by
	// itself it names the cause (WithdrawUserDeleted, a vendor's unsubscribe …), which the
	// integrations pass on instead of calling it the person's decision.
	Reason string `json:"reason,omitempty"`
}

func domainEventRow(in *interaction, events []*Event, now int64) []any {
	typ := in.domainEventType
	if typ == "" {
		typ = "consent.recorded"
	}
	d := DomainEvent{Tenant: in.tenantID, Subject: in.pseudonym, SubjectID: in.subjectID, Interaction: in.id,
		Channel: in.channel, Method: in.method, At: time.UnixMilli(now).UTC(), Changes: make([]DomainChange, len(events))}
	if in.property != nil {
		d.Property = in.property.ID
	}
	for i, e := range events {
		d.Changes[i] = DomainChange{EventID: e.ID, Seq: e.Seq, Kind: e.Kind, Purpose: e.PurposeKey,
			Version: e.PurposeVersion, Decision: e.Decision, Reason: e.Reason}
	}
	body, _ := json.Marshal(d)
	last := events[len(events)-1]
	return []any{in.tenantID, identity.NewID(), typ, 1, in.subjectID, last.Seq, string(body), now}
}
