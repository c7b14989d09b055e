package consent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// The writer is the only code that appends to the ledger. Requests hand it their
// interactions; it gathers whatever has arrived into one transaction (group commit), locks
// the chain heads of the subjects involved in a fixed order, inserts everything with a few
// prepared multi-row statements, commits, and only then answers each waiting request. A
// request that fails inside a batch is taken out and answered alone; only a failure of the
// database itself fails the whole batch.
//
// The CPU work of an interaction — chaining and hashing its events, deriving the new state,
// building and signing the receipt, encoding the answer — is done before it reaches the
// writer, in the request's own goroutine, on top of the chain head the request read (see
// plan.go). The writer only checks, under the lock, that the head is still that one; when
// another request moved it first, the writer plans that interaction again itself. So the one
// serial part of the write path is the SQL.

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
	erase           string // reason, when an erasure is asked for (done only if eraseIf holds)
	// eraseIf, on an erasure the evidence sweep asks for, is what the erasure depends on:
	// the chain head the sweep saw, and whether the subject has a live account (erase.go).
	eraseIf *eraseBasis
	// erased marks an interaction whose subject was erased while it was on its way: it is
	// answered alone, or written to a new device (erase.go, afterErasure).
	erased          bool
	view            []*CatalogPurpose
	idem            *IdempotencyKey
	context         *clientContext
	receipt         bool
	domainEventType string
	reason          string     // why, on decision events Lupa records by itself (withdraw.go)
	merge           *mergeSpec // a device joining a person: written alone (merge.go)
	// also are statements of another domain written in the same transaction, once the
	// subject is known (the account of a registration, registration.go).
	also func(subjectID string) ([]sqldb.Statement, error)
	// redirect is the subject this interaction's subject was merged into while it was
	// on its way: it is written to that subject instead.
	redirect string

	// pre is the plan made before the writer on top of basis, the chain head read then.
	pre   *iplan
	basis head
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
	answered  bool // out and err are set already: it is not written
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
	// on PostgreSQL so one batch's commit overlaps the next batch's statements.
	Workers  int
	MaxBatch int
	Metrics  WriterMetrics
}

// Writer is the group-commit ledger writer.
type Writer struct {
	db       *sqldb.DB
	svc      *Service
	stmts    *sqldb.Statements
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
	w := &Writer{db: s.db, svc: s, stmts: sqldb.NewStatements(s.db.SQL(), s.db.Dialect), metrics: opt.Metrics,
		in: make(chan *job, opt.MaxBatch*2), maxBatch: opt.MaxBatch}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := w.prepare(ctx); err != nil {
		// Not fatal: statements missing from the cache are prepared per transaction.
		s.log.Warn("prepare the writer's statements", "err", err)
	}
	cancel()
	for range opt.Workers {
		w.wg.Add(1)
		go w.run()
	}
	if s.db.Dialect == sqldb.Postgres {
		s.lookups = s.startLookups(2)
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
	w.stmts.Close()
	if w.svc.lookups != nil {
		w.svc.lookups.close()
	}
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
	batch = w.mergesAlone(batch)
	rest, erasures := erasuresApart(batch)
	for _, b := range [][]*job{rest, erasures} {
		if len(b) > 0 {
			w.commitBatch(foldDuplicates(b), start)
		}
	}
}

// erasuresApart separates the erasures from the other jobs of a batch. They are committed
// in a transaction of their own, after the others: nothing is ever chained after an
// erasure, and a job that arrived with one for its subject finds the subject erased
// (afterErasure) only once the erasure has committed.
func erasuresApart(batch []*job) (rest, erasures []*job) {
	for _, j := range batch {
		if j.in.erase != "" {
			erasures = append(erasures, j)
		} else {
			rest = append(rest, j)
		}
	}
	return rest, erasures
}

// commitBatch commits jobs as one transaction and answers each.
func (w *Writer) commitBatch(batch []*job, start time.Time) {
	err := w.commit(batch)
	if err != nil && !sqldb.IsInfrastructure(err) && len(batch) > 1 {
		// Something in the batch is wrong: commit each alone, so only the culprit fails.
		for _, j := range batch {
			if err := w.commit([]*job{j}); err != nil {
				j.err = err
			}
		}
	} else if err != nil {
		for _, j := range batch {
			if !j.answered {
				j.err = err
			}
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

// mergesAlone writes the batch's merges, each in its own transaction, and returns the
// other jobs. Merges are rare (a sign-in on a device with anonymous history) and touch two
// chains and the identifiers, so they do not join group commits.
func (w *Writer) mergesAlone(batch []*job) []*job {
	rest := batch[:0]
	for _, j := range batch {
		if j.in.merge == nil {
			rest = append(rest, j)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		j.out, j.err = w.svc.commitMerge(ctx, j.in)
		cancel()
		if j.err != nil {
			j.err = publicError(j.err)
		}
		close(j.done)
	}
	return rest
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
			if !j.replay && !j.answered {
				live = append(live, j)
			}
		}
		if len(live) == 0 {
			return nil
		}
		retry, err := w.commitOnce(ctx, live, len(jobs) == 1)
		if errors.Is(err, errMerged) && attempt < 3 {
			// Merged or erased meanwhile: written to where the subject went, or answered.
			if err := w.svc.redirectMerged(ctx, live); err != nil {
				return err
			}
			continue
		}
		if single := len(jobs) == 1; single && err != nil && sqldb.IsUniqueViolation(err) && attempt == 0 {
			// A new customer created a moment ago by another instance: look it up again
			// (reresolve) and join its chain.
			continue
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
	if w.db.Dialect == sqldb.Postgres && optimistic(jobs) {
		retry, err := w.commitTx(ctx, jobs, single, false)
		if !sqldb.IsUniqueViolation(err) {
			return retry, err
		}
		// A chain head moved under a plan (its next event's sequence number is taken) or a
		// new customer was created elsewhere: write again, locking and settling.
	}
	return w.commitTx(ctx, jobs, single, true)
}

// optimistic says whether a batch can be written without reading the chain heads first:
// every interaction was planned on the head it read, no subject has two in the batch, and
// none is a new person that another instance may have created meanwhile. The heads are
// still locked, in the write's own round trip; a head that moved since the plan shows as a
// unique violation of the first new event's (subject, seq), which rolls the whole batch
// back, and it is written again the careful way. A batch then takes one round trip.
func optimistic(jobs []*job) bool {
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		in := j.in
		if in.pre == nil || seen[in.subjectID] ||
			(in.newSubject != nil && in.identifier != nil && in.identifier.Kind != identity.IDDevice) {
			return false
		}
		seen[in.subjectID] = true
	}
	return true
}

// commitTx writes the jobs in one transaction; lock says whether the chain heads are locked
// and read first, or taken to be the ones the plans were made on.
func (w *Writer) commitTx(ctx context.Context, jobs []*job, single, lock bool) (retry bool, err error) {
	with := w.withSQL
	if w.db.Dialect == sqldb.Postgres {
		with = w.withPgx
	}
	var b *batch
	err = with(ctx, func(t writeTx) error {
		var err error
		if single {
			if err := w.svc.reresolve(ctx, t, jobs[0].in); err != nil {
				return err
			}
		}
		byTenant := map[string][]string{}
		seen := map[string]bool{}
		for _, j := range jobs {
			if j.in.newSubject == nil && !seen[j.in.subjectID] {
				seen[j.in.subjectID] = true
				byTenant[j.in.tenantID] = append(byTenant[j.in.tenantID], j.in.subjectID)
			}
		}
		heads := map[string]head{}
		if lock {
			if heads, err = t.lockHeads(ctx, byTenant); err != nil {
				return err
			}
		} else {
			// The heads are locked all the same, in the same order as everywhere (no
			// deadlocks), but in the write's round trip, without waiting to read them.
			if err := t.lockWithWrite(ctx, byTenant); err != nil {
				return err
			}
			for _, j := range jobs {
				heads[j.in.subjectID] = j.in.basis
			}
		}
		if b, err = w.settle(ctx, t, jobs, heads); err != nil {
			return err
		}
		taken, err := t.write(ctx, b)
		if err != nil {
			return err
		}
		if taken != nil {
			for _, j := range jobs {
				if k := j.in.idem; k != nil && taken[idempotencyKey(j.in.tenantID, k.Route, k.Key)] {
					j.replay = true
				}
			}
			retry = true
			return errRetry // roll back and write again without them
		}
		for _, st := range b.also {
			if err := t.exec(ctx, st); err != nil {
				return err
			}
		}
		for _, er := range b.erasures {
			if err := w.svc.erase(ctx, t, er, b.erasedAt); err != nil {
				return err
			}
		}
		return t.commit(ctx)
	})
	if retry {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for i, j := range jobs {
		j.out = b.outcomes[i]
	}
	w.metrics.EventsWritten(b.events)
	return false, nil
}

// errRetry rolls a batch back to be written again.
var errRetry = errors.New("writer: retry the batch")

// head is the newest event of a subject's chain.
type head struct {
	seq  int64
	hash string
}

// inShapes are the sizes of prepared IN lists; a list is padded with its last value up to
// the next shape, so a few prepared statements serve every batch.
var inShapes = []int{1, 4, 16, 64, 256}

// inQuery fills the %s of format with a padded list of placeholders for ids, after the
// leading arguments.
func inQuery(format string, lead string, ids []string) (string, []any) {
	n := len(ids)
	for _, s := range inShapes {
		if s >= n {
			n = s
			break
		}
	}
	args := make([]any, 0, n+1)
	args = append(args, lead)
	for i := 0; i < n; i++ {
		args = append(args, ids[min(i, len(ids)-1)])
	}
	return fmt.Sprintf(format, placeholders(n)), args
}

const statesSQL = `SELECT subject_id, purpose_id, purpose_key, state, version, decided_at, event_seq, method
	FROM consent_state WHERE tenant_id = ? AND subject_id IN (%s)`

// prepare prepares every statement a batch uses on SQLite, before any transaction holds
// its one write connection. (On PostgreSQL pgx prepares and caches them itself.)
func (w *Writer) prepare(ctx context.Context) error {
	if w.db.Dialect != sqldb.SQLite {
		return nil
	}
	for _, tb := range (&batch{}).tables() {
		if err := w.stmts.PrepareColumns(ctx, tb.name, tb.columns, tb.suffix); err != nil {
			return err
		}
	}
	if err := w.stmts.PrepareColumns(ctx, "idempotency_keys", idempotencyColumns, idempotencyReturning); err != nil {
		return err
	}
	lock := (&sqlWriteTx{forLock: w.db.ForUpdate()}).lockSQL()
	for _, n := range inShapes {
		if err := w.stmts.Prepare(ctx, fmt.Sprintf(lock, placeholders(n)), fmt.Sprintf(statesSQL, placeholders(n))); err != nil {
			return err
		}
	}
	return nil
}

// settle decides each job's plan: the one made before the writer when its chain head is
// still the one it built on, else a new one on top of the current head — including the
// changes of earlier jobs in this batch for the same subject.
func (w *Writer) settle(ctx context.Context, t writeTx, jobs []*job, heads map[string]head) (*batch, error) {
	b := &batch{heads: map[string][]any{}, states: map[string]*stateRow{}}
	touched := map[string]bool{}
	// Subjects whose interactions must be planned here, and their stored states.
	var replan []string
	for _, j := range jobs {
		in := j.in
		h := heads[in.subjectID]
		if in.pre == nil || in.basis != h || touched[in.subjectID] {
			if in.newSubject == nil && !touched[in.subjectID] {
				replan = append(replan, in.subjectID)
			}
		}
		touched[in.subjectID] = true
	}
	stored := map[string]map[string]*Stored{}
	if len(replan) > 0 {
		byTenant := map[string][]string{}
		for _, j := range jobs {
			for _, id := range replan {
				if j.in.subjectID == id {
					byTenant[j.in.tenantID] = append(byTenant[j.in.tenantID], id)
				}
			}
		}
		// A chain that moved under a plan may have been merged into a person meanwhile
		// (merge.go): such an interaction is written to the person instead. Or it was
		// erased (erase.go): nothing is written to it any more.
		if merged, err := w.mergedAway(ctx, t, jobs, byTenant); err != nil || merged {
			if err == nil {
				err = errMerged
			}
			return nil, err
		}
		for tenant, ids := range byTenant {
			s, err := t.statesOf(ctx, tenant, uniq(ids))
			if err != nil {
				return nil, err
			}
			for k, v := range s {
				stored[k] = v
			}
		}
	}
	seen := map[string]bool{}
	var sign func([]byte) (string, error)
	for _, j := range jobs {
		in := j.in
		h := heads[in.subjectID]
		p := in.pre
		if p == nil || in.basis != h || seen[in.subjectID] {
			if sign == nil {
				var err error
				if sign, err = w.svc.keys.SignFunc(ReceiptType); err != nil {
					return nil, err
				}
			}
			states := stored[in.subjectID]
			if states == nil {
				states = map[string]*Stored{}
				stored[in.subjectID] = states
			}
			if err := w.svc.checkErasable(ctx, t, in); err != nil {
				return nil, err
			}
			var err error
			if p, err = w.svc.planOne(in, h, states, w.svc.now(), sign); err != nil {
				return nil, err
			}
		}
		seen[in.subjectID] = true
		heads[in.subjectID] = p.head
		if states := stored[in.subjectID]; states != nil {
			for i := range p.states {
				states[p.states[i].PurposeID] = &p.states[i]
			}
		}
		if err := b.add(in, p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// batch is everything one transaction inserts.
type batch struct {
	subjects   []*identity.NewSubject
	idents     []*identity.NewIdentifier
	eventRows  [][]any
	events     int
	heads      map[string][]any // subject id → head row
	headOrder  []string
	states     map[string]*stateRow
	stateOrder []string
	domain     [][]any
	receipts   [][]any
	contexts   [][]any
	idem       [][]any
	erasures   []erasure
	also       []sqldb.Statement
	erasedAt   int64
	outcomes   []*Outcome
}

type stateRow struct {
	tenantID string
	s        Stored
}

type erasure struct{ tenantID, subjectID string }

func (b *batch) add(in *interaction, p *iplan) error {
	b.outcomes = append(b.outcomes, p.out)
	if in.also != nil {
		subjectID := in.subjectID
		if in.newSubject != nil {
			subjectID = in.newSubject.ID
		}
		sts, err := in.also(subjectID)
		if err != nil {
			return err
		}
		b.also = append(b.also, sts...)
	}
	if in.newSubject != nil {
		b.subjects = append(b.subjects, in.newSubject)
		b.idents = append(b.idents, in.newIdentifiers...)
	}
	if p.erase {
		b.erasures = append(b.erasures, erasure{in.tenantID, in.subjectID})
		b.erasedAt = p.now
	}
	if len(p.events) == 0 {
		return nil
	}
	for _, e := range p.events {
		b.eventRows = append(b.eventRows, eventArgs(e))
	}
	b.events += len(p.events)
	if _, ok := b.heads[in.subjectID]; !ok {
		b.headOrder = append(b.headOrder, in.subjectID)
	}
	b.heads[in.subjectID] = []any{in.tenantID, in.subjectID, p.head.seq, p.head.hash}
	for _, s := range p.states {
		key := stateKey(s.SubjectID, s.PurposeID)
		if _, ok := b.states[key]; !ok {
			b.stateOrder = append(b.stateOrder, key)
		}
		b.states[key] = &stateRow{tenantID: in.tenantID, s: s}
	}
	b.domain = append(b.domain, p.domain)
	if p.receipt != nil {
		b.receipts = append(b.receipts, p.receipt)
	}
	if p.context != nil {
		b.contexts = append(b.contexts, p.context)
	}
	if p.idem != nil {
		b.idem = append(b.idem, p.idem)
	}
	return nil
}

func stateKey(subjectID, purposeID string) string { return subjectID + "|" + purposeID }

// reresolve looks a new person's identifier up again inside the transaction: when a
// concurrent request created the same customer first, this one joins that subject (and is
// planned again by the writer on top of that subject's chain).
func (s *Service) reresolve(ctx context.Context, t writeTx, in *interaction) error {
	if in.newSubject == nil || in.identifier == nil || in.identifier.Kind == identity.IDDevice {
		return nil
	}
	id, pseudonym, err := t.findSubject(ctx, in.tenantID, *in.identifier, s.ids.LookupHashes(in.tenantID, *in.identifier))
	if identity.IsCode(err, identity.ENotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	in.newSubject, in.newIdentifiers, in.pre = nil, nil, nil
	in.subjectID, in.pseudonym = id, pseudonym
	return nil
}
