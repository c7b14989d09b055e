package consent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Sweeps are the changes Lupa makes by itself. Each goes through the writer like any
// decision, so it is chained, signed into the next root and delivered downstream; and each
// applies only if the state is still the one the sweep read, so two instances sweeping at
// once cannot write anything twice.

const sweepBatch = 500

type sweepRow struct {
	TenantID  string
	SubjectID string
	PurposeID string
	EventSeq  int64
	Pseudonym *string
	State     string // read by the expiry sweep only
	DecidedAt int64  // read by the expiry sweep only
}

// submitSystem writes one system interaction per subject, a few at a time.
func (s *Service) submitSystem(ctx context.Context, ins []*interaction) (int, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	written := 0
	sem := make(chan struct{}, 32)
	for _, in := range ins {
		sem <- struct{}{}
		wg.Add(1)
		go func(in *interaction) {
			defer func() { <-sem; wg.Done() }()
			out, err := s.writer.Submit(ctx, in)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if out != nil {
				written += len(out.Events)
			}
		}(in)
	}
	wg.Wait()
	return written, firstErr
}

func (s *Service) systemInteraction(c *Catalog, tenantID, subjectID, pseudonym, eventType string) *interaction {
	return &interaction{tenantID: tenantID, id: identity.NewID(), catalog: c, subjectID: subjectID, pseudonym: pseudonym,
		channel: "system", method: MethodSystem, actor: string(identity.ActorSystem), domainEventType: eventType}
}

// groupSystem turns state rows into one interaction per subject with one change per row
// that keep (when not nil) keeps, given the row's purpose.
func (s *Service) groupSystem(ctx context.Context, rows []sweepRow, keep func(sweepRow, *Purpose) bool,
	kind, reason, eventType string) ([]*interaction, error) {
	bySubject := map[string]*interaction{}
	var out []*interaction
	for _, r := range rows {
		if r.Pseudonym == nil {
			continue
		}
		c, cp, err := s.purposeOf(ctx, r)
		if err != nil {
			return nil, err
		}
		if cp == nil || (keep != nil && !keep(r, cp.Purpose)) {
			continue
		}
		in := bySubject[r.SubjectID]
		if in == nil {
			in = s.systemInteraction(c, r.TenantID, r.SubjectID, *r.Pseudonym, eventType)
			bySubject[r.SubjectID] = in
			out = append(out, in)
		}
		in.system = append(in.system, systemChange{kind: kind, purpose: cp, expectSeq: r.EventSeq, reason: reason})
	}
	return out, nil
}

// SweepExpiry writes expiry events for grants (pending ones too) and refusals whose re-ask
// interval has passed, in batches, and returns how many it wrote.
func (s *Service) SweepExpiry(ctx context.Context) (int, error) {
	total := 0
	for range 1000 {
		var rows []sweepRow
		if err := s.db.Read.WithContext(ctx).Raw(`SELECT c.tenant_id, c.subject_id, c.purpose_id, c.event_seq, s.pseudonym,
			c.state, c.decided_at
			FROM consent_state c JOIN subjects s ON s.tenant_id = c.tenant_id AND s.id = c.subject_id
			WHERE c.expires_at <= ? AND c.state IN ('granted', 'denied', 'withdrawn', 'pending_confirmation')
			ORDER BY c.expires_at LIMIT ?`, s.now().UnixMilli(), sweepBatch).Scan(&rows).Error; err != nil {
			return total, err
		}
		ins, err := s.groupSystem(ctx, rows, expiredAt(s.now()), KindExpiry, "reask_interval", "consent.expired")
		if err != nil {
			return total, err
		}
		n, err := s.submitSystem(ctx, ins)
		total += n
		if err != nil || len(rows) < sweepBatch || n == 0 {
			return total, err
		}
	}
	return total, nil
}

// purposeOf returns the catalog of a swept row's tenant and the row's purpose in it (nil
// when the purpose is gone).
func (s *Service) purposeOf(ctx context.Context, r sweepRow) (*Catalog, *CatalogPurpose, error) {
	c, err := s.Catalog(ctx, r.TenantID)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := c.PurposeByID(r.PurposeID)
	return c, cp, nil
}

// expiredAt is the expiry sweep's keep: a row whose decision has expired at now under the
// purpose's current re-ask interval. The stored expires_at the rows were found by may still follow an interval
// that has since been lengthened, until the sweeper rewrites it (RewriteExpiries).
func expiredAt(now time.Time) func(sweepRow, *Purpose) bool {
	return func(r sweepRow, p *Purpose) bool {
		exp := expiresAt(&Stored{State: r.State, DecidedAt: r.DecidedAt}, p)
		return exp != nil && *exp <= now.UnixMilli()
	}
}

// reaskGrace is how long after a change of a purpose's re-ask interval the rewrite waits
// before its one pass: other instances record decisions with the old interval for a moment
// (their catalog cache, catalogTTL), and requests may be in flight. Reads need no rewrite
// (Effective applies the interval now), so waiting costs only the expiry sweep's delay.
const reaskGrace = 5 * time.Minute

// RewriteExpiries moves the stored expires_at of the states of every purpose whose re-ask
// interval changed (reask_applied differs from reask_months) to the interval now, and
// returns how many it moved. Reads (Effective) apply the new interval at once; the stored
// value is the expiry sweep's index, so it runs before that sweep.
func (s *Service) RewriteExpiries(ctx context.Context) (int, error) {
	// Every tenant's at once (purposes are few), from the primary, not the cached catalog: a
	// change made on another instance shows at once, and the compare-and-set at the end of
	// a pass needs the row as it is.
	var marked []purposeRow
	if err := s.db.Write.WithContext(ctx).Where("reask_applied <> reask_months").Order("tenant_id, id").
		Find(&marked).Error; err != nil {
		return 0, err
	}
	total := 0
	for _, r := range marked {
		n, err := s.rewriteExpiries(ctx, r.domain(), nil)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// expiryRow is a state as the rewrite reads it.
type expiryRow struct {
	SubjectID string
	State     string
	DecidedAt int64
	ExpiresAt *int64
	EventSeq  int64
}

// rewriteExpiries does nothing until reaskGrace after the purpose last changed, so that
// decisions recorded with the old interval meanwhile are in place; then it makes one pass
// over the purpose's states in batches, computing each expiry in Go (expiresAt: SQL month
// arithmetic differs between dialects), and clears the mark. Each update applies only if
// the row still holds the decision read: a newer one, recorded during the pass with the new
// interval, keeps its own expiry. between, for tests, runs after each read.
func (s *Service) rewriteExpiries(ctx context.Context, p *Purpose, between func()) (int, error) {
	if s.now().Sub(p.UpdatedAt) < reaskGrace {
		return 0, nil
	}
	moved, after := 0, ""
	for {
		var rows []expiryRow
		if err := s.db.Write.WithContext(ctx).Raw(`SELECT subject_id, state, decided_at, expires_at, event_seq
			FROM consent_state WHERE tenant_id = ? AND purpose_id = ? AND subject_id > ?
			ORDER BY subject_id LIMIT ?`, p.TenantID, p.ID, after, sweepBatch).Scan(&rows).Error; err != nil {
			return moved, err
		}
		if between != nil {
			between()
		}
		n, err := s.moveExpiries(ctx, p, rows)
		moved += n
		if err != nil {
			return moved, err
		}
		if len(rows) < sweepBatch {
			break
		}
		after = rows[len(rows)-1].SubjectID
	}
	// Compare-and-set: a change of the interval during the pass marks the purpose again.
	return moved, s.db.Write.WithContext(ctx).Exec(`UPDATE purposes SET reask_applied = ?
		WHERE tenant_id = ? AND id = ? AND reask_months = ? AND updated_at = ?`,
		p.ReaskMonths, p.TenantID, p.ID, p.ReaskMonths, p.UpdatedAt.UnixMilli()).Error
}

// moveExpiries updates the rows whose stored expiry is not the purpose's, in one
// transaction, and returns how many it moved.
func (s *Service) moveExpiries(ctx context.Context, p *Purpose, rows []expiryRow) (moved int, err error) {
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, r := range rows {
			want := expiresAt(&Stored{State: r.State, DecidedAt: r.DecidedAt}, p)
			if sameExpiry(want, r.ExpiresAt) {
				continue
			}
			res := tx.Exec(`UPDATE consent_state SET expires_at = ?
				WHERE tenant_id = ? AND subject_id = ? AND purpose_id = ? AND event_seq = ?`,
				want, p.TenantID, r.SubjectID, p.ID, r.EventSeq)
			if res.Error != nil {
				return res.Error
			}
			moved += int(res.RowsAffected)
		}
		return nil
	})
	return moved, err
}

func sameExpiry(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// outdatedGrace is how long after a material version's publication the outdated sweep keeps
// looking for grants of older versions: other instances accept the old version for a
// moment (their catalog cache), and requests may be in flight.
const outdatedGrace = 5 * time.Minute

// SweepOutdated writes outdated events for grants of versions that a material version has
// replaced, confirmed or still waiting for their double opt-in confirmation (whose link can
// no longer grant the replaced text). Refusals stay as they are. Each purpose is swept once
// per material version (after the grace period it is marked done), so the sweep needs no
// index of its own.
func (s *Service) SweepOutdated(ctx context.Context) (int, error) {
	tenants, err := s.ids.TenantIDs(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tenantID := range tenants {
		c, err := s.Catalog(ctx, tenantID)
		if err != nil {
			return total, err
		}
		for _, cp := range c.Purposes {
			if cp.LegalBasis != BasisConsent || cp.MaterialVersion <= 1 || cp.OutdatedSwept >= cp.MaterialVersion {
				continue
			}
			n, err := s.sweepOutdatedPurpose(ctx, tenantID, cp)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

func (s *Service) sweepOutdatedPurpose(ctx context.Context, tenantID string, cp *CatalogPurpose) (int, error) {
	total, after := 0, ""
	for {
		var rows []sweepRow
		if err := s.db.Read.WithContext(ctx).Raw(`SELECT c.tenant_id, c.subject_id, c.purpose_id, c.event_seq, s.pseudonym
			FROM consent_state c JOIN subjects s ON s.tenant_id = c.tenant_id AND s.id = c.subject_id
			WHERE c.tenant_id = ? AND c.subject_id > ? AND c.purpose_id = ? AND c.state IN ('granted', 'pending_confirmation')
			AND c.version < ?
			ORDER BY c.subject_id LIMIT ?`, tenantID, after, cp.ID, cp.MaterialVersion, sweepBatch).Scan(&rows).Error; err != nil {
			return total, err
		}
		ins, err := s.groupSystem(ctx, rows, nil, KindOutdated, "material_version:"+itoa(cp.MaterialVersion), "consent.outdated")
		if err != nil {
			return total, err
		}
		n, err := s.submitSystem(ctx, ins)
		total += n
		if err != nil {
			return total, err
		}
		if len(rows) < sweepBatch {
			break
		}
		after = rows[len(rows)-1].SubjectID
	}
	v := cp.Versions[cp.MaterialVersion]
	if v != nil && v.PublishedAt != nil && s.now().Sub(*v.PublishedAt) > outdatedGrace {
		if err := s.db.Write.WithContext(ctx).Exec("UPDATE purposes SET outdated_swept = ? WHERE tenant_id = ? AND id = ? AND outdated_swept < ?",
			cp.MaterialVersion, tenantID, cp.ID, cp.MaterialVersion).Error; err != nil {
			return total, err
		}
		s.invalidate(tenantID)
	}
	return total, nil
}

// SweepEvidence ends the evidence of subjects whose consents all ended more than the
// tenant's evidence period ago (default 3 years): an erasure event is chained, then the
// subject's key, identifiers and receipts are destroyed (erase.go). Nothing in force is
// touched, and neither is a subject with a live account. It returns how many subjects it
// erased.
func (s *Service) SweepEvidence(ctx context.Context) (int, error) {
	tenants, err := s.ids.TenantIDs(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tenantID := range tenants {
		c, err := s.Catalog(ctx, tenantID)
		if err != nil {
			return total, err
		}
		for range 10000 {
			ins, err := s.evidenceEnded(ctx, c)
			if err != nil {
				return total, err
			}
			n, err := s.submitSystem(ctx, ins)
			total += n // one erasure event per subject erased
			if err != nil {
				return total, err
			}
			if len(ins) < sweepBatch || n == 0 {
				break
			}
		}
	}
	return total, nil
}

// evidenceEnded selects up to sweepBatch subjects of the tenant whose evidence period has
// ended, and returns their erasures. A consent in force (a grant, until the sweeps end it)
// and an objection keep the evidence: the objection must be honoured while the processing
// goes on. A legitimate interest the person accepted does not: it needs no consent, proves
// nothing the tenant needs and never expires, so it would keep a subject's key and
// identifiers for ever; it counts as any other decision from when it was made. A subject
// with a state of a purpose whose expiries the sweeper has yet to rewrite waits for it: the
// stored expiry may be too early. Each erasure carries the chain head read in the same
// query: a decision made before the erasure is written stops it (eraseBasis).
func (s *Service) evidenceEnded(ctx context.Context, c *Catalog) ([]*interaction, error) {
	now := s.now()
	cutoff := now.AddDate(-c.Tenant.EvidenceYears, 0, 0).UnixMilli()
	var rows []struct {
		ID        string
		Pseudonym string
		Seq       int64
	}
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT s.id, s.pseudonym, h.seq FROM subjects s
		JOIN chain_heads h ON h.tenant_id = s.tenant_id AND h.subject_id = s.id
		WHERE s.tenant_id = ? AND s.secret IS NOT NULL AND s.merged_into IS NULL
		AND EXISTS (SELECT 1 FROM consent_state c WHERE c.tenant_id = s.tenant_id AND c.subject_id = s.id)
		AND NOT EXISTS (SELECT 1 FROM consent_state c WHERE c.tenant_id = s.tenant_id AND c.subject_id = s.id
			AND (c.state = 'objected' OR c.decided_at > ? OR (c.expires_at IS NOT NULL AND c.expires_at > ?)
				OR c.purpose_id IN (SELECT p.id FROM purposes p WHERE p.tenant_id = c.tenant_id
					AND (p.reask_applied <> p.reask_months OR (c.state = 'granted' AND p.legal_basis = 'consent')))))
		AND NOT `+hasLiveAccount+`
		LIMIT ?`, c.Tenant.ID, cutoff, now.UnixMilli(), sweepBatch).Scan(&rows).Error; err != nil {
		return nil, err
	}
	ins := make([]*interaction, 0, len(rows))
	for _, r := range rows {
		in := s.systemInteraction(c, c.Tenant.ID, r.ID, r.Pseudonym, "subject.erased")
		in.erase, in.eraseIf = "evidence_period_ended", &eraseBasis{subjectID: r.ID, seq: r.Seq}
		ins = append(ins, in)
	}
	return ins, nil
}

// Housekeeping deletes client context past its 90 days and idempotency keys past their day.
func (s *Service) Housekeeping(ctx context.Context) (int64, error) {
	now := s.now().UnixMilli()
	var total int64
	for _, q := range []string{
		`DELETE FROM interaction_context WHERE (tenant_id, interaction_id) IN
			(SELECT tenant_id, interaction_id FROM interaction_context WHERE expires_at < ? LIMIT 1000)`,
		`DELETE FROM idempotency_keys WHERE (tenant_id, route, key) IN
			(SELECT tenant_id, route, key FROM idempotency_keys WHERE expires_at < ? LIMIT 1000)`,
	} {
		for range 10000 {
			res := s.db.Write.WithContext(ctx).Exec(q, now)
			if res.Error != nil {
				return total, res.Error
			}
			total += res.RowsAffected
			if res.RowsAffected < 1000 {
				break
			}
		}
	}
	return total, nil
}

// SignRoots signs a root for every tenant whose chains changed.
func (s *Service) SignRoots(ctx context.Context) (int, error) {
	tenants, err := s.ids.TenantIDs(ctx)
	if err != nil {
		return 0, err
	}
	made := 0
	for _, id := range tenants {
		_, ok, err := s.SignRoot(ctx, id, "") // routine: not an admin action, not audited
		if err != nil {
			return made, err
		}
		if ok {
			made++
		}
	}
	return made, nil
}

// Sweeper runs the sweeps and root signing periodically.
type Sweeper struct {
	svc          *Service
	log          *slog.Logger
	interval     time.Duration
	rootInterval time.Duration
	wake         chan struct{}
	lastEvidence time.Time
}

// evidenceInterval spaces the end-of-evidence sweep: it looks at every subject, and evidence
// periods are measured in years.
const evidenceInterval = time.Hour

// NewSweeper returns a sweeper; a material version published on this instance wakes it.
func (s *Service) NewSweeper(log *slog.Logger, interval, rootInterval time.Duration) *Sweeper {
	sw := &Sweeper{svc: s, log: log, interval: interval, rootInterval: rootInterval, wake: make(chan struct{}, 1)}
	s.onMaterial = func() {
		select {
		case sw.wake <- struct{}{}:
		default:
		}
	}
	return sw
}

// Run sweeps until ctx ends.
func (sw *Sweeper) Run(ctx context.Context) {
	tick := time.NewTicker(sw.interval)
	defer tick.Stop()
	roots := time.NewTicker(sw.rootInterval)
	defer roots.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sw.sweep(ctx)
		case <-sw.wake:
			sw.sweep(ctx)
		case <-roots.C:
			if n, err := sw.svc.SignRoots(ctx); err != nil {
				sw.log.Error("sign ledger roots", "err", err)
			} else if n > 0 {
				sw.log.Info("signed ledger roots", "tenants", n)
			}
		}
	}
}

func (sw *Sweeper) sweep(ctx context.Context) {
	_, err := sw.svc.db.TryLock(ctx, "lupa-sweep", func(ctx context.Context) error {
		// Each step counts something else; count names what, as the log's key.
		type step struct {
			name, count string
			fn          func(context.Context) (int, error)
		}
		steps := []step{{"reask", "expiries_moved", sw.svc.RewriteExpiries}, {"expiry", "events", sw.svc.SweepExpiry},
			{"outdated", "events", sw.svc.SweepOutdated}}
		if now := sw.svc.now(); now.Sub(sw.lastEvidence) >= evidenceInterval {
			sw.lastEvidence = now
			steps = append(steps, step{"evidence", "subjects_erased", sw.svc.SweepEvidence})
		}
		for _, step := range steps {
			n, err := step.fn(ctx)
			if err != nil {
				sw.log.Error("sweep failed", "sweep", step.name, "err", err)
				continue
			}
			if n > 0 {
				sw.log.Info("sweep done", "sweep", step.name, step.count, n)
			}
		}
		if _, err := sw.svc.Housekeeping(ctx); err != nil {
			sw.log.Error("housekeeping failed", "err", err)
		}
		return nil
	})
	if err != nil {
		sw.log.Error("sweep lock", "err", err)
	}
}
