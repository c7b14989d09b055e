package consent

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// StateView is a subject's current consent.
type StateView struct {
	Subject  string         `json:"subject"`
	DeviceID string         `json:"device_id,omitempty"`
	State    []PurposeState `json:"state"`
}

// subjectState is a subject with its chain head and stored states (by purpose id).
type subjectState struct {
	id, pseudonym, kind string
	head                head
	states              map[string]*Stored
}

// The subject's kind and pseudonym are copied into identifiers, so these joins stay small:
// a state read joins two tables, a write's lookup three (it needs the chain head too).
const (
	stateLookupSQL = `SELECT i.subject_id, i.pseudonym, i.subject_kind, 0, '', c.purpose_id, c.purpose_key, c.state,
	c.version, c.decided_at, c.event_seq, c.method
	FROM identifiers i
	LEFT JOIN consent_state c ON c.tenant_id = i.tenant_id AND c.subject_id = i.subject_id
	WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN (%s)`
	writeLookupSQL = `SELECT i.subject_id, i.pseudonym, i.subject_kind, h.seq, h.hash, c.purpose_id, c.purpose_key, c.state,
	c.version, c.decided_at, c.event_seq, c.method
	FROM identifiers i
	LEFT JOIN chain_heads h ON h.tenant_id = i.tenant_id AND h.subject_id = i.subject_id
	LEFT JOIN consent_state c ON c.tenant_id = i.tenant_id AND c.subject_id = i.subject_id
	WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN (%s)`
)

// lookup finds the subject an identifier names, with every stored state and, when withHead,
// its chain head, in one prepared query: the hot path of widgets, apps and recording.
func (s *Service) lookup(ctx context.Context, tenantID string, id identity.Identifier, withHead bool) (*subjectState, error) {
	hashes := s.ids.LookupHashes(tenantID, id)
	if s.lookups != nil {
		return s.lookups.lookup(ctx, tenantID, id, hashes)
	}
	n := len(hashes)
	for _, shape := range inShapes {
		if shape >= n {
			n = shape
			break
		}
	}
	args := make([]any, 0, 3+n)
	args = append(args, tenantID, id.Kind, id.Namespace)
	for i := 0; i < n; i++ {
		args = append(args, hashes[min(i, len(hashes)-1)])
	}
	var out *subjectState
	query := stateLookupSQL
	if withHead {
		query = writeLookupSQL
	}
	err := s.reads.Query(ctx, nil, fmt.Sprintf(query, placeholders(n)), args, func(rows *sql.Rows) error {
		var subjectID, kind, pseudonym string
		var headHash, purposeID, purposeKey, state, method sql.NullString
		var headSeq, version, decided, seq sql.NullInt64
		if err := rows.Scan(&subjectID, &pseudonym, &kind, &headSeq, &headHash, &purposeID, &purposeKey, &state,
			&version, &decided, &seq, &method); err != nil {
			return err
		}
		if out == nil {
			out = &subjectState{id: subjectID, pseudonym: pseudonym, kind: kind,
				head: head{seq: headSeq.Int64, hash: headHash.String}, states: map[string]*Stored{}}
		}
		if !purposeID.Valid {
			return nil
		}
		st := &Stored{SubjectID: subjectID, PurposeID: purposeID.String, PurposeKey: purposeKey.String, State: state.String,
			Version: int(version.Int64), DecidedAt: decided.Int64, EventSeq: seq.Int64, Method: method.String}
		out.states[st.PurposeID] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, identity.NotFound("subject")
	}
	return out, nil
}

// DeviceState returns a device's state for the device-level purposes of a property.
func (s *Service) DeviceState(ctx context.Context, p *identity.Property, deviceID string) (*StateView, error) {
	id := identity.Identifier{Kind: identity.IDDevice, Value: deviceID}
	if err := id.Validate("device_id"); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	subj, err := s.lookup(ctx, p.TenantID, id, false)
	if err != nil {
		return nil, err
	}
	now := s.now()
	v := &StateView{Subject: subj.pseudonym, DeviceID: deviceID, State: []PurposeState{}}
	for _, cp := range c.Asked(p, LevelDevice) {
		v.State = append(v.State, View(subj.states[cp.ID], cp.Purpose, now))
	}
	return v, nil
}

// SubjectState returns a subject's state for every purpose (in a property's scope, when a
// property is given).
func (s *Service) SubjectState(ctx context.Context, tenantID string, id identity.Identifier, p *identity.Property) (*StateView, error) {
	if err := id.Validate("identifier"); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	subj, err := s.lookup(ctx, tenantID, id, false)
	if err != nil {
		return nil, err
	}
	level := ""
	if subj.kind == identity.SubjectDevice {
		level = LevelDevice
	}
	now := s.now()
	v := &StateView{Subject: subj.pseudonym, State: []PurposeState{}}
	for _, cp := range c.Asked(p, level) {
		v.State = append(v.State, View(subj.states[cp.ID], cp.Purpose, now))
	}
	return v, nil
}

// HistoryFilter selects a subject's events.
type HistoryFilter struct {
	Purpose string
	Kind    string
	From    time.Time
	To      time.Time
	After   int64 // cursor: the seq of the last event of the previous page
	Limit   int
}

// History is a page of a subject's chain, oldest first.
type History struct {
	Subject string   `json:"subject"`
	Events  []*Event `json:"events"`
	Next    string   `json:"next,omitempty"`
}

// History returns a subject's events, oldest first, filtered and paged by sequence number.
func (s *Service) History(ctx context.Context, tenantID string, id identity.Identifier, f HistoryFilter) (*History, error) {
	if err := id.Validate("identifier"); err != nil {
		return nil, err
	}
	subj, err := s.ids.FindSubject(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	q := s.db.Read.WithContext(ctx).Table("consent_events").Select(eventSelect).
		Where("tenant_id = ? AND subject_id = ? AND seq > ?", tenantID, subj.ID, f.After)
	if f.Purpose != "" {
		q = q.Where("purpose_key = ?", f.Purpose)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if !f.From.IsZero() {
		q = q.Where("server_time >= ?", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		q = q.Where("server_time < ?", f.To.UnixMilli())
	}
	var events []*Event
	if err := q.Order("seq").Limit(f.Limit + 1).Scan(&events).Error; err != nil {
		return nil, err
	}
	h := &History{Subject: subj.Pseudonym, Events: events}
	if len(events) > f.Limit {
		h.Events = events[:f.Limit]
		h.Next = strconv.FormatInt(h.Events[f.Limit-1].Seq, 10)
	}
	if h.Events == nil {
		h.Events = []*Event{}
	}
	return h, nil
}

// CheckResult says whether a purpose may be used for one identifier, and why not.
type CheckResult struct {
	Identifier identity.Identifier `json:"identifier"`
	MayUse     bool                `json:"may_use"`
	State      string              `json:"state"`
	Reason     string              `json:"reason"`
}

// ReasonNotPublished is a check's reason for a purpose without a published version.
const ReasonNotPublished = "not_published"

// MaxCheck is the most identifiers one check may name.
const MaxCheck = 10_000

// maxIdentifierErrors is how many field errors about identifiers a refused check names
// before it only counts the bad identifiers left: 10,000 of them, all of a wrong kind,
// would otherwise answer with 10,000 messages.
const maxIdentifierErrors = 20

// ValidateCheck checks a check's purpose and its identifiers (normalised first), and names
// every field at fault in one error, up to maxIdentifierErrors of the identifiers' and then
// how many more identifiers are bad: a client would otherwise fix them one round trip at
// a time.
func ValidateCheck(purposeKey string, ids []identity.Identifier) error {
	var v identity.Validator
	v.Check(purposeKey != "", "purpose", "is required")
	v.Check(len(ids) >= 1 && len(ids) <= MaxCheck, "identifiers", "between 1 and 10000 identifiers")
	named, more := 0, 0
	for i, id := range ids {
		fields := identifierErrors(id, i)
		if len(fields) == 0 {
			continue
		}
		if more > 0 || named+len(fields) > maxIdentifierErrors {
			more++ // named ones stay the first ones: the client reads them in order
			continue
		}
		for _, f := range fields {
			v.Check(false, f.Field, f.Message)
		}
		named += len(fields)
	}
	if more > 0 {
		v.Check(false, "identifiers", fmt.Sprintf("%d more identifiers are not valid; the first %d errors are named", more, named))
	}
	return v.Err()
}

// identifierErrors is what is wrong with the i-th identifier of a check, field by field.
func identifierErrors(id identity.Identifier, i int) []identity.FieldError {
	var e *identity.Error
	if errors.As(id.Validate("identifiers["+strconv.Itoa(i)+"]"), &e) {
		return e.Fields
	}
	return nil
}

// Check answers, for many identifiers and one purpose, which may be used right now.
func (s *Service) Check(ctx context.Context, tenantID, purposeKey string, ids []identity.Identifier) ([]CheckResult, error) {
	if err := ValidateCheck(purposeKey, ids); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	cp, ok := c.Purpose(purposeKey)
	if !ok {
		return nil, identity.Unprocessable("purpose", "unknown purpose "+strconv.Quote(purposeKey))
	}
	// Hash every identifier, then ask once per kind and namespace for all of them.
	// owners[g][n] is the identifier the n-th hash of group g belongs to (after a key
	// rotation, one identifier has a hash under each key). The namespace is part of an
	// identifier: an idp identity is found under its issuer, an external id under its system.
	hashes := map[checkGroup][][]byte{}
	owners := map[checkGroup][]int{}
	bulk := s.ids.BulkLookup(tenantID)
	for i, id := range ids {
		g := checkGroup{kind: id.Kind, namespace: id.Namespace}
		for _, h := range bulk.Hashes(id) {
			hashes[g] = append(hashes[g], h)
			owners[g] = append(owners[g], i)
		}
	}
	found := make([]*Stored, len(ids))
	known := make([]bool, len(ids))
	for g, hs := range hashes {
		err := s.checkRows(ctx, tenantID, g, cp.ID, hs, func(n int, st *Stored) {
			i := owners[g][n]
			known[i] = true
			if st != nil {
				found[i] = st
			}
		})
		if err != nil {
			return nil, err
		}
	}
	now := s.now()
	out := make([]CheckResult, len(ids))
	for i, id := range ids {
		eff := Effective(found[i], cp.Purpose, now)
		r := CheckResult{Identifier: id, State: eff, MayUse: MayUse(cp.Purpose, eff), Reason: eff}
		switch {
		case cp.Latest == nil:
			// Nobody has been told of the purpose yet: nobody was asked for consent, and nobody
			// could object to a legitimate interest they were never told of (GDPR Art. 13, 21(4)).
			r.MayUse, r.Reason = false, ReasonNotPublished
		case !known[i] && cp.LegalBasis == BasisConsent:
			r.Reason = "unknown_subject"
		case cp.LegalBasis == BasisNecessary:
			r.Reason = "strictly_necessary"
		case cp.LegalBasis == BasisLegitimateInterest && r.MayUse:
			r.Reason = "legitimate_interest"
		}
		out[i] = r
	}
	return out, nil
}

// checkGroup is the kind and namespace a check asks about together.
type checkGroup struct{ kind, namespace string }

// checkRows calls fn(n, state) for each of hashes (identifiers of group g) that names a
// subject (the n-th), with the purpose's stored state or nil. fn is never called
// concurrently.
func (s *Service) checkRows(ctx context.Context, tenantID string, g checkGroup, purposeID string, hashes [][]byte, fn func(int, *Stored)) error {
	if s.db.Dialect == sqldb.Postgres {
		return s.checkRowsPostgres(ctx, tenantID, g, purposeID, hashes, fn)
	}
	const q = `SELECT i.value_hash, c.state, c.version, c.decided_at, c.event_seq
		FROM identifiers i
		LEFT JOIN consent_state c ON c.tenant_id = i.tenant_id AND c.subject_id = i.subject_id AND c.purpose_id = ?
		WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN (%s)`
	db, err := s.db.Read.DB()
	if err != nil {
		return err
	}
	pos := make(map[string][]int, len(hashes)) // a list may name an identifier twice
	for n, h := range hashes {
		pos[string(h)] = append(pos[string(h)], n)
	}
	const chunk = 5000
	for start := 0; start < len(hashes); start += chunk {
		part := hashes[start:min(start+chunk, len(hashes))]
		args := make([]any, 0, len(part)+4)
		args = append(args, purposeID, tenantID, g.kind, g.namespace)
		for _, h := range part {
			args = append(args, h)
		}
		rows, err := db.QueryContext(ctx, sprintf(q, placeholders(len(part))), args...)
		if err != nil {
			return err
		}
		err = scanCheckRows(rows, purposeID, func(hash []byte, st *Stored) {
			for _, n := range pos[string(hash)] {
				fn(n, st)
			}
			delete(pos, string(hash)) // answered; a duplicate in a later chunk finds nothing to do
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scanCheckRows reads (hash, state columns) rows; a subject without a stored state for the
// purpose comes as a nil *Stored.
func scanCheckRows(rows *sql.Rows, purposeID string, fn func([]byte, *Stored)) error {
	defer rows.Close()
	for rows.Next() {
		var hash []byte
		var c checkColumns
		if err := rows.Scan(append([]any{&hash}, c.targets()...)...); err != nil {
			return err
		}
		fn(hash, c.stored(purposeID))
	}
	return rows.Err()
}

// checkColumns are the state columns of a check's row, NULL when the subject has no state
// for the purpose. The pgtype values scan through database/sql and pgx alike, and through
// pgx without an allocation per column.
type checkColumns struct {
	state                 pgtype.Text
	version, decided, seq pgtype.Int8
}

func (c *checkColumns) targets() []any {
	return []any{&c.state, &c.version, &c.decided, &c.seq}
}

func (c *checkColumns) stored(purposeID string) *Stored {
	if !c.state.Valid {
		return nil
	}
	return &Stored{PurposeID: purposeID, State: c.state.String, Version: int(c.version.Int64), DecidedAt: c.decided.Int64,
		EventSeq: c.seq.Int64}
}

// checkPartsPostgres is how many connections share one bulk check: the index probes of a
// large check run in parallel, one part per connection (and core).
const checkPartsPostgres = 4

// checkRowsPostgres looks the hashes up in sorted parts, concurrently, on pgx directly. Each
// part joins its hashes (an unnest, in index order) to identifiers and the purpose's
// states: one index probe per identifier instead of a scan, and neighbouring probes touch
// the same pages. Rows name their hash by its place in the part, not by the hash itself.
func (s *Service) checkRowsPostgres(ctx context.Context, tenantID string, group checkGroup, purposeID string, hashes [][]byte, fn func(int, *Stored)) error {
	const q = `SELECT q.n::int4, c.state, c.version::int8, c.decided_at, c.event_seq
		FROM unnest($1::bytea[]) WITH ORDINALITY AS q(value_hash, n)
		JOIN identifiers i ON i.tenant_id = $2 AND i.kind = $3 AND i.namespace = $5 AND i.value_hash = q.value_hash
		LEFT JOIN consent_state c ON c.tenant_id = i.tenant_id AND c.subject_id = i.subject_id AND c.purpose_id = $4`
	order := make([]int, len(hashes))
	for n := range order {
		order[n] = n
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(hashes[a], hashes[b]) })
	parts := 1
	if len(order) >= 1000 {
		parts = checkPartsPostgres
	}
	size := (len(order) + parts - 1) / parts
	var mu sync.Mutex // the parts' results go to one place
	g, ctx := errgroup.WithContext(ctx)
	for start := 0; start < len(order); start += size {
		part := order[start:min(start+size, len(order))]
		g.Go(func() error {
			sorted := make([][]byte, len(part))
			for k, n := range part {
				sorted[k] = hashes[n]
			}
			type row struct {
				n  int
				st *Stored
			}
			var out []row
			err := sqldb.WithPgx(ctx, s.db.ReadSQL(), func(c *pgx.Conn) error {
				// FlatArray keeps pgx off its reflection path for the hashes.
				rows, err := c.Query(ctx, q, pgtype.FlatArray[[]byte](sorted), tenantID, group.kind, purposeID, group.namespace)
				if err != nil {
					return err
				}
				defer rows.Close()
				out = make([]row, 0, len(part))
				var n int32
				var cols checkColumns
				dest := append([]any{&n}, cols.targets()...)
				for rows.Next() {
					if err := rows.Scan(dest...); err != nil {
						return err
					}
					out = append(out, row{n: part[n-1], st: cols.stored(purposeID)})
				}
				return rows.Err()
			})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range out {
				fn(r.n, r.st)
			}
			return nil
		})
	}
	return g.Wait()
}
