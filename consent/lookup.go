package consent

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// On PostgreSQL the subject lookups of concurrent requests travel together: whatever
// lookups are waiting when a query can start go in one statement (an unnest of their
// identifier hashes joined to identifiers, chain heads and states), and each request gets
// its own rows back. It is group commit for reads: every lookup still reads the database,
// nothing is cached, but the per-statement cost (protocol, planning, a round trip each way)
// is paid once per group instead of once per request — which is most of the cost of a
// single-row lookup.

type lookupRequest struct {
	tenantID string
	id       identity.Identifier
	hashes   [][]byte
	done     chan struct{}
	out      *subjectState
	err      error
}

type lookupGroup struct {
	svc     *Service
	in      chan *lookupRequest
	stop    chan struct{}
	mu      sync.RWMutex // held for reading while queueing; close takes it to stop the queue
	closed  bool
	wg      sync.WaitGroup
	maxSize int
}

const groupLookupSQL = `SELECT q.n, i.subject_id, i.pseudonym, i.subject_kind, h.seq, h.hash, c.purpose_id, c.purpose_key,
	c.state, c.version, c.decided_at, c.event_seq, c.method
	FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::bytea[]) AS q(n, tenant_id, kind, namespace, value_hash)
	JOIN identifiers i ON i.tenant_id = q.tenant_id AND i.kind = q.kind AND i.namespace = q.namespace AND i.value_hash = q.value_hash
	LEFT JOIN chain_heads h ON h.tenant_id = i.tenant_id AND h.subject_id = i.subject_id
	LEFT JOIN consent_state c ON c.tenant_id = i.tenant_id AND c.subject_id = i.subject_id`

// startLookups starts the grouped lookups (PostgreSQL only).
func (s *Service) startLookups(workers int) *lookupGroup {
	g := &lookupGroup{svc: s, in: make(chan *lookupRequest, 1024), stop: make(chan struct{}), maxSize: 256}
	for range workers {
		g.wg.Add(1)
		go g.run()
	}
	return g
}

// close stops the workers once every lookup already queued has been answered.
func (g *lookupGroup) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// lookup queues one lookup and waits for its group's answer.
func (g *lookupGroup) lookup(ctx context.Context, tenantID string, id identity.Identifier, hashes [][]byte) (*subjectState, error) {
	r := &lookupRequest{tenantID: tenantID, id: id, hashes: hashes, done: make(chan struct{})}
	// Queue under the read lock: once close has the lock, nothing new enters the queue, so
	// the workers' last drain answers everything in it.
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case g.in <- r:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *lookupGroup) run() {
	defer g.wg.Done()
	for {
		var first *lookupRequest
		select {
		case first = <-g.in:
		case <-g.stop:
			for { // answer whatever is still queued
				select {
				case r := <-g.in:
					r.err = ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		group := []*lookupRequest{first}
	gather:
		for len(group) < g.maxSize {
			select {
			case r := <-g.in:
				group = append(group, r)
			default:
				break gather
			}
		}
		g.exec(group)
	}
}

func (g *lookupGroup) exec(group []*lookupRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ns []int64
	var tenants, kinds, namespaces []string
	var hashes [][]byte
	for n, r := range group {
		for _, h := range r.hashes {
			ns = append(ns, int64(n))
			tenants = append(tenants, r.tenantID)
			kinds = append(kinds, r.id.Kind)
			namespaces = append(namespaces, r.id.Namespace)
			hashes = append(hashes, h)
		}
	}
	err := g.query(ctx, func(q func(args ...any) (rowsScanner, error)) error {
		rows, err := q(ns, tenants, kinds, namespaces, hashes)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n int64
			var subjectID, pseudonym, kind string
			var headSeq *int64
			var headHash, purposeID, purposeKey, state, method *string
			var version *int
			var decided, seq *int64
			if err := rows.Scan(&n, &subjectID, &pseudonym, &kind, &headSeq, &headHash, &purposeID, &purposeKey, &state,
				&version, &decided, &seq, &method); err != nil {
				return err
			}
			r := group[n]
			if r.out == nil {
				r.out = &subjectState{id: subjectID, pseudonym: pseudonym, kind: kind, states: map[string]*Stored{}}
				if headSeq != nil && headHash != nil {
					r.out.head = head{seq: *headSeq, hash: *headHash}
				}
			}
			if purposeID == nil {
				continue
			}
			r.out.states[*purposeID] = &Stored{SubjectID: subjectID, PurposeID: *purposeID, PurposeKey: *purposeKey,
				State: *state, Version: *version, DecidedAt: *decided, EventSeq: *seq, Method: *method}
		}
		return rows.Err()
	})
	for _, r := range group {
		switch {
		case err != nil:
			r.out, r.err = nil, err
		case r.out == nil:
			r.err = identity.NotFound("subject")
		}
		close(r.done)
	}
}

type rowsScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// query runs fn with a query function on a pgx connection of the read pool.
func (g *lookupGroup) query(ctx context.Context, fn func(q func(args ...any) (rowsScanner, error)) error) error {
	return sqldb.WithPgx(ctx, g.svc.db.ReadSQL(), func(c *pgx.Conn) error {
		return fn(func(args ...any) (rowsScanner, error) {
			return c.Query(ctx, groupLookupSQL, args...)
		})
	})
}
