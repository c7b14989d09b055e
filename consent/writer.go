package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// The writer is the only code that appends to the ledger. Requests hand it their
// interactions; it gathers whatever has arrived into one transaction (group commit), locks
// the chain heads of the subjects involved in a fixed order, chains the new events in
// memory, inserts everything with multi-row statements, commits, and only then answers each
// waiting request. A request that fails inside a batch is taken out and answered alone; only
// a failure of the database itself fails the whole batch.

// interaction is one request's worth of work for the writer.
type interaction struct {
	tenantID, id    string
	catalog         *Catalog
	property        *identity.Property
	subjectID       string
	pseudonym       string
	newSubject      *identity.NewSubject
	newIdentifiers  []*identity.NewIdentifier
	identifier      *identity.Identifier
	deviceID        string
	channel, method string
	agent, language string
	uiHash, actor   string
	clientTime      int64
	decisions       []resolved
	system          []systemChange
	erase           string // reason, when the subject's key is to be destroyed
	view            []*CatalogPurpose
	idem            *IdempotencyKey
	context         *clientContext
	receipt         bool
	domainEventType string
}

// systemChange is a state change Lupa makes by itself (expiry, outdated). It applies only if
// the state is still the one the sweep saw.
type systemChange struct {
	kind      string
	purpose   *CatalogPurpose
	expectSeq int64
	reason    string
}

type clientContext struct {
	ipPrefix, userAgent string
	expiresAt           int64
}

type job struct {
	in        *interaction
	enqueued  time.Time
	done      chan struct{}
	out       *Outcome
	err       error
	replay    bool // its idempotency key was taken: answer from the stored response
	followers []*job
}

// WriterMetrics receives the writer's measurements.
type WriterMetrics interface {
	Batch(size int, commit time.Duration)
	Waited(d time.Duration)
	EventsWritten(n int)
}

// WriterOptions tune the writer.
type WriterOptions struct {
	// Workers is how many batches may be in flight at once: 1 on SQLite (one writer), a few
	// on PostgreSQL so one batch's fsync overlaps the next batch's work.
	Workers  int
	MaxBatch int
	Metrics  WriterMetrics
}

// Writer is the group-commit ledger writer.
type Writer struct {
	db       *sqldb.DB
	svc      *Service
	metrics  WriterMetrics
	in       chan *job
	maxBatch int
	mu       sync.RWMutex
	closed   bool
	wg       sync.WaitGroup
}

type noMetrics struct{}

func (noMetrics) Batch(int, time.Duration) {}
func (noMetrics) Waited(time.Duration)     {}
func (noMetrics) EventsWritten(int)        {}

// StartWriter starts the writer; Close stops it after the last batch has committed.
func (s *Service) StartWriter(opt WriterOptions) *Writer {
	if opt.Workers <= 0 {
		opt.Workers = 1
		if s.db.Dialect == sqldb.Postgres {
			opt.Workers = 2
		}
	}
	if s.db.Dialect == sqldb.SQLite {
		opt.Workers = 1
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Metrics == nil {
		opt.Metrics = noMetrics{}
	}
	w := &Writer{db: s.db, svc: s, metrics: opt.Metrics, in: make(chan *job, opt.MaxBatch*2), maxBatch: opt.MaxBatch}
	for range opt.Workers {
		w.wg.Add(1)
		go w.run()
	}
	s.writer = w
	return w
}

// ErrClosed is returned once the writer has stopped taking work.
var ErrClosed = identity.Errorf(identity.EUnavailable, "shutting down")

// Submit hands an interaction to the writer and waits for its commit.
func (w *Writer) Submit(ctx context.Context, in *interaction) (*Outcome, error) {
	j := &job{in: in, enqueued: time.Now(), done: make(chan struct{})}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case w.in <- j:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return nil, ctx.Err()
	}
	// Once queued, the job is committed or failed even if the client goes away; a retry
	// with the same Idempotency-Key then finds it.
	<-j.done
	return j.out, j.err
}

// Close stops taking work, finishes every queued interaction and returns when the last
// batch has committed.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *Writer) run() {
	defer w.wg.Done()
	for j := range w.in {
		batch := []*job{j}
	gather:
		for len(batch) < w.maxBatch {
			select {
			case more, ok := <-w.in:
				if !ok {
					break gather
				}
				batch = append(batch, more)
			default:
				break gather
			}
		}
		w.process(batch)
	}
}

func (w *Writer) process(batch []*job) {
	start := time.Now()
	for _, j := range batch {
		w.metrics.Waited(start.Sub(j.enqueued))
	}
	batch = foldDuplicates(batch)
	err := w.commit(batch)
	if err != nil && !sqldb.IsInfrastructure(err) && len(batch) > 1 {
		// Something in the batch is wrong: commit each alone, so only the culprit fails.
		for _, j := range batch {
			j.err = w.commit([]*job{j})
		}
	} else if err != nil {
		for _, j := range batch {
			j.err = err
		}
	}
	w.metrics.Batch(len(batch), time.Since(start))
	for _, j := range batch {
		if j.err == nil && j.replay {
			j.out, j.err = w.svc.replayAfterConflict(j.in)
		}
		if j.err != nil {
			j.out = nil
			j.err = publicError(j.err)
		}
		for _, f := range j.followers {
			f.out, f.err = j.out, j.err
			if f.err == nil && f.in.idem.RequestHash != j.in.idem.RequestHash {
				f.out, f.err = nil, errIdempotencyMismatch
			}
			close(f.done)
		}
		close(j.done)
	}
}

// foldDuplicates makes a later job with the same idempotency key wait for the first.
func foldDuplicates(batch []*job) []*job {
	seen := map[string]*job{}
	out := batch[:0]
	for _, j := range batch {
		if k := j.in.idem; k != nil {
			key := j.in.tenantID + "\x00" + k.Route + "\x00" + k.Key
			if first := seen[key]; first != nil {
				first.followers = append(first.followers, j)
				continue
			}
			seen[key] = j
		}
		out = append(out, j)
	}
	return out
}

// publicError keeps typed errors and hides database details of the rest.
func publicError(err error) error {
	var e *identity.Error
	if errors.As(err, &e) {
		return err
	}
	if sqldb.IsUniqueViolation(err) {
		return &identity.Error{Code: identity.EConflict, Message: "a concurrent request changed the same data; retry", Err: err}
	}
	if sqldb.IsInfrastructure(err) {
		return &identity.Error{Code: identity.EUnavailable, Message: "the database is unavailable; retry", Err: err}
	}
	return &identity.Error{Code: identity.EInternal, Message: "the decisions could not be recorded", Err: err}
}

// commit writes the jobs in one transaction. Jobs whose idempotency key turns out to be
// taken are marked replay and left out; the rest are committed.
func (w *Writer) commit(jobs []*job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		live := make([]*job, 0, len(jobs))
		for _, j := range jobs {
			if !j.replay {
				live = append(live, j)
			}
		}
		if len(live) == 0 {
			return nil
		}
		retry, err := w.commitOnce(ctx, live, len(jobs) == 1)
		if err != nil && len(live) == 1 && attempt < 3 && joinsConcurrentSubject(live[0].in, err) {
			continue // another request, perhaps on another instance, created this person first: join it
		}
		if err != nil || !retry {
			return err
		}
		if attempt > 3 {
			return errors.New("idempotency conflicts did not settle")
		}
	}
}

func (w *Writer) commitOnce(ctx context.Context, jobs []*job, single bool) (retry bool, err error) {
	tx := w.db.Write.WithContext(ctx).Begin()
	if tx.Error != nil {
		return false, tx.Error
	}
	committed := false
	defer func() {
		if !committed {
			tx.Rollback()
		}
	}()
	if single {
		if err := w.svc.reresolve(ctx, tx, jobs[0].in); err != nil {
			return false, err
		}
	}
	base, err := w.load(tx, jobs)
	if err != nil {
		return false, err
	}
	p, err := w.plan(jobs, base)
	if err != nil {
		return false, err
	}
	if len(p.idem) > 0 {
		taken, err := insertIdempotency(tx, p.idem)
		if err != nil {
			return false, err
		}
		if len(taken) > 0 {
			for _, j := range jobs {
				if k := j.in.idem; k != nil && taken[j.in.tenantID+"\x00"+k.Route+"\x00"+k.Key] {
					j.replay = true
				}
			}
			return true, nil // roll back and plan again without them
		}
	}
	if err := p.insert(tx); err != nil {
		return false, err
	}
	for _, er := range p.erasures {
		if err := eraseSubject(tx, er.tenantID, er.subjectID, time.UnixMilli(p.now)); err != nil {
			return false, err
		}
	}
	if err := tx.Commit().Error; err != nil {
		return false, err
	}
	committed = true
	for i, j := range jobs {
		j.out = p.outcomes[i]
	}
	w.metrics.EventsWritten(len(p.events))
	return false, nil
}

// head is the newest event of a subject's chain.
type head struct {
	seq  int64
	hash string
}

type snapshot struct {
	heads  map[string]head    // by subject id
	states map[string]*Stored // by subject id + "|" + purpose id
}

func stateKey(subjectID, purposeID string) string { return subjectID + "|" + purposeID }

// load locks the chain heads of the batch's existing subjects, in a fixed order so two
// writers never deadlock, and reads their current states.
func (w *Writer) load(tx *gorm.DB, jobs []*job) (*snapshot, error) {
	snap := &snapshot{heads: map[string]head{}, states: map[string]*Stored{}}
	seen := map[string]bool{}
	var keys [][]any
	for _, j := range jobs {
		if j.in.newSubject != nil || seen[j.in.subjectID] {
			continue
		}
		seen[j.in.subjectID] = true
		keys = append(keys, []any{j.in.tenantID, j.in.subjectID})
	}
	if len(keys) == 0 {
		return snap, nil
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0].(string) < keys[b][0].(string)
		}
		return keys[a][1].(string) < keys[b][1].(string)
	})
	var heads []struct {
		SubjectID string
		Seq       int64
		Hash      string
	}
	if err := tx.Raw("SELECT subject_id, seq, hash FROM chain_heads WHERE (tenant_id, subject_id) IN ? ORDER BY tenant_id, subject_id"+
		w.db.ForUpdate(), keys).Scan(&heads).Error; err != nil {
		return nil, fmt.Errorf("lock chain heads: %w", err)
	}
	for _, h := range heads {
		snap.heads[h.SubjectID] = head{seq: h.Seq, hash: h.Hash}
	}
	var states []Stored
	if err := tx.Raw(`SELECT subject_id, purpose_id, purpose_key, state, version, decided_at, expires_at, event_seq, method
		FROM consent_state WHERE (tenant_id, subject_id) IN ?`, keys).Scan(&states).Error; err != nil {
		return nil, fmt.Errorf("read consent state: %w", err)
	}
	for i := range states {
		snap.states[stateKey(states[i].SubjectID, states[i].PurposeID)] = &states[i]
	}
	return snap, nil
}

// plan is everything one transaction will insert.
type plan struct {
	now        int64
	events     []*Event
	heads      map[string][]any // subject id → head row
	headOrder  []string
	states     map[string]*stateRow
	stateOrder []string
	domain     [][]any
	receipts   [][]any
	contexts   [][]any
	idem       [][]any
	subjects   []*identity.NewSubject
	idents     []*identity.NewIdentifier
	erasures   []erasure
	outcomes   []*Outcome
}

type stateRow struct {
	tenantID string
	s        Stored
}

type erasure struct{ tenantID, subjectID string }

// plan chains the jobs' events on top of the snapshot, in memory.
func (w *Writer) plan(jobs []*job, base *snapshot) (*plan, error) {
	now := w.svc.now()
	p := &plan{now: now.UnixMilli(), heads: map[string][]any{}, states: map[string]*stateRow{}}
	heads := make(map[string]head, len(base.heads))
	for k, v := range base.heads {
		heads[k] = v
	}
	states := make(map[string]*Stored, len(base.states))
	for k, v := range base.states {
		states[k] = v
	}
	var sign func([]byte) (string, error)
	for _, j := range jobs {
		in := j.in
		if in.newSubject != nil {
			p.subjects = append(p.subjects, in.newSubject)
			p.idents = append(p.idents, in.newIdentifiers...)
		}
		h := heads[in.subjectID]
		var events []*Event
		next := func(e *Event) {
			e.TenantID, e.SubjectID, e.Pseudonym = in.tenantID, in.subjectID, in.pseudonym
			e.ID, e.ServerTime = identity.NewID(), p.now
			e.Seq, e.PrevHash = h.seq+1, h.hash
			e.Hash = e.ComputeHash()
			h = head{seq: e.Seq, hash: e.Hash}
			events = append(events, e)
		}
		for _, d := range in.decisions {
			key := stateKey(in.subjectID, d.purpose.ID)
			decision, kind := normalize(d.requested, d.purpose.Purpose, Effective(states[key], d.purpose.Purpose, now))
			e := &Event{Kind: kind, PurposeKey: d.purpose.Key, PurposeVersion: d.version.Number,
				VersionHash: d.version.ContentHash, TextHash: d.textHash, Decision: decision, Channel: in.channel,
				Method: in.method, Agent: in.agent, Language: in.language, UIHash: in.uiHash, Actor: in.actor,
				InteractionID: in.id, ClientTime: in.clientTime}
			if in.property != nil {
				e.PropertyID = in.property.ID
			}
			next(e)
			ns := nextState(decision, d.purpose.Purpose, d.version.Number, p.now, e.Seq, in.method, in.subjectID)
			states[key] = &ns
			p.setState(in.tenantID, key, ns)
		}
		for _, sc := range in.system {
			key := stateKey(in.subjectID, sc.purpose.ID)
			cur := states[key]
			if cur == nil || cur.EventSeq != sc.expectSeq {
				continue // the person decided since the sweep looked: nothing to do
			}
			e := &Event{Kind: sc.kind, PurposeKey: sc.purpose.Key, PurposeVersion: cur.Version, Channel: "system",
				Method: MethodSystem, Actor: string(identity.ActorSystem), Reason: sc.reason, InteractionID: in.id}
			next(e)
			ns := *cur
			ns.State, ns.ExpiresAt, ns.EventSeq, ns.DecidedAt, ns.Method = stateOf(sc.kind), nil, e.Seq, p.now, MethodSystem
			states[key] = &ns
			p.setState(in.tenantID, key, ns)
		}
		if in.erase != "" {
			next(&Event{Kind: KindErasure, Channel: "system", Method: MethodSystem, Actor: in.actor,
				Reason: in.erase, InteractionID: in.id})
			p.erasures = append(p.erasures, erasure{in.tenantID, in.subjectID})
		}
		out := &Outcome{InteractionID: in.id, DeviceID: in.deviceID, Subject: in.pseudonym,
			RecordedAt: time.UnixMilli(p.now).UTC(), Events: make([]EventRef, len(events)), State: []PurposeState{}}
		for i, e := range events {
			out.Events[i] = eventRef(e)
		}
		for _, cp := range in.view {
			out.State = append(out.State, View(states[stateKey(in.subjectID, cp.ID)], cp.Purpose, now))
		}
		p.outcomes = append(p.outcomes, out)
		if len(events) == 0 {
			continue
		}
		p.events = append(p.events, events...)
		if _, ok := p.heads[in.subjectID]; !ok {
			p.headOrder = append(p.headOrder, in.subjectID)
		}
		p.heads[in.subjectID] = []any{in.tenantID, in.subjectID, h.seq, h.hash}
		heads[in.subjectID] = h
		p.domain = append(p.domain, domainEventRow(in, events, p.now))
		if in.receipt {
			if sign == nil {
				var err error
				if sign, err = w.svc.keys.SignFunc(ReceiptType); err != nil {
					return nil, err
				}
			}
			payload, err := buildReceipt(in, events, p.now)
			if err != nil {
				return nil, err
			}
			if out.Receipt, err = sign(payload); err != nil {
				return nil, err
			}
			p.receipts = append(p.receipts, []any{in.tenantID, in.id, in.subjectID, out.Receipt, p.now})
		}
		if in.context != nil {
			p.contexts = append(p.contexts, []any{in.tenantID, in.id, in.subjectID, in.context.ipPrefix,
				in.context.userAgent, in.context.expiresAt})
		}
		body, err := json.Marshal(out)
		if err != nil {
			return nil, err
		}
		out.JSON = body
		if k := in.idem; k != nil {
			p.idem = append(p.idem, []any{in.tenantID, k.Route, k.Key, k.RequestHash, 201, body, p.now,
				p.now + idempotencyTTL.Milliseconds()})
		}
	}
	return p, nil
}

func stateOf(kind string) string {
	if kind == KindOutdated {
		return StateOutdated
	}
	return StateExpired
}

func (p *plan) setState(tenantID, key string, s Stored) {
	if _, ok := p.states[key]; !ok {
		p.stateOrder = append(p.stateOrder, key)
	}
	p.states[key] = &stateRow{tenantID: tenantID, s: s}
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
}

// DomainChange is one ledger event of a domain event.
type DomainChange struct {
	EventID  string `json:"event_id"`
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	Purpose  string `json:"purpose,omitempty"`
	Version  int    `json:"version,omitempty"`
	Decision string `json:"decision,omitempty"`
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
			Version: e.PurposeVersion, Decision: e.Decision}
	}
	body, _ := json.Marshal(d)
	last := events[len(events)-1]
	return []any{in.tenantID, identity.NewID(), typ, 1, in.subjectID, last.Seq, string(body), now}
}

// insert writes the plan with one multi-row statement per table.
func (p *plan) insert(tx *gorm.DB) error {
	if err := identity.InsertSubjects(tx, p.subjects); err != nil {
		return err
	}
	if err := identity.InsertIdentifiers(tx, p.idents); err != nil {
		return err
	}
	events := make([][]any, len(p.events))
	for i, e := range p.events {
		events[i] = eventArgs(e)
	}
	if err := sqldb.BulkInsert(tx, "consent_events", eventColumns, events, ""); err != nil {
		return err
	}
	heads := make([][]any, len(p.headOrder))
	for i, id := range p.headOrder {
		heads[i] = p.heads[id]
	}
	if err := sqldb.BulkInsert(tx, "chain_heads", headColumns, heads, headUpsert); err != nil {
		return err
	}
	states := make([][]any, len(p.stateOrder))
	for i, k := range p.stateOrder {
		r := p.states[k]
		states[i] = []any{r.tenantID, r.s.SubjectID, r.s.PurposeID, r.s.PurposeKey, r.s.State, r.s.Version,
			r.s.DecidedAt, r.s.ExpiresAt, r.s.EventSeq, r.s.Method}
	}
	if err := sqldb.BulkInsert(tx, "consent_state", stateColumns, states, stateUpsert); err != nil {
		return err
	}
	if err := sqldb.BulkInsert(tx, "domain_events", domainEventColumns, p.domain, ""); err != nil {
		return err
	}
	if err := sqldb.BulkInsert(tx, "receipts", receiptColumns, p.receipts, ""); err != nil {
		return err
	}
	return sqldb.BulkInsert(tx, "interaction_context", contextColumns, p.contexts, "")
}

// eraseSubject destroys what links a subject's chain to a person: its key, pseudonym and
// identifiers, its receipts and client context, and its current state. The chain stays.
func eraseSubject(tx *gorm.DB, tenantID, subjectID string, at time.Time) error {
	for _, q := range []string{
		"DELETE FROM receipts WHERE tenant_id = ? AND subject_id = ?",
		"DELETE FROM interaction_context WHERE tenant_id = ? AND subject_id = ?",
		"DELETE FROM consent_state WHERE tenant_id = ? AND subject_id = ?",
	} {
		if err := tx.Exec(q, tenantID, subjectID).Error; err != nil {
			return err
		}
	}
	return identity.DestroySubjectKey(tx, tenantID, subjectID, at)
}

// joinsConcurrentSubject reports whether a request that was to create a new person failed
// only because a concurrent request created the same person (its identifier) first. Run
// again, reresolve finds that person and the request joins its chain.
func joinsConcurrentSubject(in *interaction, err error) bool {
	return sqldb.IsUniqueViolation(err) && in.newSubject != nil && in.identifier != nil &&
		in.identifier.Kind != identity.IDDevice
}

// reresolve looks a new person's identifier up again inside the transaction: when a
// concurrent request created the same customer first, this one joins that subject.
func (s *Service) reresolve(ctx context.Context, tx *gorm.DB, in *interaction) error {
	if in.newSubject == nil || in.identifier == nil || in.identifier.Kind == identity.IDDevice {
		return nil
	}
	subj, err := s.ids.FindSubjectTx(ctx, tx, in.tenantID, *in.identifier)
	if identity.IsCode(err, identity.ENotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	in.newSubject, in.newIdentifiers = nil, nil
	in.subjectID, in.pseudonym = subj.ID, subj.Pseudonym
	return nil
}
