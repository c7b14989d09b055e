package consent

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// writeTx is one batch transaction of the writer, whatever the database. The writer's
// logic (writer.go) is the same on both; how statements travel differs: on SQLite each is
// a local call, on PostgreSQL every insert of a batch goes in one pipelined round trip.
type writeTx interface {
	// lockHeads locks the chain heads of the subjects (by tenant) and returns them.
	lockHeads(ctx context.Context, byTenant map[string][]string) (map[string]head, error)
	// lockWithWrite locks the chain heads like lockHeads, but may do it in the same round
	// trip as write, without reading them.
	lockWithWrite(ctx context.Context, byTenant map[string][]string) error
	// statesOf reads the stored states of subjects of one tenant.
	statesOf(ctx context.Context, tenantID string, ids []string) (map[string]map[string]*Stored, error)
	// findSubject looks an identifier up inside the transaction.
	findSubject(ctx context.Context, tenantID string, id identity.Identifier, hashes [][]byte) (subjectID, pseudonym string, err error)
	// write inserts the batch; when idempotency keys were taken it returns them (a non-nil
	// map, empty when they are gone again) and the caller rolls back and writes again.
	write(ctx context.Context, b *batch) (taken map[string]bool, err error)
	exec(ctx context.Context, st sqldb.Statement) error
	commit(ctx context.Context) error
	// movedAway returns, for those of the subjects that were merged or erased, what became
	// of each.
	movedAway(ctx context.Context, tenantID string, ids []string) (map[string]fate, error)
	// strings runs a query of one text column and returns its values.
	strings(ctx context.Context, st sqldb.Statement) ([]string, error)
}

// fate is what became of a subject: merged into another, or erased.
type fate struct {
	mergedInto string
	erased     bool
}

// orderedTenants returns the tenants in order and each tenant's subject ids sorted: the
// fixed locking order.
func orderedTenants(byTenant map[string][]string) []string {
	tenants := make([]string, 0, len(byTenant))
	for t, ids := range byTenant {
		tenants = append(tenants, t)
		sort.Strings(ids)
	}
	sort.Strings(tenants)
	return tenants
}

func idempotencyKey(tenantID, route, key string) string {
	return tenantID + "\x00" + route + "\x00" + key
}

// takenKeys lists the idempotency rows that were not inserted.
func takenKeys(rows [][]any, inserted map[string]bool) map[string]bool {
	if len(inserted) == len(rows) {
		return nil
	}
	taken := map[string]bool{}
	for _, r := range rows {
		if k := idempotencyKey(r[0].(string), r[1].(string), r[2].(string)); !inserted[k] {
			taken[k] = true
		}
	}
	return taken
}

// tables lists what a batch inserts, in order, after the idempotency answers.
func (b *batch) tables() []struct {
	name    string
	columns []sqldb.Column
	rows    [][]any
	suffix  string
} {
	subjects := make([][]any, len(b.subjects))
	for i, s := range b.subjects {
		subjects[i] = s.Row()
	}
	idents := make([][]any, len(b.idents))
	for i, n := range b.idents {
		idents[i] = n.Row()
	}
	heads := make([][]any, len(b.headOrder))
	for i, id := range b.headOrder {
		heads[i] = b.heads[id]
	}
	states := make([][]any, len(b.stateOrder))
	for i, k := range b.stateOrder {
		r := b.states[k]
		states[i] = []any{r.tenantID, r.s.SubjectID, r.s.PurposeID, r.s.PurposeKey, r.s.State, r.s.Version,
			r.s.DecidedAt, r.s.ExpiresAt, r.s.EventSeq, r.s.Method}
	}
	return []struct {
		name    string
		columns []sqldb.Column
		rows    [][]any
		suffix  string
	}{
		{"subjects", identity.SubjectColumns, subjects, ""},
		{"identifiers", identity.IdentifierColumns, idents, ""},
		{"consent_events", eventColumns, b.eventRows, ""},
		{"chain_heads", headColumns, heads, headUpsert},
		{"consent_state", stateColumns, states, stateUpsert},
		{"domain_events", domainEventColumns, b.domain, ""},
		{"receipts", receiptColumns, b.receipts, ""},
		{"interaction_context", contextColumns, b.contexts, ""},
	}
}

// ---- database/sql (SQLite) ----

type sqlWriteTx struct {
	tx      *sql.Tx
	stmts   *sqldb.Statements
	forLock string
}

func (t *sqlWriteTx) lockSQL() string {
	return "SELECT subject_id, seq, hash FROM chain_heads WHERE tenant_id = ? AND subject_id IN (%s) ORDER BY subject_id" + t.forLock
}

func (t *sqlWriteTx) lockWithWrite(ctx context.Context, byTenant map[string][]string) error {
	_, err := t.lockHeads(ctx, byTenant)
	return err
}

func (t *sqlWriteTx) lockHeads(ctx context.Context, byTenant map[string][]string) (map[string]head, error) {
	heads := map[string]head{}
	for _, tenant := range orderedTenants(byTenant) {
		q, args := inQuery(t.lockSQL(), tenant, byTenant[tenant])
		err := t.stmts.Query(ctx, t.tx, q, args, func(r *sql.Rows) error {
			var id string
			var h head
			if err := r.Scan(&id, &h.seq, &h.hash); err != nil {
				return err
			}
			heads[id] = h
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lock chain heads: %w", err)
		}
	}
	return heads, nil
}

func (t *sqlWriteTx) statesOf(ctx context.Context, tenantID string, ids []string) (map[string]map[string]*Stored, error) {
	out := map[string]map[string]*Stored{}
	for len(ids) > 0 {
		part := ids[:min(len(ids), inShapes[len(inShapes)-1])]
		ids = ids[len(part):]
		q, args := inQuery(statesSQL, tenantID, part)
		if err := t.stmts.Query(ctx, t.tx, q, args, func(r *sql.Rows) error { return scanState(r, out) }); err != nil {
			return nil, fmt.Errorf("read consent state: %w", err)
		}
	}
	return out, nil
}

// scanState reads one consent_state row into out (by subject, then purpose). The stored
// expires_at is not read: reads derive the expiry from the purpose (expiresAt).
func scanState(r interface{ Scan(...any) error }, out map[string]map[string]*Stored) error {
	var s Stored
	if err := r.Scan(&s.SubjectID, &s.PurposeID, &s.PurposeKey, &s.State, &s.Version, &s.DecidedAt,
		&s.EventSeq, &s.Method); err != nil {
		return err
	}
	if out[s.SubjectID] == nil {
		out[s.SubjectID] = map[string]*Stored{}
	}
	out[s.SubjectID][s.PurposeID] = &s
	return nil
}

const findSubjectSQL = `SELECT s.id, s.pseudonym FROM identifiers i JOIN subjects s ON s.tenant_id = i.tenant_id AND s.id = i.subject_id
	WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN (%s) AND s.pseudonym IS NOT NULL`

func (t *sqlWriteTx) findSubject(ctx context.Context, tenantID string, id identity.Identifier, hashes [][]byte) (string, string, error) {
	args := []any{tenantID, id.Kind, id.Namespace}
	for _, h := range hashes {
		args = append(args, h)
	}
	var subjectID, pseudonym string
	err := t.stmts.Query(ctx, t.tx, fmt.Sprintf(findSubjectSQL, placeholders(len(hashes))), args, func(r *sql.Rows) error {
		return r.Scan(&subjectID, &pseudonym)
	})
	if err == nil && subjectID == "" {
		err = identity.NotFound("subject")
	}
	return subjectID, pseudonym, err
}

func (t *sqlWriteTx) write(ctx context.Context, b *batch) (map[string]bool, error) {
	if len(b.idem) > 0 {
		inserted := make(map[string]bool, len(b.idem))
		err := t.stmts.InsertColumns(ctx, t.tx, "idempotency_keys", idempotencyColumns, b.idem, idempotencyReturning,
			func(r *sql.Rows) error {
				var tenant, route, key string
				if err := r.Scan(&tenant, &route, &key); err != nil {
					return err
				}
				inserted[idempotencyKey(tenant, route, key)] = true
				return nil
			})
		if err != nil {
			return nil, err
		}
		if taken := takenKeys(b.idem, inserted); taken != nil {
			return taken, nil
		}
	}
	for _, tb := range b.tables() {
		if err := t.stmts.InsertColumns(ctx, t.tx, tb.name, tb.columns, tb.rows, tb.suffix, nil); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (t *sqlWriteTx) exec(ctx context.Context, st sqldb.Statement) error {
	_, err := t.stmts.Exec(ctx, t.tx, st.SQL, st.Args...)
	return err
}

func (t *sqlWriteTx) commit(context.Context) error { return t.tx.Commit() }

// ---- pgx (PostgreSQL) ----

// pgxWriteTx runs a batch transaction through pgx itself, on a connection of the pool, in
// as few round trips as the batch allows: BEGIN travels with the first statement and COMMIT
// with the inserts, and when the heads need not be read first (writer.go, optimistic) their
// locks go in the same pipeline too, so a batch usually takes one round trip where
// database/sql would take one per statement. Every round trip costs both processes a
// wake-up, which on a busy machine is CPU the writer's throughput is made of.
type pgxWriteTx struct {
	conn  *pgx.Conn
	begun bool                // BEGIN has been sent
	ended bool                // COMMIT went with the inserts, or the transaction was rolled back
	locks map[string][]string // heads to lock at the start of write's pipeline
}

func (t *pgxWriteTx) lockWithWrite(_ context.Context, byTenant map[string][]string) error {
	t.locks = byTenant
	return nil
}

// withPgx runs fn in a pgx transaction on a connection of the write pool. fn's error rolls
// back.
func (w *Writer) withPgx(ctx context.Context, fn func(writeTx) error) error {
	return sqldb.WithPgx(ctx, w.db.SQL(), func(c *pgx.Conn) error {
		t := &pgxWriteTx{conn: c}
		err := fn(t)
		if err != nil && t.begun && !t.ended {
			_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		if c.PgConn().TxStatus() != 'I' {
			// Still inside a transaction (the rollback failed too): the pool must not hand
			// this connection to anyone else.
			return errors.Join(err, driver.ErrBadConn)
		}
		return err
	})
}

// begin sends BEGIN on its own, for the statements of rare paths; the common ones queue it
// in their batch.
func (t *pgxWriteTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	t.begun = true
	_, err := t.conn.Exec(ctx, "BEGIN")
	return err
}

// queueBegin puts BEGIN first in pb when it has not been sent yet.
func (t *pgxWriteTx) queueBegin(pb *pgx.Batch) {
	if !t.begun {
		t.begun = true
		pb.Queue("BEGIN")
	}
}

// withSQL runs fn in a database/sql transaction on the write pool. fn's error rolls back.
func (w *Writer) withSQL(ctx context.Context, fn func(writeTx) error) error {
	tx, err := w.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&sqlWriteTx{tx: tx, stmts: w.stmts, forLock: w.db.ForUpdate()}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return nil
}

const (
	pgxLockSQL   = "SELECT subject_id, seq, hash FROM chain_heads WHERE tenant_id = $1 AND subject_id = ANY($2) ORDER BY subject_id FOR UPDATE"
	pgxStatesSQL = `SELECT subject_id, purpose_id, purpose_key, state, version, decided_at, event_seq, method
		FROM consent_state WHERE tenant_id = $1 AND subject_id = ANY($2)`
	pgxFindSubjectSQL = `SELECT s.id, s.pseudonym FROM identifiers i JOIN subjects s ON s.tenant_id = i.tenant_id AND s.id = i.subject_id
		WHERE i.tenant_id = $1 AND i.kind = $2 AND i.namespace = $3 AND i.value_hash = ANY($4) AND s.pseudonym IS NOT NULL`
)

func (t *pgxWriteTx) lockHeads(ctx context.Context, byTenant map[string][]string) (map[string]head, error) {
	heads := map[string]head{}
	tenants := orderedTenants(byTenant)
	if len(tenants) == 0 {
		return heads, nil
	}
	pb := &pgx.Batch{}
	t.queueBegin(pb)
	for _, tenant := range tenants {
		pb.Queue(pgxLockSQL, tenant, byTenant[tenant]).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				var h head
				if err := rows.Scan(&id, &h.seq, &h.hash); err != nil {
					return err
				}
				heads[id] = h
			}
			return rows.Err()
		})
	}
	if err := t.conn.SendBatch(ctx, pb).Close(); err != nil {
		return nil, fmt.Errorf("lock chain heads: %w", err)
	}
	return heads, nil
}

func (t *pgxWriteTx) statesOf(ctx context.Context, tenantID string, ids []string) (map[string]map[string]*Stored, error) {
	out := map[string]map[string]*Stored{}
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := t.conn.Query(ctx, pgxStatesSQL, tenantID, ids)
	if err != nil {
		return nil, fmt.Errorf("read consent state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scanState(rows, out); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

func (t *pgxWriteTx) findSubject(ctx context.Context, tenantID string, id identity.Identifier, hashes [][]byte) (string, string, error) {
	var subjectID, pseudonym string
	if err := t.begin(ctx); err != nil {
		return "", "", err
	}
	err := t.conn.QueryRow(ctx, pgxFindSubjectSQL, tenantID, id.Kind, id.Namespace, hashes).Scan(&subjectID, &pseudonym)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", identity.NotFound("subject")
	}
	return subjectID, pseudonym, err
}

// write sends the batch's inserts in one pipeline, and COMMIT with them unless statements
// are to follow (erasures). Idempotency keys are inserted without ON CONFLICT: a key that a
// concurrent request took fails the pipeline (and so skips the COMMIT), the transaction is
// rolled back, and the keys found taken are returned for the caller to write again without.
func (t *pgxWriteTx) write(ctx context.Context, b *batch) (map[string]bool, error) {
	pb := &pgx.Batch{}
	t.queueBegin(pb)
	for _, tenant := range orderedTenants(t.locks) {
		pb.Queue(pgxLockSQL, tenant, t.locks[tenant])
	}
	if len(b.idem) > 0 {
		args, err := sqldb.ColumnArrays(idempotencyColumns, b.idem)
		if err != nil {
			return nil, err
		}
		pb.Queue(sqldb.UnnestSQL("idempotency_keys", idempotencyColumns, ""), args...)
	}
	for _, tb := range b.tables() {
		if len(tb.rows) == 0 {
			continue
		}
		args, err := sqldb.ColumnArrays(tb.columns, tb.rows)
		if err != nil {
			return nil, fmt.Errorf("insert into %s: %w", tb.name, err)
		}
		pb.Queue(sqldb.UnnestSQL(tb.name, tb.columns, tb.suffix), args...)
	}
	commit := len(b.erasures) == 0 && len(b.also) == 0
	if commit {
		pb.Queue("COMMIT")
	}
	err := t.conn.SendBatch(ctx, pb).Close()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "idempotency_keys_pkey" {
		if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
			return nil, err
		}
		t.ended = true
		return t.storedKeys(ctx, b.idem)
	}
	if err != nil {
		return nil, err
	}
	t.ended = commit
	return nil, nil
}

// storedKeys returns which of the rows' idempotency keys are stored already.
func (t *pgxWriteTx) storedKeys(ctx context.Context, idem [][]any) (map[string]bool, error) {
	tenants, routes, keys := make([]string, len(idem)), make([]string, len(idem)), make([]string, len(idem))
	for i, r := range idem {
		tenants[i], routes[i], keys[i] = r[0].(string), r[1].(string), r[2].(string)
	}
	rows, err := t.conn.Query(ctx, `SELECT k.tenant_id, k.route, k.key FROM unnest($1::text[], $2::text[], $3::text[]) AS q(tenant_id, route, key)
		JOIN idempotency_keys k ON k.tenant_id = q.tenant_id AND k.route = q.route AND k.key = q.key`, tenants, routes, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	taken := map[string]bool{}
	for rows.Next() {
		var tenant, route, key string
		if err := rows.Scan(&tenant, &route, &key); err != nil {
			return nil, err
		}
		taken[idempotencyKey(tenant, route, key)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Empty (taken a moment ago, expired since) still means: roll back and write again.
	return taken, nil
}

func (t *pgxWriteTx) exec(ctx context.Context, st sqldb.Statement) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	_, err := t.conn.Exec(ctx, sqldb.Rebind(sqldb.Postgres, st.SQL), st.Args...)
	return err
}

func (t *pgxWriteTx) commit(ctx context.Context) error {
	if t.ended {
		return nil
	}
	t.ended = true
	_, err := t.conn.Exec(ctx, "COMMIT")
	return err
}

const movedSQL = `SELECT id, COALESCE(merged_into, ''), COALESCE(erased_at, 0) FROM subjects
	WHERE tenant_id = ? AND id IN (%s) AND (merged_into IS NOT NULL OR erased_at IS NOT NULL)`

func (t *sqlWriteTx) movedAway(ctx context.Context, tenantID string, ids []string) (map[string]fate, error) {
	out := map[string]fate{}
	q, args := inQuery(movedSQL, tenantID, ids)
	err := t.stmts.Query(ctx, t.tx, q, args, func(r *sql.Rows) error { return scanFate(r, out) })
	return out, err
}

func scanFate(r interface{ Scan(...any) error }, out map[string]fate) error {
	var id, into string
	var erasedAt int64
	if err := r.Scan(&id, &into, &erasedAt); err != nil {
		return err
	}
	out[id] = fate{mergedInto: into, erased: erasedAt != 0}
	return nil
}

func (t *pgxWriteTx) movedAway(ctx context.Context, tenantID string, ids []string) (map[string]fate, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := t.conn.Query(ctx, `SELECT id, COALESCE(merged_into, ''), COALESCE(erased_at, 0) FROM subjects
		WHERE tenant_id = $1 AND id = ANY($2) AND (merged_into IS NOT NULL OR erased_at IS NOT NULL)`, tenantID, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]fate{}
	for rows.Next() {
		if err := scanFate(rows, out); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

func (t *sqlWriteTx) strings(ctx context.Context, st sqldb.Statement) ([]string, error) {
	var out []string
	err := t.stmts.Query(ctx, t.tx, st.SQL, st.Args, func(r *sql.Rows) error {
		var v string
		if err := r.Scan(&v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func (t *pgxWriteTx) strings(ctx context.Context, st sqldb.Statement) ([]string, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := t.conn.Query(ctx, sqldb.Rebind(sqldb.Postgres, st.SQL), st.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
