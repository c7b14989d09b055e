package consent

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// RootType is the JWS "typ" of a signed ledger root.
const RootType = "lupa-ledger-root+jwt"

// Root is a signed Merkle root over every chain head of a tenant at one moment. Deleting a
// subject's newest events, or a whole chain, is found by comparing the chains with the
// latest root's leaves.
type Root struct {
	TenantID  string    `json:"tenant"`
	Number    int64     `json:"number"`
	CreatedAt time.Time `json:"created_at"`
	HeadCount int64     `json:"head_count"`
	Root      string    `json:"root"`
	PrevRoot  string    `json:"prev_root"`
	KeyID     string    `json:"kid"`
	JWS       string    `json:"jws"`
}

type rootPayload struct {
	Tenant    string `json:"tenant"`
	Number    int64  `json:"number"`
	CreatedAt int64  `json:"created_at"`
	HeadCount int64  `json:"head_count"`
	Root      string `json:"root"`
	PrevRoot  string `json:"prev_root"`
	Tree      string `json:"tree"`
}

const treeName = "rfc6962-sha256; leaf = 0x00 || subject_id || 0x00 || seq || 0x00 || hash"

type rootRow struct {
	TenantID  string
	Number    int64
	CreatedAt int64
	HeadCount int64
	Root      string
	PrevRoot  string
	Kid       string
	JWS       string `gorm:"column:jws"`
}

func (r *rootRow) domain() *Root {
	return &Root{TenantID: r.TenantID, Number: r.Number, CreatedAt: msTime(r.CreatedAt), HeadCount: r.HeadCount,
		Root: r.Root, PrevRoot: r.PrevRoot, KeyID: r.Kid, JWS: r.JWS}
}

// LatestRoot returns the tenant's newest signed root, or ENotFound.
func (s *Service) LatestRoot(ctx context.Context, tenantID string) (*Root, error) {
	var rows []rootRow
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT tenant_id, number, created_at, head_count, root, prev_root, kid, jws
		FROM ledger_roots WHERE tenant_id = ? ORDER BY number DESC LIMIT 1`, tenantID).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("ledger root")
	}
	return rows[0].domain(), nil
}

// SignRoot signs a new root over the tenant's chain heads, unless nothing changed since the
// last one. It returns the newest root and whether it made one. actor is who asked for it
// (an admin): a new root is written to the audit log in the transaction that stores it.
// The periodic signing passes "": those roots are Lupa's routine, recorded by ledger_roots
// itself, and an audit row every few minutes would bury the admins' actions.
func (s *Service) SignRoot(ctx context.Context, tenantID string, actor identity.Actor) (*Root, bool, error) {
	var root *Root
	var made bool
	ran, err := s.db.TryLock(ctx, "lupa-ledger-root:"+tenantID, func(ctx context.Context) error {
		var err error
		root, made, err = s.signRoot(ctx, tenantID, actor)
		return err
	})
	if err == nil && !ran {
		root, err = s.LatestRoot(ctx, tenantID)
		if identity.IsCode(err, identity.ENotFound) {
			err = identity.Errorf(identity.EConflict, "another instance is signing the first root; retry")
		}
	}
	return root, made, err
}

type headRow struct {
	SubjectID string
	Seq       int64
	Hash      string
	RootedSeq int64
}

func (s *Service) signRoot(ctx context.Context, tenantID string, actor identity.Actor) (*Root, bool, error) {
	prev, err := s.LatestRoot(ctx, tenantID)
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return nil, false, err
	}
	// One statement reads every head: one consistent snapshot, streamed in subject order.
	rows, err := s.db.Read.WithContext(ctx).Raw(
		"SELECT subject_id, seq, hash, rooted_seq FROM chain_heads WHERE tenant_id = ? ORDER BY subject_id", tenantID).Rows()
	if err != nil {
		return nil, false, err
	}
	var m merkleBuilder
	var delta [][]any
	var h headRow
	for rows.Next() {
		if err := rows.Scan(&h.SubjectID, &h.Seq, &h.Hash, &h.RootedSeq); err != nil {
			rows.Close()
			return nil, false, err
		}
		m.add(LeafHash(h.SubjectID, h.Seq, h.Hash))
		if h.Seq != h.RootedSeq {
			delta = append(delta, []any{tenantID, int64(0), h.SubjectID, h.Seq, h.Hash})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if prev != nil && len(delta) == 0 {
		return prev, false, nil
	}
	sum := m.root()
	r := &Root{TenantID: tenantID, Number: 1, CreatedAt: s.now(), HeadCount: m.n, Root: hex.EncodeToString(sum[:])}
	if prev != nil {
		r.Number, r.PrevRoot = prev.Number+1, prev.Root
	}
	payload, _ := json.Marshal(rootPayload{Tenant: tenantID, Number: r.Number, CreatedAt: r.CreatedAt.UnixMilli(),
		HeadCount: r.HeadCount, Root: r.Root, PrevRoot: r.PrevRoot, Tree: treeName})
	// The kid comes from the signature: a reload may change the signing key at any moment.
	if r.KeyID, r.JWS, err = s.keys.Sign(RootType, payload); err != nil {
		return nil, false, err
	}
	for _, d := range delta {
		d[1] = r.Number
	}
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO ledger_roots (tenant_id, number, created_at, head_count, root, prev_root, kid, jws)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tenantID, r.Number, r.CreatedAt.UnixMilli(), r.HeadCount, r.Root,
			r.PrevRoot, r.KeyID, r.JWS).Error; err != nil {
			return err
		}
		if err := sqldb.BulkInsert(tx, "ledger_root_leaves", []string{"tenant_id", "root_number", "subject_id", "seq", "hash"}, delta, ""); err != nil {
			return err
		}
		if actor == "" {
			return nil
		}
		return identity.WriteAudit(tx, tenantID, actor, "ledger_root.sign", "ledger_root", strconv.FormatInt(r.Number, 10),
			nil, r, r.CreatedAt)
	})
	if err != nil {
		return nil, false, fmt.Errorf("store ledger root: %w", err)
	}
	// rooted_seq only tells the next root which heads changed; a head that moved since the
	// snapshot keeps seq <> rooted_seq and is picked up next time.
	for start := 0; start < len(delta); start += 500 {
		part := delta[start:min(start+500, len(delta))]
		err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, d := range part {
				if err := tx.Exec("UPDATE chain_heads SET rooted_seq = ? WHERE tenant_id = ? AND subject_id = ? AND rooted_seq < ?",
					d[3], tenantID, d[2], d[3]).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
	}
	return r, true, nil
}

// Problem is one thing verification found wrong.
type Problem struct {
	Kind      string `json:"kind"`
	SubjectID string `json:"subject_id,omitempty"`
	Seq       int64  `json:"seq,omitempty"`
	EventID   string `json:"event_id,omitempty"`
	Root      int64  `json:"root,omitempty"`
	Message   string `json:"message"`
}

// VerifyReport is the result of checking a tenant's ledger.
type VerifyReport struct {
	Tenant   string    `json:"tenant"`
	OK       bool      `json:"ok"`
	Chains   int64     `json:"chains"`
	Events   int64     `json:"events"`
	Roots    int64     `json:"roots"`
	Problems []Problem `json:"problems"`
	// FirstBroken is the first broken link found, in subject and sequence order.
	FirstBroken *Problem `json:"first_broken,omitempty"`
}

const maxProblems = 100

func (r *VerifyReport) add(p Problem) {
	if r.FirstBroken == nil {
		r.FirstBroken = &p
	}
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
	r.OK = false
}

// Verify checks every chain of the tenant (sequence, links, recomputed hashes, heads) and
// every signed root (signatures, their own chain, no root missing, every root rebuilt from
// its leaves, and every leaf any root signed still in the ledger with its hash).
//
// It reads one snapshot of the database (a read-only transaction, REPEATABLE READ on
// PostgreSQL): Lupa keeps writing while it runs, and events, heads and roots read at
// different moments would disagree without anything being wrong.
func (s *Service) Verify(ctx context.Context, tenantID string) (*VerifyReport, error) {
	rep := &VerifyReport{Tenant: tenantID, OK: true, Problems: []Problem{}}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Dialect == sqldb.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	err := s.db.Read.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ends, err := verifyChains(tx, tenantID, rep)
		if err != nil {
			return err
		}
		return s.verifyRoots(ctx, tx, tenantID, ends, rep)
	}, opts)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// chainEnds is what the chain check hands the root check: each chain's last event, and the
// seq that each chain head says the newest root holding the chain signed (rooted_seq, when
// not 0).
type chainEnds struct {
	last   map[string]head
	rooted map[string]int64
}

// verifyChains streams the events in chain order and returns each chain's last (seq, hash).
func verifyChains(tx *gorm.DB, tenantID string, rep *VerifyReport) (*chainEnds, error) {
	rows, err := tx.Table("consent_events").Select(eventSelect).
		Where("tenant_id = ?", tenantID).Order("subject_id, seq").Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	last := map[string]head{}
	var cur string
	var prev head
	broken := false
	for rows.Next() {
		e, wrongType, err := scanLooseEvent(rows)
		if err != nil {
			return nil, err
		}
		rep.Events++
		if e.SubjectID != cur {
			if cur != "" {
				last[cur] = prev
			}
			cur, prev, broken = e.SubjectID, head{}, false
			rep.Chains++
		}
		if broken {
			prev = head{seq: e.Seq, hash: e.Hash}
			continue
		}
		switch {
		case wrongType == "seq":
			rep.add(Problem{Kind: "sequence_gap", SubjectID: e.SubjectID, Seq: prev.seq + 1, EventID: e.ID,
				Message: fmt.Sprintf("expected seq %d, found a seq that is not a number: the event was changed", prev.seq+1)})
			broken = true
		case e.Seq != prev.seq+1:
			rep.add(Problem{Kind: "sequence_gap", SubjectID: e.SubjectID, Seq: e.Seq, EventID: e.ID,
				Message: fmt.Sprintf("expected seq %d, found %d: events are missing or reordered", prev.seq+1, e.Seq)})
			broken = true
		case wrongType != "":
			rep.add(Problem{Kind: "hash_mismatch", SubjectID: e.SubjectID, Seq: e.Seq, EventID: e.ID,
				Message: fmt.Sprintf("the event's %s holds a value no event can have (another type, or a number beyond ±(2^53−1)): it was changed", wrongType)})
			broken = true
		case e.PrevHash != prev.hash:
			rep.add(Problem{Kind: "broken_link", SubjectID: e.SubjectID, Seq: e.Seq, EventID: e.ID,
				Message: "prev does not match the hash of the event before it"})
			broken = true
		case e.ComputeHash() != e.Hash:
			rep.add(Problem{Kind: "hash_mismatch", SubjectID: e.SubjectID, Seq: e.Seq, EventID: e.ID,
				Message: "the event's content does not match its hash: it was changed"})
			broken = true
		}
		prev = head{seq: e.Seq, hash: e.Hash}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if cur != "" {
		last[cur] = prev
	}
	// Every chain head must be the last event of its chain.
	var hs []headRow
	if err := tx.Raw("SELECT subject_id, seq, hash, rooted_seq FROM chain_heads WHERE tenant_id = ? ORDER BY subject_id",
		tenantID).Scan(&hs).Error; err != nil {
		return nil, err
	}
	ends := &chainEnds{last: last, rooted: map[string]int64{}}
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		seen[h.SubjectID] = true
		if h.RootedSeq != 0 {
			ends.rooted[h.SubjectID] = h.RootedSeq
		}
		l, ok := last[h.SubjectID]
		switch {
		case !ok:
			rep.add(Problem{Kind: "chain_missing", SubjectID: h.SubjectID, Seq: h.Seq,
				Message: "the chain head names events that are not in the ledger"})
		case l.seq != h.Seq || l.hash != h.Hash:
			rep.add(Problem{Kind: "head_mismatch", SubjectID: h.SubjectID, Seq: l.seq,
				Message: fmt.Sprintf("the chain ends at seq %d but its head says seq %d: newest events are missing", l.seq, h.Seq)})
		}
	}
	var headless []string
	for subj := range last {
		if !seen[subj] {
			headless = append(headless, subj)
		}
	}
	slices.Sort(headless) // in subject order, as everything else: the first broken link is always the same
	for _, subj := range headless {
		rep.add(Problem{Kind: "head_missing", SubjectID: subj, Seq: last[subj].seq,
			Message: fmt.Sprintf("the chain (to seq %d) has no head", last[subj].seq)})
	}
	return ends, nil
}

// scanLooseEvent reads an event row without trusting its column types. Someone who edits
// the ledger behind Lupa's back can store text in an integer column (SQLite keeps what it is
// given; a PostgreSQL owner can retype the column), and the verifier must name that row
// rather than fail. It returns the first column whose value cannot be what was hashed ("" when
// none). The columns are eventSelect's.
func scanLooseEvent(rows *sql.Rows) (Event, string, error) {
	var e Event
	dst := eventPtrs(&e)
	raw := make([]any, len(dst))
	ptrs := make([]any, len(dst))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return e, "", err
	}
	columns, err := rows.Columns()
	if err != nil {
		return e, "", err
	}
	wrong := ""
	for i, v := range raw {
		if !setLoose(dst[i], v) && wrong == "" {
			wrong = columns[i]
		}
	}
	return e, wrong, nil
}

// maxExact is the largest integer RFC 8785 writes as its digits: it serialises numbers as
// ECMAScript does, as IEEE 754 doubles. Every number of an event is far inside (times are
// milliseconds of four-digit years); one beyond was written behind Lupa's back, and an
// independent verifier would hash it differently from Lupa's integer encoder.
const maxExact = 1<<53 - 1

// setLoose stores a driver value in dst when it means a value of dst's type: text (or its
// bytes) for a string; an integer within ±maxExact, or one written as canonical decimal text
// (a column retyped to text keeps its numbers so), for a number. NULL means neither: Lupa
// never writes it.
func setLoose(dst, v any) bool {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		if d, ok := dst.(*string); ok {
			*d = x
			return true
		}
		p, err := strconv.ParseInt(x, 10, 64)
		if err != nil || strconv.FormatInt(p, 10) != x {
			return false
		}
		n = p
	case []byte:
		return setLoose(dst, string(x))
	default:
		return false
	}
	switch d := dst.(type) {
	case *int64:
		*d = n
		return -maxExact <= n && n <= maxExact
	case *int:
		*d = int(n)
		return int64(*d) == n && -maxExact <= n && n <= maxExact
	}
	return false
}

func (s *Service) verifyRoots(ctx context.Context, tx *gorm.DB, tenantID string, ends *chainEnds, rep *VerifyReport) error {
	var roots []rootRow
	if err := tx.Raw(`SELECT tenant_id, number, created_at, head_count, root, prev_root, kid, jws
		FROM ledger_roots WHERE tenant_id = ? ORDER BY number`, tenantID).Scan(&roots).Error; err != nil {
		return err
	}
	rep.Roots = int64(len(roots))
	// signed[i] is roots[i]'s verified payload; nil when it does not verify (reported).
	signed := make([]*rootPayload, len(roots))
	next, prevRoot, judged := int64(1), "", true // judged: the root before verified, so prev_root can be judged
	for i := range roots {
		r := &roots[i]
		if r.Number > next {
			msg := fmt.Sprintf("signed root %d is missing", next)
			if r.Number > next+1 {
				msg = fmt.Sprintf("signed roots %d to %d are missing", next, r.Number-1)
			}
			rep.add(Problem{Kind: "root_missing", Root: next, Message: msg})
			judged = false
		}
		next = max(next, r.Number+1)
		p, err := s.verifyRootJWS(ctx, tenantID, r)
		if err != nil {
			rep.add(Problem{Kind: "root_signature", Root: r.Number,
				Message: "the signed root does not verify or does not match its row: " + err.Error()})
			judged = false
			continue
		}
		signed[i] = p
		if judged && r.PrevRoot != prevRoot {
			rep.add(Problem{Kind: "root_chain", Root: r.Number, Message: "the root does not name the root before it"})
		}
		prevRoot, judged = r.Root, true
	}
	// Leaves are written in the transaction of their root: a leaf of a root that is not
	// there means a signed root was deleted.
	var orphan []int64
	if err := tx.Raw(`SELECT root_number FROM ledger_root_leaves WHERE tenant_id = ? AND (root_number > ? OR root_number < 1)
		ORDER BY root_number LIMIT 1`, tenantID, next-1).Scan(&orphan).Error; err != nil {
		return err
	}
	if len(orphan) > 0 {
		rep.add(Problem{Kind: "root_missing", Root: orphan[0],
			Message: fmt.Sprintf("signed root %d is missing, but its leaves are stored", orphan[0])})
	}
	if len(roots) > 0 {
		reported, err := verifyLatestLeaves(tx, tenantID, roots[len(roots)-1].Number, ends.last, rep)
		if err != nil {
			return err
		}
		if err := verifyEarlierLeaves(tx, tenantID, ends.last, reported, rep); err != nil {
			return err
		}
	}
	leaves, err := rebuildRoots(tx, tenantID, roots, signed, rep)
	if err != nil {
		return err
	}
	verifyRooted(ends, leaves, rep)
	return nil
}

// verifyRootJWS checks a root's signature and that its row says what the signature says.
func (s *Service) verifyRootJWS(ctx context.Context, tenantID string, r *rootRow) (*rootPayload, error) {
	payload, kid, err := s.keys.Verify(ctx, r.JWS, RootType)
	if err != nil {
		return nil, err
	}
	var p rootPayload
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || dec.More() {
		return nil, errors.New("its payload is not a signed root")
	}
	switch {
	case p.Tenant != tenantID:
		return nil, errors.New("it is another tenant's root")
	case p.Number != r.Number || p.Root != r.Root || p.HeadCount != r.HeadCount || p.PrevRoot != r.PrevRoot ||
		p.CreatedAt != r.CreatedAt || kid != r.Kid || p.Tree != treeName:
		return nil, errors.New("its row says otherwise")
	}
	return &p, nil
}

// verifyEarlierLeaves checks the leaves of every earlier root too: a chain only grows, so
// every (seq, hash) any root ever signed must still be in the ledger. Without this, deleting
// a chain's newest events, moving its head back and waiting for the next root would leave
// the latest root consistent with the forged chain.
func verifyEarlierLeaves(tx *gorm.DB, tenantID string, chains map[string]head, reported map[string]bool, rep *VerifyReport) error {
	rows, err := tx.Raw(`SELECT l.root_number, l.subject_id, l.seq, l.hash, e.hash
		FROM ledger_root_leaves l
		LEFT JOIN consent_events e ON e.tenant_id = l.tenant_id AND e.subject_id = l.subject_id AND e.seq = l.seq
		WHERE l.tenant_id = ? AND (e.hash IS NULL OR e.hash <> l.hash)
		ORDER BY l.subject_id, l.root_number`, tenantID).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var number, seq int64
		var subject, hash string
		var have *string
		if err := rows.Scan(&number, &subject, &seq, &hash, &have); err != nil {
			return err
		}
		c, ok := chains[subject]
		if !ok || reported[leafKey(subject, seq)] {
			continue // a dropped chain is reported once, by the latest root's leaf
		}
		reported[leafKey(subject, seq)] = true
		if have == nil {
			rep.add(Problem{Kind: "events_deleted", SubjectID: subject, Seq: seq, Root: number,
				Message: fmt.Sprintf("signed root %d holds seq %d of this chain, but the chain ends at seq %d", number, seq, c.seq)})
		} else {
			rep.add(Problem{Kind: "chain_rewritten", SubjectID: subject, Seq: seq, Root: number,
				Message: fmt.Sprintf("the event signed by root %d has a different hash now", number)})
		}
	}
	return rows.Err()
}

func leafKey(subject string, seq int64) string { return subject + "|" + strconv.FormatInt(seq, 10) }

// verifyLatestLeaves checks the latest root's leaves against the ledger: the chain must
// still hold, at that sequence number, the very event the root signed. That finds deleted
// newest events, dropped chains and rewritten chains.
func verifyLatestLeaves(tx *gorm.DB, tenantID string, number int64, chains map[string]head, rep *VerifyReport) (map[string]bool, error) {
	rows, err := tx.Raw(`SELECT l.subject_id, l.seq, l.hash, e.hash
		FROM ledger_root_leaves l
		JOIN (SELECT subject_id, max(root_number) AS rn FROM ledger_root_leaves WHERE tenant_id = ? AND root_number <= ?
		      GROUP BY subject_id) m ON m.subject_id = l.subject_id AND m.rn = l.root_number
		LEFT JOIN consent_events e ON e.tenant_id = l.tenant_id AND e.subject_id = l.subject_id AND e.seq = l.seq
		WHERE l.tenant_id = ? ORDER BY l.subject_id`, tenantID, number, tenantID).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	reported := map[string]bool{}
	for rows.Next() {
		var subject, hash string
		var seq int64
		var have *string
		if err := rows.Scan(&subject, &seq, &hash, &have); err != nil {
			return nil, err
		}
		if _, ok := chains[subject]; !ok || have == nil || *have != hash {
			reported[leafKey(subject, seq)] = true
		}
		switch c, ok := chains[subject]; {
		case !ok:
			rep.add(Problem{Kind: "chain_deleted", SubjectID: subject, Seq: seq, Root: number,
				Message: fmt.Sprintf("signed root %d holds this chain, but the ledger has no events for it", number)})
		case have == nil:
			rep.add(Problem{Kind: "events_deleted", SubjectID: subject, Seq: seq, Root: number,
				Message: fmt.Sprintf("signed root %d holds seq %d of this chain, but the chain ends at seq %d", number, seq, c.seq)})
		case *have != hash:
			rep.add(Problem{Kind: "chain_rewritten", SubjectID: subject, Seq: seq, Root: number,
				Message: fmt.Sprintf("the event signed by root %d has a different hash now", number)})
		}
	}
	return reported, rows.Err()
}

// rebuildRoots rebuilds every signed root from the stored leaves, in one pass over them in
// root order, and compares each with what was signed. Rebuilding only the latest would let
// someone who deleted or rewrote an earlier root's leaves hide what that root signed (a
// chain cut back after it, and signed cut by the next root). It returns the leaves as the
// stored rows leave them.
func rebuildRoots(tx *gorm.DB, tenantID string, roots []rootRow, signed []*rootPayload, rep *VerifyReport) (*leafSet, error) {
	rows, err := tx.Raw(`SELECT root_number, subject_id, seq, hash FROM ledger_root_leaves WHERE tenant_id = ?
		ORDER BY root_number, subject_id`, tenantID).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := newLeafSet()
	i := 0
	compare := func(before int64) { // every root numbered below before has all its leaves in set
		for ; i < len(roots) && roots[i].Number < before; i++ {
			p := signed[i]
			if p == nil {
				continue // it does not verify: reported already
			}
			if sum, n := set.root(); hex.EncodeToString(sum[:]) != p.Root || n != p.HeadCount {
				rep.add(Problem{Kind: "root_mismatch", Root: p.Number,
					Message: fmt.Sprintf("the stored leaves do not rebuild signed root %d: its leaves were changed or deleted", p.Number)})
			}
		}
	}
	for rows.Next() {
		var number, seq int64
		var subject, hash string
		if err := rows.Scan(&number, &subject, &seq, &hash); err != nil {
			return nil, err
		}
		compare(number)
		set.set(subject, seq, hash)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	compare(math.MaxInt64)
	return set, nil
}

// verifyRooted compares the chain heads with the stored roots. After a root is stored, each
// head it changed records the seq it signed (rooted_seq); a head whose rooted_seq no stored
// leaf reaches was signed by a root that is gone — the newest roots deleted with their
// leaves, which leaves the remaining roots consistent. (Someone who also resets rooted_seq
// leaves no trace: only a copy of the roots kept elsewhere shows it.)
func verifyRooted(ends *chainEnds, leaves *leafSet, rep *VerifyReport) {
	var ahead []string
	for subject, seq := range ends.rooted {
		if seq > leaves.seq(subject) {
			ahead = append(ahead, subject)
		}
	}
	if len(ahead) == 0 {
		return
	}
	slices.Sort(ahead)
	first := ahead[0]
	msg := fmt.Sprintf("the chain head says a signed root holds seq %d of this chain, but no stored root does: signed roots were deleted",
		ends.rooted[first])
	if len(ahead) > 1 {
		msg += fmt.Sprintf(" (%d other chains say the same)", len(ahead)-1)
	}
	rep.add(Problem{Kind: "root_missing", SubjectID: first, Seq: ends.rooted[first], Message: msg})
}

// ErrVerifyFailed is returned by VerifyAll when any tenant's ledger has problems.
var ErrVerifyFailed = errors.New("ledger verification found problems")

// VerifyAll verifies every tenant's ledger.
func (s *Service) VerifyAll(ctx context.Context) ([]*VerifyReport, error) {
	ids, err := s.ids.TenantIDs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*VerifyReport
	failed := false
	for _, id := range ids {
		rep, err := s.Verify(ctx, id)
		if err != nil {
			return out, err
		}
		failed = failed || !rep.OK
		out = append(out, rep)
	}
	if failed {
		return out, ErrVerifyFailed
	}
	return out, nil
}
