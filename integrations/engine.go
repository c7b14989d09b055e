package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Delivery statuses.
const (
	StatusPending    = "pending"
	StatusDelivered  = "delivered"
	StatusSuperseded = "superseded"
	StatusFailed     = "failed" // a final 4xx: not retried
	StatusDead       = "dead"   // the retry schedule ran out
	// StatusSkipped: the target handled it without sending anything (a connector had no
	// address for the person, or the change was already stale); the reason is last_error.
	StatusSkipped = "skipped"
)

// Attempt outcomes.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeFinal     = "final"
	OutcomeGone      = "gone"
)

// DefaultSchedule is how long a delivery waits after each failed attempt: the first attempt
// is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; after the eighth attempt
// fails the delivery is a dead letter.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// notifyChannel is the PostgreSQL channel the outbox trigger notifies at commit.
const notifyChannel = "lupa_deliveries"

// Target is an endpoint as the fan-out sees it.
type Target struct {
	ID            string
	EventTypes    []string
	Purposes      []string // empty: every purpose
	RecipientKind string
	RecipientID   string
}

// Targets lists a tenant's endpoints (webhook.Service).
type Targets interface {
	Targets(ctx context.Context, tenantID string) ([]Target, error)
}

// Message is one attempt of a delivery, ready to send.
type Message struct {
	TenantID   string
	EndpointID string
	ID         string // the webhook-id: the same on every attempt
	Type       string
	Body       []byte
	Attempt    int
	// What the delivery is about, for targets that act on it rather than POST it (connectors).
	SubjectID string
	Purpose   string // "#" + type for subject-level events
	Seq       int64
}

// Result is what an attempt got.
type Result struct {
	Status     int // the HTTP status; 0 when none came
	Latency    time.Duration
	Response   string // at most 1 KiB of the answer or the error
	Err        error
	RetryAfter time.Duration // asked for by a 429, 502, 503 or 504
	Gone       bool          // the endpoint no longer exists
	// Skipped, with a 2xx Status, says the target handled the delivery without sending it,
	// and why (recorded as status skipped).
	Skipped string
	// Outcome, when set, is the outcome instead of what Status implies (a connector knows
	// whether a vendor's 401 is worth retrying).
	Outcome string
}

// Sender sends messages and disables endpoints that are gone (webhook.Service,
// connector.Service, or a Router of both).
type Sender interface {
	Send(ctx context.Context, m Message) Result
	Disable(ctx context.Context, tenantID, id, reason string) error
}

// Catalogs gives a tenant's published purposes (consent.Service): a third party holds a
// subject once it was granted a purpose version that names the third party as recipient.
type Catalogs interface {
	Catalog(ctx context.Context, tenantID string) (*consent.Catalog, error)
}

// Metrics observes attempts (cmd/lupa's Prometheus metrics).
type Metrics interface {
	Attempted(target, outcome string, latency time.Duration) // target: the endpoint's or connector's id
}

// Options tune the engine; zero values take the defaults.
type Options struct {
	Workers int // HTTP requests in flight at once (64)
	// PerTarget bounds one endpoint's or connector's share of them: a claim takes at most
	// PerTarget deliveries of a target, and none of a target that has PerTarget in flight
	// here, so a slow receiver or a vendor's rate limit holds at most 2×PerTarget−1 workers
	// and the others keep theirs (Workers/4).
	PerTarget int
	Batch     int           // events or deliveries per transaction (200)
	Poll      time.Duration // how often to look for work without a wake-up (1 s)
	// Lease is how long a claimed delivery is its engine's (1 min). An attempt is cut off
	// shortly before its lease ends (attemptBudget): a webhook's takes at most about 47 s.
	Lease    time.Duration
	Schedule []time.Duration
	// Jitter spreads a retry's wait (default: ±20 %).
	Jitter  func(time.Duration) time.Duration
	Log     *slog.Logger
	Metrics Metrics
	// Erasures hears, in the transaction that records it, that an endpoint or connector
	// acknowledged a subject.erasure_approved (the data map counts it as that system's
	// confirmation). Optional.
	Erasures ErasureRecorder
	// LogRetention is how long a finished message stays in the delivery log (prune.go;
	// DefaultLogRetention).
	LogRetention time.Duration
}

// ErasureRecorder records that a connected system acknowledged an approved erasure.
type ErasureRecorder interface {
	ErasureDelivered(tx *gorm.DB, tenantID, subjectID, requestID, connectionID string, at time.Time) error
}

// messageIDPrefix starts every message id (the webhook-id), before a UUIDv7.
const messageIDPrefix = "msg_"

// Engine fans domain events out into deliveries and sends them.
type Engine struct {
	db       *sqldb.DB
	catalogs Catalogs
	targets  Targets
	sender   Sender
	now      func() time.Time
	opt      Options
	wake     chan struct{} // fan out now
	send     chan struct{} // claim due deliveries now

	mu           sync.Mutex
	sinceAnalyze int       // events fanned out since the last ANALYZE (analyze)
	analyzedAt   time.Time // when this engine last ran it
}

// New returns an engine; Run starts it.
func New(db *sqldb.DB, catalogs Catalogs, targets Targets, sender Sender, now func() time.Time, opt Options) *Engine {
	if opt.Workers <= 0 {
		opt.Workers = 128
	}
	if opt.Batch <= 0 {
		opt.Batch = 200
	}
	if opt.PerTarget <= 0 {
		opt.PerTarget = max(opt.Workers/4, 1)
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.LogRetention <= 0 {
		opt.LogRetention = DefaultLogRetention
	}
	if opt.Lease <= 0 {
		opt.Lease = time.Minute
	}
	if opt.Schedule == nil {
		opt.Schedule = DefaultSchedule
	}
	if opt.Jitter == nil {
		opt.Jitter = func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
		}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{db: db, catalogs: catalogs, targets: targets, sender: sender, now: now, opt: opt,
		wake: make(chan struct{}, 1), send: make(chan struct{}, 1)}
}

// SetMetrics sets the metrics the engine reports to; call it before Run.
func (e *Engine) SetMetrics(m Metrics) { e.opt.Metrics = m }

// MaxAttempts is how many attempts a delivery gets before it is a dead letter.
func (e *Engine) MaxAttempts() int { return len(e.opt.Schedule) + 1 }

// Wake makes Run look for work now: after a commit that wrote domain events, an endpoint
// enabled, a replay.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
	e.wakeSender()
}

// Committed is the consent writer's hook after a commit that wrote events. On SQLite it
// wakes Run. On PostgreSQL it does nothing: the outbox trigger's NOTIFY wakes every
// instance, this one included, and only when the commit left something to deliver, while
// most commits (tenants without endpoints or connectors) leave nothing; waking on each cost
// a fan-out transaction and a claim per writer batch.
func (e *Engine) Committed() {
	if e.db.Dialect != sqldb.Postgres {
		e.Wake()
	}
}

// wakeSender makes Run's sending loop look for due deliveries now.
func (e *Engine) wakeSender() {
	select {
	case e.send <- struct{}{}:
	default:
	}
}

// Run fans out and delivers until ctx ends. The fan-out wakes on Wake, on PostgreSQL's
// NOTIFY from the outbox trigger (another instance's commits), and every Poll; the sending
// loop keeps up to Workers attempts in flight, claiming more as each finishes, so one slow
// endpoint never holds up the others; finished attempts are recorded in batches. Attempts
// in flight when ctx ends are given back unrecorded (their request is cancelled), to be
// made again by another instance or after the next start.
func (e *Engine) Run(ctx context.Context) {
	if e.db.Dialect == sqldb.Postgres {
		go e.listen(ctx)
	}
	go e.pruneLoop(ctx)
	done := make(chan struct{})
	go func() { e.sendLoop(ctx); close(done) }()
	t := time.NewTicker(e.opt.Poll)
	defer t.Stop()
	for {
		if _, err := e.FanOut(ctx); err != nil && ctx.Err() == nil {
			e.opt.Log.Error("deliveries: fan-out", "err", err)
		}
		select {
		case <-ctx.Done():
			<-done
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

func (e *Engine) sendLoop(ctx context.Context) {
	t := time.NewTicker(e.opt.Poll)
	defer t.Stop()
	slots := make(chan struct{}, e.opt.Workers)
	results := make(chan finished, e.opt.Workers)
	stop := make(chan struct{})
	go e.completer(ctx, results, slots, stop)
	busy := newInflight()
	for {
		if free := e.opt.Workers - len(slots); free > 0 {
			rows, err := e.claim(ctx, min(free, e.opt.Batch), busy.atLeast(e.opt.PerTarget))
			if err != nil && ctx.Err() == nil {
				e.opt.Log.Error("deliveries: claim", "err", err)
			}
			for i := range rows {
				slots <- struct{}{}
				busy.add(&rows[i], 1)
				go func(d *claimedRow) {
					f, ok := e.attempt(ctx, d)
					busy.add(d, -1)
					if ok {
						results <- f // the completer records it and frees the slot
						return
					}
					<-slots
				}(&rows[i])
			}
			if len(rows) == free {
				continue // there may be more
			}
		}
		select {
		case <-ctx.Done():
			for range e.opt.Workers {
				slots <- struct{}{}
			}
			close(stop)
			return
		case <-e.send:
		case <-t.C:
		}
	}
}

// completer records finished attempts, as many at a time as have finished (one
// transaction for all of them), frees their slots and wakes the sending loop.
func (e *Engine) completer(ctx context.Context, results <-chan finished, slots <-chan struct{}, stop <-chan struct{}) {
	bg := context.WithoutCancel(ctx) // what was sent is recorded, shutting down or not
	for {
		var batch []finished
		select {
		case f := <-results:
			batch = append(batch, f)
		case <-stop:
			return
		}
	more:
		for len(batch) < 256 {
			select {
			case f := <-results:
				batch = append(batch, f)
			default:
				break more
			}
		}
		if err := e.record(bg, batch); err != nil {
			e.opt.Log.Error("deliveries: record attempts", "err", err)
		}
		for range batch {
			<-slots
		}
		e.wakeSender()
	}
}

// Step fans out every waiting domain event and makes every attempt that is due, then
// returns. Tests drive the engine with it and an injected clock.
func (e *Engine) Step(ctx context.Context) error {
	if _, err := e.FanOut(ctx); err != nil {
		return err
	}
	_, err := e.DeliverDue(ctx)
	return err
}

// listen turns NOTIFY lupa_deliveries into wake-ups; it reconnects after an error.
func (e *Engine) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := e.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		e.opt.Log.Warn("deliveries: LISTEN connection lost; polling meanwhile", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

func (e *Engine) listenOnce(ctx context.Context) error {
	conn, err := e.db.SQL().Conn(ctx)
	if err != nil {
		return err
	}
	defer func() {
		_ = conn.Raw(func(dc any) error { // a LISTENing connection must not go back to the pool
			if c, ok := dc.(*stdlib.Conn); ok {
				_ = c.Conn().Close(context.Background())
			}
			return nil
		})
		_ = conn.Close()
	}()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("integrations: the PostgreSQL driver is not pgx's")
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
			return err
		}
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				return err
			}
			e.Wake()
		}
	})
}

// ---- fan-out ----

type outboxRow struct {
	TenantID   string
	EventID    string
	Type       string
	SubjectID  string
	SubjectSeq int64
	Payload    string
}

type keyRow struct {
	TenantID          string
	EndpointID        string
	SubjectID         string
	Purpose           string
	LastSeq           int64
	Held              bool
	DeliveredSeq      int64
	DeliveredDecision string
}

type keyID struct{ endpoint, subject, purpose string }

// item is one message a domain event makes, before recipients are applied.
type item struct {
	typ      string
	purpose  string // the purpose key; "#" + type for subject-level events
	seq      int64
	decision string
	version  int
	data     any
}

// subjectLevel reports whether a key's purpose names a subject-level event.
func subjectLevel(purpose string) bool { return len(purpose) > 0 && purpose[0] == '#' }

// The fan-out's advisory locks on PostgreSQL: of its loop, and of each batch's
// transaction. They differ, because a session's lock and a transaction's of one key
// exclude each other even on one instance.
const (
	fanoutLock      = "lupa.integrations.fanout"
	fanoutBatchLock = "lupa.integrations.fanout.batch"
)

// FanOut turns the waiting domain events into deliveries, a batch per transaction, and
// returns how many events it handled. On PostgreSQL one instance fans out at a time, so
// each subject's events are handled in order. Two advisory locks see to it: TryLock keeps
// one fan-out loop across instances, and each batch's transaction takes a lock of its own
// as well, because TryLock's lives on a connection of its own. When an instance dies,
// PostgreSQL can notice that idle connection before the one of its batch; without the
// batch's lock the next instance would then pass the dead batch's outbox rows by (SKIP
// LOCKED) and hand out newer changes of their keys first. A change that still comes after
// a newer one of its key (a clock stepped back) is logged as superseded by fanoutTenant.
func (e *Engine) FanOut(ctx context.Context) (int, error) {
	total := 0
	_, err := e.db.TryLock(ctx, fanoutLock, func(ctx context.Context) error {
		for {
			n, err := e.fanoutBatch(ctx)
			total += n
			if err != nil || n < e.opt.Batch {
				return err
			}
		}
	})
	if total > 0 {
		e.analyze(ctx, total)
		e.wakeSender()
	}
	return total, err
}

// analyzeEvery is how many fanned-out events make the engine refresh PostgreSQL's
// statistics of the delivery tables. A backlog that grows faster than autovacuum looks (a
// receiver that was down, a campaign) otherwise leaves the planner believing the tables
// nearly empty: the claim's and the supersession's queries then scan every pending row per
// row, and sending fell from about 3,700 to 200 deliveries a second in the benchmark.
const analyzeEvery = 2000

// analyze runs ANALYZE on the delivery tables after analyzeEvery fanned-out events, at most
// every three seconds (so never two at once). It samples a bounded number of rows.
func (e *Engine) analyze(ctx context.Context, n int) {
	if e.db.Dialect != sqldb.Postgres {
		return
	}
	now := e.now()
	e.mu.Lock()
	e.sinceAnalyze += n
	due := e.sinceAnalyze >= analyzeEvery && now.Sub(e.analyzedAt) >= 3*time.Second
	if due {
		e.sinceAnalyze, e.analyzedAt = 0, now
	}
	e.mu.Unlock()
	if !due {
		return
	}
	// Beside the sending, not before it: the deliveries just fanned out go now.
	go func() {
		if err := e.db.Write.WithContext(ctx).Exec("ANALYZE deliveries, delivery_keys").Error; err != nil && ctx.Err() == nil {
			e.opt.Log.WarnContext(ctx, "analyze the delivery tables", "err", err)
		}
	}()
}

func (e *Engine) fanoutBatch(ctx context.Context) (int, error) {
	if !e.anything(ctx, "SELECT 1 FROM delivery_outbox LIMIT 1") {
		return 0, nil
	}
	n := 0
	err := e.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// A batch of an instance that died may still hold rows: wait for it (see FanOut).
		if got, err := e.db.TryXactLock(tx, fanoutBatchLock); err != nil || !got {
			return err
		}
		q := `SELECT o.tenant_id, o.event_id, d.type, o.subject_id, o.subject_seq, d.payload
			FROM delivery_outbox o JOIN domain_events d ON d.tenant_id = o.tenant_id AND d.id = o.event_id
			ORDER BY o.created_at, o.subject_id, o.subject_seq LIMIT ?`
		if e.db.Dialect == sqldb.Postgres {
			q += " FOR UPDATE OF o SKIP LOCKED"
		}
		var rows []outboxRow
		if err := tx.Raw(q, e.opt.Batch).Scan(&rows).Error; err != nil {
			return err
		}
		n = len(rows)
		if n == 0 {
			return nil
		}
		sort.SliceStable(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.TenantID != b.TenantID {
				return a.TenantID < b.TenantID
			}
			if a.SubjectID != b.SubjectID {
				return a.SubjectID < b.SubjectID
			}
			return a.SubjectSeq < b.SubjectSeq
		})
		for start := 0; start < len(rows); {
			end := start
			for end < len(rows) && rows[end].TenantID == rows[start].TenantID {
				end++
			}
			if err := e.fanoutTenant(ctx, tx, rows[start].TenantID, rows[start:end]); err != nil {
				return err
			}
			start = end
		}
		return nil
	})
	return n, err
}

var deliveryColumns = []string{"tenant_id", "id", "endpoint_id", "subject_id", "purpose", "seq", "event_type", "decision",
	"payload", "status", "attempts", "next_attempt_at", "lease_until", "created_at", "updated_at"}

func (e *Engine) fanoutTenant(ctx context.Context, tx *gorm.DB, tenantID string, rows []outboxRow) error {
	eventIDs := make([]string, len(rows))
	for i, r := range rows {
		eventIDs[i] = r.EventID
	}
	done := func() error {
		for c := range slices.Chunk(eventIDs, 500) {
			if err := tx.Exec("DELETE FROM delivery_outbox WHERE tenant_id = ? AND event_id IN ?", tenantID, c).Error; err != nil {
				return err
			}
		}
		return nil
	}
	targets, err := e.targets.Targets(ctx, tenantID)
	if err != nil || len(targets) == 0 {
		if err != nil {
			return err
		}
		return done()
	}
	var catalog *consent.Catalog
	for _, t := range targets {
		if t.RecipientKind == RecipientThirdParty {
			if catalog, err = e.catalogs.Catalog(ctx, tenantID); err != nil {
				return err
			}
			break
		}
	}
	// The key states of the subjects in this batch.
	var subjects []string
	for _, r := range rows {
		if len(subjects) == 0 || subjects[len(subjects)-1] != r.SubjectID {
			subjects = append(subjects, r.SubjectID)
		}
	}
	keys := map[keyID]*keyRow{}
	for c := range slices.Chunk(subjects, 500) {
		var krows []keyRow
		if err := tx.Raw(`SELECT tenant_id, endpoint_id, subject_id, purpose, last_seq, held, delivered_seq, delivered_decision
			FROM delivery_keys WHERE tenant_id = ? AND subject_id IN ?`, tenantID, c).Scan(&krows).Error; err != nil {
			return err
		}
		for i := range krows {
			k := &krows[i]
			keys[keyID{k.EndpointID, k.SubjectID, k.Purpose}] = k
		}
	}
	before := map[keyID]keyRow{} // as loaded, for knowing whether an older delivery may wait
	for id, k := range keys {
		before[id] = *k
	}
	now := e.now().UnixMilli()
	var deliveries [][]any
	inBatch := map[keyID]int{} // the index in deliveries of the key's newest delivery of this batch
	dirty := map[keyID]bool{}
	var supersede []keyRow // keys with an older pending delivery in the database, and the new seq
	for _, r := range rows {
		var p domainPayload
		if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
			e.opt.Log.Error("deliveries: unreadable domain event; skipped", "type", r.Type, "err", err)
			continue
		}
		items, err := e.items(ctx, tx, tenantID, r, &p)
		if err != nil {
			return err
		}
		for _, t := range targets {
			for _, it := range items {
				if !slices.Contains(t.EventTypes, it.typ) {
					continue
				}
				if !subjectLevel(it.purpose) && len(t.Purposes) > 0 && !slices.Contains(t.Purposes, it.purpose) {
					continue
				}
				id := keyID{t.ID, r.SubjectID, it.purpose}
				k := keys[id]
				if k != nil && it.seq == k.LastSeq {
					continue // already fanned out
				}
				held := true
				if t.RecipientKind == RecipientThirdParty {
					switch {
					case subjectLevel(it.purpose):
						held = holds(keys, t.ID, r.SubjectID)
					case k != nil && k.Held:
					default:
						held = it.decision == consent.Granted && names(catalog, it.purpose, it.version, t.RecipientID)
					}
					if !held {
						continue // it never hears of someone it was not given
					}
				}
				if k != nil && it.seq < k.LastSeq {
					// Older than a change of its key fanned out already: a clock stepped
					// back between instances (a dead instance's batch is waited for; see
					// FanOut). The newer change stands; this one is logged as superseded and
					// never sent.
					d, err := newMessage(tenantID, t.ID, r.SubjectID, it, StatusSuperseded, now)
					if err != nil {
						return err
					}
					deliveries = append(deliveries, d)
					continue
				}
				if k == nil {
					k = &keyRow{TenantID: tenantID, EndpointID: t.ID, SubjectID: r.SubjectID, Purpose: it.purpose}
					keys[id] = k
				}
				k.LastSeq, k.Held = it.seq, held
				dirty[id] = true
				if i, ok := inBatch[id]; ok {
					deliveries[i][9] = StatusSuperseded
				} else if b, ok := before[id]; ok && b.LastSeq > b.DeliveredSeq {
					supersede = append(supersede, keyRow{EndpointID: t.ID, SubjectID: r.SubjectID, Purpose: it.purpose, LastSeq: it.seq})
				}
				d, err := newMessage(tenantID, t.ID, r.SubjectID, it, StatusPending, now)
				if err != nil {
					return err
				}
				inBatch[id] = len(deliveries)
				deliveries = append(deliveries, d)
			}
		}
	}
	// Older deliveries of the same keys that are waiting (not being sent) are superseded.
	for _, s := range supersede {
		if err := tx.Exec(`UPDATE deliveries SET status = ?, updated_at = ? WHERE tenant_id = ? AND endpoint_id = ? AND subject_id = ?
			AND purpose = ? AND status = ? AND seq < ? AND lease_until < ?`, StatusSuperseded, now, tenantID, s.EndpointID,
			s.SubjectID, s.Purpose, StatusPending, s.LastSeq, now).Error; err != nil {
			return err
		}
	}
	if err := sqldb.BulkInsert(tx, "deliveries", deliveryColumns, deliveries,
		" ON CONFLICT (tenant_id, endpoint_id, subject_id, purpose, seq) DO NOTHING"); err != nil {
		return err
	}
	krows := make([][]any, 0, len(dirty))
	for id := range dirty {
		k := keys[id]
		krows = append(krows, []any{tenantID, k.EndpointID, k.SubjectID, k.Purpose, k.LastSeq, k.Held})
	}
	sort.Slice(krows, func(i, j int) bool { // a fixed order: two writers never deadlock
		a, b := krows[i], krows[j]
		if a[1] != b[1] {
			return a[1].(string) < b[1].(string)
		}
		if a[2] != b[2] {
			return a[2].(string) < b[2].(string)
		}
		return a[3].(string) < b[3].(string)
	})
	if err := sqldb.BulkInsert(tx, "delivery_keys", []string{"tenant_id", "endpoint_id", "subject_id", "purpose", "last_seq", "held"},
		krows, " ON CONFLICT (tenant_id, endpoint_id, subject_id, purpose) DO UPDATE SET last_seq = excluded.last_seq, held = excluded.held"); err != nil {
		return err
	}
	return done()
}

// newMessage is a new message of one change to one target, in deliveryColumns order.
func newMessage(tenantID, endpointID, subjectID string, it item, status string, now int64) ([]any, error) {
	body, err := json.Marshal(it.data)
	if err != nil {
		return nil, err
	}
	return []any{tenantID, messageIDPrefix + identity.NewID(), endpointID, subjectID, it.purpose, it.seq, it.typ, it.decision,
		string(body), status, 0, now, int64(0), now, now}, nil
}

// holds reports whether a third party holds the subject: it was given any purpose of it.
func holds(keys map[keyID]*keyRow, endpoint, subject string) bool {
	for id, k := range keys {
		if id.endpoint == endpoint && id.subject == subject && k.Held && !subjectLevel(id.purpose) {
			return true
		}
	}
	return false
}

// names reports whether the published version of the purpose names the recipient.
func names(c *consent.Catalog, purpose string, version int, recipientID string) bool {
	if c == nil || recipientID == "" {
		return false
	}
	p, ok := c.Purpose(purpose)
	if !ok {
		return false
	}
	v := p.Versions[version]
	if v == nil {
		return false
	}
	for _, r := range v.Details.Recipients {
		if r.ID == recipientID {
			return true
		}
	}
	return false
}

// items are the messages a domain event makes.
func (e *Engine) items(ctx context.Context, tx *gorm.DB, tenantID string, r outboxRow, p *domainPayload) ([]item, error) {
	var out []item
	switch r.Type {
	case "consent.recorded", "consent.expired", "consent.outdated", "subject.merged":
		var carried []string
		for _, c := range p.Changes {
			if c.Purpose == "" {
				continue
			}
			decision, reason := c.Decision, ReasonDecision
			switch c.Kind {
			case consent.KindDecision, consent.KindObjection:
				switch {
				case p.Method == consent.MethodGPCSignal:
					reason = ReasonGPC
				case c.Reason == consent.WithdrawUserDeleted || c.Reason == consent.WithdrawAccountDeleted:
					reason = ReasonAccountDeleted
				}
			case consent.KindExpiry:
				decision, reason = consent.StateExpired, ReasonExpiry
			case consent.KindOutdated:
				decision, reason = consent.StateOutdated, ReasonOutdated
			case consent.KindMerge:
				reason = ReasonMerge
				carried = append(carried, c.Purpose)
			default:
				continue
			}
			out = append(out, item{typ: TypeConsentUpdated, purpose: c.Purpose, seq: c.Seq, decision: decision, version: c.Version,
				data: ConsentUpdated{Subject: p.Subject, Purpose: c.Purpose, Version: c.Version, Decision: decision, Reason: reason,
					Channel: p.Channel, Time: p.At.UTC(), Sequence: c.Seq, EventID: c.EventID}})
		}
		if r.Type == "subject.merged" {
			from := ""
			if p.MergedFrom != "" {
				var ps []*string
				if err := tx.WithContext(ctx).Raw("SELECT pseudonym FROM subjects WHERE tenant_id = ? AND id = ?", tenantID, p.MergedFrom).
					Scan(&ps).Error; err != nil {
					return nil, err
				}
				if len(ps) > 0 && ps[0] != nil {
					from = *ps[0]
				}
			}
			if carried == nil {
				carried = []string{}
			}
			out = append(out, item{typ: TypeSubjectMerged, purpose: "#" + TypeSubjectMerged, seq: r.SubjectSeq,
				data: SubjectMerged{Subject: p.Subject, MergedFrom: from, Purposes: carried, Time: p.At.UTC(), Sequence: r.SubjectSeq}})
		}
	case TypeSubjectErasureApproved:
		out = append(out, item{typ: TypeSubjectErasureApproved, purpose: "#" + TypeSubjectErasureApproved, seq: r.SubjectSeq,
			data: SubjectErasureApproved{Subject: p.Subject, RequestID: p.RequestID, Time: p.At.UTC(), Sequence: r.SubjectSeq}})
	case TypeSubjectEmailChanged:
		out = append(out, item{typ: TypeSubjectEmailChanged, purpose: "#" + TypeSubjectEmailChanged, seq: r.SubjectSeq,
			data: SubjectEmailChanged{Subject: p.Subject, Time: p.At.UTC(), Sequence: r.SubjectSeq}})
	}
	return out, nil
}

// ---- delivery ----

type claimedRow struct {
	TenantID         string
	ID               string
	EndpointID       string
	SubjectID        string
	Purpose          string
	Seq              int64
	EventType        string
	Decision         string
	PreviousDecision *string
	Payload          string
	Attempts         int
	ScheduleBase     int
	CreatedAt        int64
}

// claim leases up to n due deliveries, each the oldest waiting of its key, of enabled
// endpoints. Several engines on one PostgreSQL skip each other's locked rows.
//
// The due deliveries are read in next_attempt_at order from the partial index, a small
// window at a time (LIMIT before anything that would make the planner sort them all);
// only then are those waiting behind an older one of their key dropped and the rest locked.
func (e *Engine) claim(ctx context.Context, n int, saturated []string) ([]claimedRow, error) {
	now := e.now().UnixMilli()
	if !e.anything(ctx, `SELECT 1 FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until < ? LIMIT 1`, now, now) {
		return nil, nil
	}
	lock := ""
	if e.db.Dialect == sqldb.Postgres {
		lock = " FOR UPDATE OF d SKIP LOCKED"
	}
	skip := ""
	args := []any{now + e.opt.Lease.Milliseconds(), now, now, now}
	if len(saturated) > 0 {
		skip = " AND tenant_id || '/' || endpoint_id NOT IN ?"
		args = append(args, saturated)
	}
	args = append(args, 4*n+e.opt.Workers, now, e.opt.PerTarget, n)
	q := `UPDATE deliveries SET lease_until = ?, attempts = attempts + 1, updated_at = ?,
		previous_decision = (SELECT NULLIF(k.delivered_decision, '') FROM delivery_keys k WHERE k.tenant_id = deliveries.tenant_id
			AND k.endpoint_id = deliveries.endpoint_id AND k.subject_id = deliveries.subject_id AND k.purpose = deliveries.purpose)
		FROM (SELECT d.tenant_id AS t, d.id AS i FROM deliveries d
			JOIN (SELECT tenant_id, id, row_number() OVER (PARTITION BY tenant_id, endpoint_id ORDER BY next_attempt_at) AS rn
				FROM (SELECT tenant_id, id, endpoint_id, next_attempt_at FROM deliveries
				WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until < ?
				AND (tenant_id, endpoint_id) NOT IN (SELECT tenant_id, id FROM webhook_endpoints WHERE status <> 'enabled')
				AND (tenant_id, endpoint_id) NOT IN (SELECT tenant_id, id FROM connectors WHERE status <> 'enabled')` + skip + `
				ORDER BY next_attempt_at LIMIT ?) w) c ON c.tenant_id = d.tenant_id AND c.id = d.id
			WHERE d.status = 'pending' AND d.lease_until < ? AND c.rn <= ?
			AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.tenant_id = d.tenant_id AND p.endpoint_id = d.endpoint_id
				AND p.subject_id = d.subject_id AND p.purpose = d.purpose AND p.status = 'pending' AND p.seq < d.seq)
			ORDER BY d.next_attempt_at LIMIT ?` + lock + `) s
		WHERE deliveries.tenant_id = s.t AND deliveries.id = s.i
		RETURNING deliveries.tenant_id, deliveries.id, deliveries.endpoint_id, deliveries.subject_id, deliveries.purpose,
			deliveries.seq, deliveries.event_type, deliveries.decision, deliveries.previous_decision, deliveries.payload,
			deliveries.attempts, deliveries.schedule_base, deliveries.created_at`
	var rows []claimedRow // one statement: atomic without a transaction around it
	err := e.db.Write.WithContext(ctx).Raw(q, args...).Scan(&rows).Error
	return rows, err
}

// anything reports whether a query finds a row, asked on SQLite's read pool first: SQLite
// has one write connection, which the consent writer needs, and the engine is woken after
// every commit that wrote events — most of them, for tenants without endpoints or
// connectors, leave nothing to fan out or send. On PostgreSQL (or when the peek fails) it
// answers true and the claim itself finds out.
func (e *Engine) anything(ctx context.Context, q string, args ...any) bool {
	if e.db.Dialect != sqldb.SQLite {
		return true
	}
	var found []int
	if err := e.db.Read.WithContext(ctx).Raw(q, args...).Scan(&found).Error; err != nil {
		return true
	}
	return len(found) > 0
}

// DeliverDue makes every attempt that is due, Workers at a time, and returns how many.
func (e *Engine) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		rows, err := e.claim(ctx, e.opt.Batch, nil)
		if err != nil {
			return total, err
		}
		if len(rows) == 0 {
			return total, nil
		}
		sem := make(chan struct{}, e.opt.Workers)
		out := make(chan finished, len(rows))
		for i := range rows {
			sem <- struct{}{}
			go func(d *claimedRow) {
				defer func() { <-sem }()
				if f, ok := e.attempt(ctx, d); ok {
					out <- f
				}
			}(&rows[i])
		}
		for range e.opt.Workers {
			sem <- struct{}{}
		}
		close(out)
		var batch []finished
		for f := range out {
			batch = append(batch, f)
		}
		if err := e.record(ctx, batch); err != nil {
			return total, err
		}
		total += len(rows)
	}
	return total, ctx.Err()
}

// inflight counts the attempts in flight per target (tenant/endpoint).
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

func newInflight() *inflight { return &inflight{n: map[string]int{}} }

func (f *inflight) add(d *claimedRow, delta int) {
	k := d.TenantID + "/" + d.EndpointID
	f.mu.Lock()
	if f.n[k] += delta; f.n[k] <= 0 {
		delete(f.n, k)
	}
	f.mu.Unlock()
}

// atLeast lists the targets with at least limit attempts in flight.
func (f *inflight) atLeast(limit int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, n := range f.n {
		if n >= limit {
			out = append(out, k)
		}
	}
	return out
}

// body is the JSON of a delivery: the envelope, and previous_decision filled in.
func body(d *claimedRow) ([]byte, error) {
	data := json.RawMessage(d.Payload)
	var at time.Time
	if d.EventType == TypeConsentUpdated {
		var c ConsentUpdated
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, err
		}
		c.PreviousDecision = d.PreviousDecision
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		data, at = b, c.Time
	} else {
		var t struct {
			Time time.Time `json:"time"`
		}
		_ = json.Unmarshal(data, &t)
		at = t.Time
	}
	return json.Marshal(Envelope{Type: d.EventType, SchemaVersion: SchemaVersion, Timestamp: at, Data: data})
}

// classify decides what an attempt's result means (Standard Webhooks' rules).
func classify(r Result) string {
	switch {
	case r.Outcome != "":
		return r.Outcome
	case r.Gone:
		return OutcomeFinal
	case r.Err != nil || r.Status == 0:
		return OutcomeRetry
	case r.Status >= 200 && r.Status < 300:
		return OutcomeDelivered
	case r.Status == 410:
		return OutcomeGone
	case r.Status == 408 || r.Status == 409 || r.Status == 425 || r.Status == 429:
		return OutcomeRetry
	case r.Status >= 400 && r.Status < 500:
		return OutcomeFinal
	default:
		return OutcomeRetry // 1xx, 3xx (redirects are not followed), 5xx
	}
}

// finished is an attempt made, waiting to be recorded.
type finished struct {
	d       *claimedRow
	r       Result
	outcome string
}

// attempt sends one delivery, outside any transaction. ok is false when the engine is
// shutting down: the delivery is given back (so another instance, or the next start, tries
// it at once rather than when its lease runs out) and there is nothing to record.
func (e *Engine) attempt(ctx context.Context, d *claimedRow) (finished, bool) {
	b, err := body(d)
	var r Result
	if err != nil {
		r = Result{Err: err, Response: "unreadable payload"}
	} else {
		// The attempt ends before its lease does. Past the lease another claim may take the
		// delivery, or the fan-out supersede it and send a newer change of its key: a call
		// still made after that (a connector waiting on its vendor's rate limit, an in-call
		// retry) would reach the receiver after the newer state and undo it.
		sctx, cancel := context.WithTimeout(ctx, e.attemptBudget())
		r = e.sender.Send(sctx, Message{TenantID: d.TenantID, EndpointID: d.EndpointID, ID: d.ID, Type: d.EventType, Body: b, Attempt: d.Attempts,
			SubjectID: d.SubjectID, Purpose: d.Purpose, Seq: d.Seq})
		cancel()
	}
	if ctx.Err() != nil {
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = e.db.Write.WithContext(bg).Exec(`UPDATE deliveries SET lease_until = 0, attempts = attempts - 1
			WHERE tenant_id = ? AND id = ? AND status = 'pending'`, d.TenantID, d.ID).Error
		return finished{}, false
	}
	outcome := classify(r)
	if e.opt.Metrics != nil {
		e.opt.Metrics.Attempted(d.EndpointID, outcome, r.Latency)
	}
	return finished{d: d, r: r, outcome: outcome}, true
}

// attemptBudget is how long one attempt may take: its lease, less a margin for claiming,
// recording, and clocks that differ a little between instances.
func (e *Engine) attemptBudget() time.Duration {
	return e.opt.Lease - min(e.opt.Lease/10, 5*time.Second)
}

// record writes what a batch of attempts got, in one transaction: a log row each, the
// delivered ones (their keys' last delivered decision, and the flush of their endpoints'
// backlogs) with one statement per table, the others one by one. Then it disables the
// endpoints that answered 410.
func (e *Engine) record(ctx context.Context, batch []finished) error {
	if len(batch) == 0 {
		return nil
	}
	now := e.now()
	ms := now.UnixMilli()
	attempts := make([][]any, 0, len(batch))
	var delivered []finished
	for _, f := range batch {
		resp := f.r.Response
		if resp == "" && f.r.Err != nil {
			resp = excerpt(f.r.Err.Error())
		}
		attempts = append(attempts, []any{f.d.TenantID, f.d.ID, f.d.Attempts, f.d.EndpointID, f.r.Status, f.outcome,
			f.r.Latency.Milliseconds(), resp, ms})
		if f.outcome == OutcomeDelivered {
			delivered = append(delivered, f)
		}
	}
	// The messages went out: what they got must not be lost to a deadlock with another
	// instance's fan-out (PostgreSQL ends one of the two), or the leases would run out and
	// the messages go again. The transaction is run again instead.
	var err error
	for try := 1; ; try++ {
		if err = e.recordTx(ctx, batch, attempts, delivered, now); !sqldb.IsLockConflict(err) || try == recordTries {
			break
		}
	}
	if err != nil {
		return err
	}
	for _, f := range batch {
		if f.outcome == OutcomeGone {
			if err := e.sender.Disable(ctx, f.d.TenantID, f.d.EndpointID, "the endpoint answered 410 Gone"); err != nil &&
				!identity.IsCode(err, identity.ENotFound) {
				return err
			}
		}
	}
	return nil
}

// recordTries is how many times record runs its transaction when PostgreSQL ends it for a
// deadlock or a serialisation failure.
const recordTries = 5

func (e *Engine) recordTx(ctx context.Context, batch []finished, attempts [][]any, delivered []finished, now time.Time) error {
	ms := now.UnixMilli()
	return e.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := e.recordDelivered(tx, delivered, ms); err != nil {
			return err
		}
		if err := e.recordErasures(tx, delivered, now); err != nil {
			return err
		}
		for _, f := range batch {
			if f.outcome != OutcomeDelivered {
				if err := e.recordFailure(tx, f, now); err != nil {
					return err
				}
			}
		}
		return insertAttempts(tx, attempts)
	})
}

// insertAttempts records the attempts of the deliveries that still exist. Deleting an
// endpoint or a connector takes its deliveries and their attempts with it, and an attempt
// of a message in flight meanwhile, recorded after that, would be kept with nothing left
// to prune it by. It runs after the deliveries' updates: on PostgreSQL their row locks
// order it after such a deletion, whose rows its own statement then no longer sees.
func insertAttempts(tx *gorm.DB, attempts [][]any) error {
	for c := range slices.Chunk(attempts, 500) {
		args := make([]any, 0, len(c)*9)
		for _, a := range c {
			args = append(args, a...)
		}
		if err := tx.Exec(`INSERT INTO delivery_attempts (tenant_id, delivery_id, number, endpoint_id, status, outcome, latency_ms, response, created_at)
			SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9 FROM `+
			values(len(c), "?", "?", "CAST(? AS integer)", "?", "CAST(? AS integer)", "?", "CAST(? AS integer)", "?", "CAST(? AS bigint)")+`
			WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = v.column1 AND d.id = v.column2)
			ON CONFLICT (tenant_id, delivery_id, number) DO NOTHING`, args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// values is a VALUES list of n rows of the given column casts, for joining in an UPDATE.
func values(n int, casts ...string) string {
	row := "(" + strings.Join(casts, ", ") + ")"
	return "(VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") + ") AS v"
}

func (e *Engine) recordDelivered(tx *gorm.DB, delivered []finished, ms int64) error {
	for c := range slices.Chunk(delivered, 500) {
		var dv, kv []any
		endpoints := map[[2]string]bool{}
		for _, f := range c {
			status, note := StatusDelivered, ""
			if f.r.Skipped != "" {
				status, note = StatusSkipped, excerpt(f.r.Skipped)
			}
			dv = append(dv, f.d.TenantID, f.d.ID, f.r.Status, status, note)
			kv = append(kv, f.d.TenantID, f.d.EndpointID, f.d.SubjectID, f.d.Purpose, f.d.Seq, f.d.Decision)
			endpoints[[2]string{f.d.TenantID, f.d.EndpointID}] = true
		}
		if err := tx.Exec(`UPDATE deliveries SET status = v.column4, lease_until = 0, last_status = v.column3, last_error = v.column5,
			delivered_at = ?, updated_at = ? FROM `+values(len(c), "?", "?", "CAST(? AS integer)", "?", "?")+`
			WHERE deliveries.tenant_id = v.column1 AND deliveries.id = v.column2`, append([]any{ms, ms}, dv...)...).Error; err != nil {
			return err
		}
		if err := e.lockKeys(tx, c); err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE delivery_keys SET delivered_seq = v.column5, delivered_decision = v.column6
			FROM `+values(len(c), "?", "?", "?", "?", "CAST(? AS bigint)", "?")+`
			WHERE delivery_keys.tenant_id = v.column1 AND delivery_keys.endpoint_id = v.column2 AND delivery_keys.subject_id = v.column3
			AND delivery_keys.purpose = v.column4 AND delivery_keys.delivered_seq < v.column5`, kv...).Error; err != nil {
			return err
		}
		// The endpoint answers: whatever waits for a retry goes now. Rows another
		// transaction holds are skipped (it is flushing or superseding them), so two
		// engines never wait for each other here.
		lock := ""
		if e.db.Dialect == sqldb.Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		for ep := range endpoints {
			if err := tx.Exec(`UPDATE deliveries SET next_attempt_at = ? WHERE tenant_id = ? AND id IN (SELECT id FROM deliveries
				WHERE tenant_id = ? AND endpoint_id = ? AND status = 'pending' AND attempts > 0 AND next_attempt_at > ?`+lock+`)`,
				ms, ep[0], ep[0], ep[1], ms).Error; err != nil {
				return err
			}
		}
	}
	return nil
}

// lockKeys locks the delivery keys of delivered messages in the order in which the fan-out
// writes keys (tenant, endpoint, subject, purpose, compared byte by byte as Go sorts them,
// whatever the database's collation), so that the two do not deadlock: the UPDATE … FROM
// VALUES that follows would lock them in whatever order its plan reads them.
func (e *Engine) lockKeys(tx *gorm.DB, c []finished) error {
	if e.db.Dialect != sqldb.Postgres {
		return nil // one writer
	}
	args := make([]any, 0, 4*len(c))
	for _, f := range c {
		args = append(args, f.d.TenantID, f.d.EndpointID, f.d.SubjectID, f.d.Purpose)
	}
	return tx.Exec(`SELECT 1 FROM delivery_keys WHERE (tenant_id, endpoint_id, subject_id, purpose) IN (`+
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", len(c)), ", ")+`)
		ORDER BY tenant_id COLLATE "C", endpoint_id COLLATE "C", subject_id COLLATE "C", purpose COLLATE "C" FOR UPDATE`,
		args...).Error
}

// recordErasures tells the ErasureRecorder of every acknowledged subject.erasure_approved.
func (e *Engine) recordErasures(tx *gorm.DB, delivered []finished, now time.Time) error {
	if e.opt.Erasures == nil {
		return nil
	}
	for _, f := range delivered {
		if f.d.EventType != TypeSubjectErasureApproved {
			continue
		}
		var p SubjectErasureApproved
		if err := json.Unmarshal([]byte(f.d.Payload), &p); err != nil {
			return err
		}
		if err := e.opt.Erasures.ErasureDelivered(tx, f.d.TenantID, f.d.SubjectID, p.RequestID, f.d.EndpointID, now); err != nil {
			return err
		}
	}
	return nil
}

// recordFailure decides what a failed attempt means for its delivery.
func (e *Engine) recordFailure(tx *gorm.DB, f finished, now time.Time) error {
	d, r, ms := f.d, f.r, now.UnixMilli()
	lastErr := f.r.Response
	if lastErr == "" && r.Err != nil {
		lastErr = r.Err.Error()
	}
	if len(lastErr) > 300 {
		lastErr = excerpt(lastErr[:300])
	}
	set := func(status string, next int64) error {
		return tx.Exec(`UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_until = 0, last_status = ?, last_error = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, status, next, r.Status, lastErr, ms, d.TenantID, d.ID).Error
	}
	switch f.outcome {
	case OutcomeGone:
		return set(StatusPending, ms) // sent when the endpoint is enabled again
	case OutcomeFinal:
		return set(StatusFailed, ms)
	}
	// A retry, unless a newer change of the key is waiting: then this one is superseded.
	var newer int64
	if err := tx.Raw(`SELECT COUNT(*) FROM deliveries WHERE tenant_id = ? AND endpoint_id = ? AND subject_id = ? AND purpose = ?
		AND status = 'pending' AND seq > ?`, d.TenantID, d.EndpointID, d.SubjectID, d.Purpose, d.Seq).Scan(&newer).Error; err != nil {
		return err
	}
	if newer > 0 {
		return set(StatusSuperseded, ms)
	}
	made := d.Attempts - d.ScheduleBase // attempts since it was made or replayed
	if made >= e.MaxAttempts() {
		return set(StatusDead, ms)
	}
	// A Retry-After lengthens the schedule's wait, up to its longest step, and never
	// shortens it: a receiver that keeps answering "again in a second" would otherwise use
	// up every attempt within seconds, and the message be dead instead of tried for days.
	wait := e.opt.Jitter(e.opt.Schedule[min(max(made-1, 0), len(e.opt.Schedule)-1)])
	wait = max(wait, min(r.RetryAfter, e.opt.Schedule[len(e.opt.Schedule)-1]))
	return set(StatusPending, now.Add(wait).UnixMilli())
}

// excerpt keeps at most 1 KiB of valid UTF-8 without NUL bytes.
func excerpt(s string) string {
	if len(s) > 1024 {
		s = s[:1024]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
}

// Backlog counts the deliveries waiting to be sent.
func (e *Engine) Backlog(ctx context.Context) (int64, error) {
	var n int64
	err := e.db.Read.WithContext(ctx).Raw("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").Scan(&n).Error
	return n, err
}
