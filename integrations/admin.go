package integrations

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Delivery is one message for one endpoint, as the admin API shows it.
type Delivery struct {
	ID            string
	EndpointID    string
	EventType     string
	Purpose       string // "" for subject-level events
	Sequence      int64
	Status        string
	Attempts      int
	NextAttemptAt *time.Time // while pending
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   *time.Time
	// Data is the event's data (without previous_decision, which is set when it is sent).
	Data       json.RawMessage
	AttemptLog []Attempt
}

// Attempt is one try at sending a delivery.
type Attempt struct {
	Number    int
	Status    int // HTTP status, 0 when none came
	Outcome   string
	LatencyMS int64
	Response  string // at most 1 KiB
	At        time.Time
}

// DeliveryFilter selects deliveries of an endpoint.
type DeliveryFilter struct {
	Status      string // one status, or "" for all
	DeadLetters bool   // failed and dead only
	Cursor      string
	Limit       int
}

// DeliveryPage is one page of an endpoint's deliveries, newest first.
type DeliveryPage struct {
	Items      []*Delivery
	NextCursor string
}

// Statuses lists the delivery statuses.
var Statuses = []string{StatusPending, StatusDelivered, StatusSuperseded, StatusSkipped, StatusFailed, StatusDead}

type deliveryRow struct {
	TenantID      string
	ID            string
	EndpointID    string
	SubjectID     string
	Purpose       string
	Seq           int64
	EventType     string
	Payload       string
	Status        string
	Attempts      int
	NextAttemptAt int64
	LastStatus    int
	LastError     string
	CreatedAt     int64
	UpdatedAt     int64
	DeliveredAt   *int64
}

func (r *deliveryRow) domain(withData bool) *Delivery {
	d := &Delivery{ID: r.ID, EndpointID: r.EndpointID, EventType: r.EventType, Purpose: r.Purpose, Sequence: r.Seq,
		Status: r.Status, Attempts: r.Attempts, LastStatus: r.LastStatus, LastError: r.LastError,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	if subjectLevel(d.Purpose) {
		d.Purpose = ""
	}
	if r.Status == StatusPending {
		t := time.UnixMilli(r.NextAttemptAt).UTC()
		d.NextAttemptAt = &t
	}
	if r.DeliveredAt != nil {
		t := time.UnixMilli(*r.DeliveredAt).UTC()
		d.DeliveredAt = &t
	}
	if withData {
		d.Data = json.RawMessage(r.Payload)
	}
	return d
}

const deliverySelect = `SELECT tenant_id, id, endpoint_id, subject_id, purpose, seq, event_type, payload, status, attempts,
	next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at FROM deliveries`

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", false
	}
	at, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(at, 10, 64)
	return n, id, ok && err == nil && id != ""
}

// Deliveries lists an endpoint's deliveries, newest first. The caller checks that the
// endpoint is the tenant's.
func (e *Engine) Deliveries(ctx context.Context, tenantID, endpointID string, f DeliveryFilter) (*DeliveryPage, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	where := " WHERE tenant_id = ? AND endpoint_id = ?"
	args := []any{tenantID, endpointID}
	switch {
	case f.DeadLetters:
		where += " AND status IN ('failed', 'dead')"
	case f.Status != "":
		where += " AND status = ?"
		args = append(args, f.Status)
	}
	if f.Cursor != "" {
		at, id, ok := decodeCursor(f.Cursor)
		if !ok {
			return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "cursor", Message: "is not a cursor this API gave"})
		}
		where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
		args = append(args, at, at, id)
	}
	args = append(args, f.Limit+1)
	var rows []deliveryRow
	q := e.db.Read.WithContext(ctx).Raw(deliverySelect+where+" ORDER BY created_at DESC, id DESC LIMIT ?", args...)
	if err := q.Scan(&rows).Error; err != nil {
		return nil, err
	}
	page := &DeliveryPage{Items: []*Delivery{}}
	for i := range rows {
		if i == f.Limit {
			last := rows[i-1]
			page.NextCursor = encodeCursor(last.CreatedAt, last.ID)
			break
		}
		page.Items = append(page.Items, rows[i].domain(false))
	}
	return page, nil
}

// Delivery returns one delivery with its data and attempts.
func (e *Engine) Delivery(ctx context.Context, tenantID, endpointID, id string) (*Delivery, error) {
	var rows []deliveryRow
	if err := e.db.Read.WithContext(ctx).Raw(deliverySelect+" WHERE tenant_id = ? AND endpoint_id = ? AND id = ?",
		tenantID, endpointID, id).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("delivery")
	}
	d := rows[0].domain(true)
	var attempts []struct {
		Number    int
		Status    int
		Outcome   string
		LatencyMS int64 `gorm:"column:latency_ms"`
		Response  string
		CreatedAt int64
	}
	if err := e.db.Read.WithContext(ctx).Raw(`SELECT number, status, outcome, latency_ms, response, created_at FROM delivery_attempts
		WHERE tenant_id = ? AND delivery_id = ? ORDER BY number`, tenantID, id).Scan(&attempts).Error; err != nil {
		return nil, err
	}
	d.AttemptLog = make([]Attempt, len(attempts))
	for i, a := range attempts {
		d.AttemptLog[i] = Attempt{Number: a.Number, Status: a.Status, Outcome: a.Outcome, LatencyMS: a.LatencyMS,
			Response: a.Response, At: time.UnixMilli(a.CreatedAt).UTC()}
	}
	return d, nil
}

// Replay sends failed and dead deliveries of an endpoint again, from the first attempt of
// the schedule: one (id) or all (id ""). A delivery that a newer one of its (subject,
// purpose) has overtaken is marked superseded instead: an older state is never sent after
// a newer one. It returns how many were queued again.
func (e *Engine) Replay(ctx context.Context, tenantID, endpointID, id string, actor identity.Actor) (int, error) {
	queued := 0
	now := e.now().UnixMilli()
	err := e.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := deliverySelect + " WHERE tenant_id = ? AND endpoint_id = ?"
		args := []any{tenantID, endpointID}
		if id != "" {
			q += " AND id = ?"
			args = append(args, id)
		} else {
			q += " AND status IN ('failed', 'dead')"
		}
		var rows []deliveryRow
		if err := tx.Raw(q+" ORDER BY seq", args...).Scan(&rows).Error; err != nil {
			return err
		}
		if id != "" {
			if len(rows) == 0 {
				return identity.NotFound("delivery")
			}
			if rows[0].Status != StatusFailed && rows[0].Status != StatusDead {
				return identity.Errorf(identity.EConflict, "only failed and dead deliveries can be replayed; this one is %s", rows[0].Status)
			}
		}
		for _, r := range rows {
			// Any newer message of the key overtakes this one, whatever its status: a newer
			// one that failed too is the state to replay, and this one sent after it was
			// given up on would leave the receiver with the older state (a grant after its
			// withdrawal).
			var newer int64
			if err := tx.Raw(`SELECT COUNT(*) FROM deliveries WHERE tenant_id = ? AND endpoint_id = ? AND subject_id = ? AND purpose = ?
				AND seq > ?`, tenantID, endpointID, r.SubjectID, r.Purpose, r.Seq).
				Scan(&newer).Error; err != nil {
				return err
			}
			status := StatusPending
			if newer > 0 {
				status = StatusSuperseded
			} else {
				queued++
			}
			// The schedule starts again from here; attempts keep counting (they number the log).
			if err := tx.Exec(`UPDATE deliveries SET status = ?, schedule_base = attempts, next_attempt_at = ?, lease_until = 0, updated_at = ?
				WHERE tenant_id = ? AND id = ?`, status, now, now, tenantID, r.ID).Error; err != nil {
				return err
			}
		}
		kind := targetKind(endpointID)
		return identity.WriteAudit(tx, tenantID, actor, kind+".replay", kind, endpointID, nil,
			map[string]any{"delivery": id, "queued": queued}, e.now())
	})
	if queued > 0 {
		e.Wake()
	}
	return queued, err
}

// targetKind is what a delivery target is in the audit log: a connector or a webhook endpoint.
func targetKind(endpointID string) string {
	if strings.HasPrefix(endpointID, ConnectorIDPrefix) {
		return "connector"
	}
	return "webhook"
}
