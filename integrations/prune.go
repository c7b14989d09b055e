package integrations

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Retention of what deliveries leave behind. A domain event is an outbox row: once it is
// fanned out (or when its tenant has nothing to deliver to, so that it never enters
// delivery_outbox) nothing reads it again, and its payload names a subject by pseudonym,
// which is personal data: it is deleted DomainEventGrace after it was written (its
// created_at), or at the first pass after its fan-out if that came later. The delivery
// log (messages and their attempts) is what admins read and replay: a message that is no
// longer pending (delivered, superseded, skipped, failed, dead) is deleted with its attempts
// once it has not changed for Options.LogRetention. Pending messages are never touched,
// however old.
const (
	// DomainEventGrace is how long a domain event stays after it was written (one that
	// waits for its fan-out stays until it is fanned out).
	DomainEventGrace = 24 * time.Hour
	// DefaultLogRetention is how long the delivery log keeps a finished message.
	DefaultLogRetention = 30 * 24 * time.Hour
	pruneEvery          = time.Hour
	pruneChunk          = 500
)

// Pruned counts what one Prune deleted.
type Pruned struct {
	DomainEvents int
	Messages     int
}

// Prune deletes, tenant by tenant and in short transactions of at most pruneChunk rows,
// the domain events and finished messages whose time has passed (see above). Ids are
// time-ordered (UUIDv7), so each tenant's candidates are a range at the start of its
// primary key; the stored times decide.
func (e *Engine) Prune(ctx context.Context) (Pruned, error) {
	var out Pruned
	var tenants []string
	if err := e.db.Read.WithContext(ctx).Raw("SELECT id FROM tenants ORDER BY id").Scan(&tenants).Error; err != nil {
		return out, err
	}
	now := e.now()
	eventsBefore, logBefore := now.Add(-DomainEventGrace), now.Add(-e.opt.LogRetention)
	for _, t := range tenants {
		n, err := e.pruneChunks(ctx, domainEventsPrune(t, eventsBefore))
		out.DomainEvents += n
		if err != nil {
			return out, err
		}
		n, err = e.pruneChunks(ctx, messagesPrune(t, logBefore))
		out.Messages += n
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// pruning is one kind of row to prune for one tenant: find reads the ids of the next chunk
// of candidates (after the last id of the previous one), del deletes those that still
// qualify and says how many it deleted.
type pruning struct {
	find func(db *gorm.DB, after string) ([]string, error)
	del  func(tx *gorm.DB, ids []string) (int, error)
}

// pruneChunks deletes chunk after chunk until the candidates run out. The candidates are
// read on the read pool and a write transaction is opened only for a chunk that has some:
// on SQLite the one write connection is the consent writer's, and most passes over most
// tenants find nothing. del asks the conditions again, so a candidate that changed since
// (a replayed message) stays; the walk goes on after the chunk's last id either way.
func (e *Engine) pruneChunks(ctx context.Context, p pruning) (int, error) {
	total, after := 0, ""
	for {
		ids, err := p.find(e.db.Read.WithContext(ctx), after)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		var n int
		err = e.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			n, err = p.del(tx, ids)
			return err
		})
		total += n
		if err != nil || len(ids) < pruneChunk {
			return total, err
		}
		after = ids[len(ids)-1]
	}
}

// idBefore is the smallest UUIDv7 of the millisecond t: every id made earlier sorts below it.
func idBefore(t time.Time) string {
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%08x-%04x-0000-0000-000000000000", ms>>16, ms&0xffff)
}

// domainEventsPrune finds the tenant's domain events written before before that wait for
// no fan-out.
func domainEventsPrune(tenantID string, before time.Time) pruning {
	const unneeded = `domain_events.created_at < ? AND NOT EXISTS (SELECT 1 FROM delivery_outbox o
		WHERE o.tenant_id = domain_events.tenant_id AND o.event_id = domain_events.id)`
	return pruning{
		find: func(db *gorm.DB, after string) ([]string, error) {
			var ids []string
			if err := db.Raw(`SELECT id FROM domain_events
				WHERE tenant_id = ? AND id > ? AND id < ? AND `+unneeded+`
				ORDER BY id LIMIT ?`, tenantID, after, idBefore(before), before.UnixMilli(), pruneChunk).Scan(&ids).Error; err != nil {
				return nil, fmt.Errorf("prune domain events: %w", err)
			}
			return ids, nil
		},
		del: func(tx *gorm.DB, ids []string) (int, error) {
			res := tx.Exec(`DELETE FROM domain_events WHERE tenant_id = ? AND id IN ? AND `+unneeded, tenantID, ids, before.UnixMilli())
			if res.Error != nil {
				return 0, fmt.Errorf("prune domain events: %w", res.Error)
			}
			return int(res.RowsAffected), nil
		},
	}
}

// messagesPrune finds the tenant's finished messages unchanged since before.
func messagesPrune(tenantID string, before time.Time) pruning {
	return pruning{
		find: func(db *gorm.DB, after string) ([]string, error) {
			var ids []string
			if err := db.Raw(`SELECT id FROM deliveries
				WHERE tenant_id = ? AND id > ? AND id < ? AND updated_at < ? AND status <> ?
				ORDER BY id LIMIT ?`, tenantID, after, messageIDPrefix+idBefore(before), before.UnixMilli(), StatusPending, pruneChunk).
				Scan(&ids).Error; err != nil {
				return nil, fmt.Errorf("prune the delivery log: %w", err)
			}
			return ids, nil
		},
		del: func(tx *gorm.DB, ids []string) (int, error) {
			// The status and time are asked again (a replay may have made one pending
			// meanwhile), and only the attempts of messages that are gone follow them.
			res := tx.Exec("DELETE FROM deliveries WHERE tenant_id = ? AND id IN ? AND updated_at < ? AND status <> ?",
				tenantID, ids, before.UnixMilli(), StatusPending)
			if res.Error != nil {
				return 0, fmt.Errorf("prune the delivery log: %w", res.Error)
			}
			if err := tx.Exec(`DELETE FROM delivery_attempts WHERE tenant_id = ? AND delivery_id IN ?
				AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = delivery_attempts.tenant_id AND d.id = delivery_attempts.delivery_id)`,
				tenantID, ids).Error; err != nil {
				return 0, fmt.Errorf("prune the delivery log: %w", err)
			}
			return int(res.RowsAffected), nil
		},
	}
}

// pruneLoop prunes every pruneEvery (and once at start) until ctx ends, under a database
// lock so that one instance does it at a time.
func (e *Engine) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		var p Pruned
		_, err := e.db.TryLock(ctx, "lupa.deliveries.prune", func(ctx context.Context) error {
			var err error
			p, err = e.Prune(ctx)
			return err
		})
		if err != nil && ctx.Err() == nil {
			e.opt.Log.Error("deliveries: prune", "err", err)
		} else if p.DomainEvents+p.Messages > 0 {
			e.opt.Log.Info("deliveries: pruned", "domain_events", p.DomainEvents, "messages", p.Messages)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
