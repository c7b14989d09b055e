package datamap

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations/connector"
)

// Erasure confirmations. An approved erasure request reaches every system of the data map
// (a connector, a webhook, a manual task); each system's confirmation is a row of
// erasure_confirmations, written by the delivery engine when the system's endpoint or
// connector acknowledged subject.erasure_approved (ErasureDelivered), or by an admin
// (ConfirmErasure). Lupa keeps the person's email addresses — sealed, in the identifiers of
// kind email — as long as a system may still need them to find the person, and erases them
// in the transaction that records the last confirmation (docs/data-map.md, "Erasure
// confirmations").

// ErasureStatuses are the statuses of an erasure request that systems may confirm: open
// (the only status before the request queue) and approved (the queue's, when it comes).
var ErasureStatuses = []string{identity.DSROpen, "approved"}

// Audit of erasure confirmations: object_type dsr_request, object_id the request's id.
const (
	erasureObjectType    = "dsr_request"
	ActionErasureConfirm = "erasure.confirm"
	ActionEmailErased    = "erasure.email_erased"
)

// ConfirmedByDelivery is the prefix of confirmed_by for a confirmation the delivery engine
// recorded: "delivery:<endpoint or connector id>".
const ConfirmedByDelivery = "delivery:"

// ErasureSystem is one system of the data map and whether it has confirmed the request.
type ErasureSystem struct {
	SystemID   string      `json:"system_id"`
	Name       string      `json:"name"`
	Connection *Connection `json:"connection"`
	DSRMethod  string      `json:"dsr_method"`
	Confirmed  bool        `json:"confirmed"`
	// ConfirmedAt, ConfirmedBy ("delivery:<connection id>" or the admin's actor) and Note
	// are empty until the system confirms.
	ConfirmedAt *time.Time `json:"confirmed_at"`
	ConfirmedBy string     `json:"confirmed_by"`
	Note        string     `json:"note"`
}

// ErasureProgress is where an erasure request stands: which systems of the data map have
// confirmed it, and whether Lupa has erased its own copy of the person's email addresses.
type ErasureProgress struct {
	RequestID string          `json:"request_id"`
	SubjectID string          `json:"subject_id"`
	Status    string          `json:"status"`
	Systems   []ErasureSystem `json:"systems"`
	Confirmed int             `json:"confirmed"` // systems that have confirmed
	Total     int             `json:"total"`     // systems in the map now
	// Complete: every system of the map has confirmed (true for an empty map).
	Complete bool `json:"complete"`
	// EmailErased: Lupa has erased the person's email identifiers, at EmailErasedAt.
	EmailErased   bool       `json:"email_erased"`
	EmailErasedAt *time.Time `json:"email_erased_at"`
}

// erasureRequest is what the confirmations read of a dsr_requests row.
type erasureRequest struct {
	ID            string
	SubjectID     string
	Kind          string
	Status        string
	EmailErasedAt *int64
}

// confirmationRow is a row of erasure_confirmations.
type confirmationRow struct {
	TenantID    string `gorm:"primaryKey"`
	RequestID   string `gorm:"primaryKey"`
	SystemID    string `gorm:"primaryKey"`
	SubjectID   string
	ConfirmedAt int64
	ConfirmedBy string
	Note        string
}

func (confirmationRow) TableName() string { return "erasure_confirmations" }

// lockRequest reads an erasure request of the tenant and, on PostgreSQL, locks it until tx
// ends: confirmations of one request then take turns, so the one that records the last
// confirmation sees all the others and erases the email. ENotFound for another tenant's.
func (s *Service) lockRequest(tx *gorm.DB, tenantID, requestID string) (*erasureRequest, error) {
	lock := ""
	if s.db.Dialect == sqldb.Postgres {
		lock = " FOR UPDATE"
	}
	var rows []erasureRequest
	if err := tx.Raw(`SELECT id, subject_id, kind, status, email_erased_at FROM dsr_requests WHERE tenant_id = ? AND id = ?`+lock,
		tenantID, requestID).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("erasure request")
	}
	return &rows[0], nil
}

func (r *erasureRequest) confirmable() bool {
	return r.Kind == identity.DSRErasure && slices.Contains(ErasureStatuses, r.Status)
}

// insertConfirmation records a system's confirmation unless it has one; it reports whether
// this call recorded it.
func insertConfirmation(tx *gorm.DB, row confirmationRow) (bool, error) {
	res := tx.Exec(`INSERT INTO erasure_confirmations (tenant_id, request_id, system_id, subject_id, confirmed_at, confirmed_by, note)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, request_id, system_id) DO NOTHING`,
		row.TenantID, row.RequestID, row.SystemID, row.SubjectID, row.ConfirmedAt, row.ConfirmedBy, row.Note)
	return res.RowsAffected > 0, res.Error
}

// ErasureDelivered records, in the delivery engine's transaction, that the webhook endpoint
// or connector connectionID acknowledged subject.erasure_approved for the request: it is the
// confirmation of the data-map system that names that connection (of either kind) and
// whose requests go through it (dsr method webhook or connector), once
// (a repeated acknowledgement changes nothing). A connection no system names confirms
// nothing; a request id that is not one of the tenant's erasure requests is ignored (the
// engine must not fail on an event it cannot place). Either way the request's completeness
// is checked, so that a tenant with an empty data map forgets the email at the first
// acknowledgement. It implements integrations.ErasureRecorder.
func (s *Service) ErasureDelivered(tx *gorm.DB, tenantID, subjectID, requestID, connectionID string, at time.Time) error {
	if requestID == "" || connectionID == "" {
		return nil
	}
	req, err := s.lockRequest(tx, tenantID, requestID)
	if identity.IsCode(err, identity.ENotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !req.confirmable() {
		return nil // not an erasure, or one no longer open to confirmations (as ConfirmErasure)
	}
	// Only a system whose requests go through the connection: for one whose erasures a
	// person carries out (dsr method manual), the endpoint's 2xx says the event arrived,
	// not that the owner's task is done.
	var systems []string
	if err := tx.Raw(`SELECT id FROM data_map_systems WHERE tenant_id = ? AND connection_id = ? AND dsr_method IN ? ORDER BY id`,
		tenantID, connectionID, []string{DSRWebhook, DSRConnector}).Scan(&systems).Error; err != nil {
		return err
	}
	ms := at.UnixMilli()
	for _, id := range systems {
		added, err := insertConfirmation(tx, confirmationRow{TenantID: tenantID, RequestID: req.ID, SystemID: id,
			SubjectID: req.SubjectID, ConfirmedAt: ms, ConfirmedBy: ConfirmedByDelivery + connectionID})
		if err != nil {
			return err
		}
		if added {
			if err := identity.WriteAudit(tx, tenantID, identity.ActorSystem, ActionErasureConfirm, erasureObjectType, req.ID, nil,
				map[string]string{"system_id": id, "confirmed_by": ConfirmedByDelivery + connectionID}, at); err != nil {
				return err
			}
		}
	}
	_, err = s.complete(tx, tenantID, req, identity.ActorSystem, at)
	return err
}

// ConfirmErasure records an admin's confirmation that the system has carried out the
// erasure request (a manual task done, or a connected system erased by other means), with
// an optional note, and erases the person's email when it was the last system to confirm.
// A system that has confirmed already keeps its first confirmation. ENotFound for an
// unknown system or request (or another tenant's); EConflict for a request that is not an
// erasure request systems may confirm.
func (s *Service) ConfirmErasure(ctx context.Context, tenantID, systemID, requestID, note string, actor identity.Actor) (*ErasureProgress, error) {
	note = strings.TrimSpace(note)
	var v identity.Validator
	v.Check(runes(note) <= MaxNotesLen, "note", "at most "+strconv.Itoa(MaxNotesLen)+" characters")
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Millisecond)
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sys systemRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, systemID).Take(&sys).Error; err != nil {
			return notFoundOr(err)
		}
		req, err := s.lockRequest(tx, tenantID, requestID)
		if err != nil {
			return err
		}
		if !req.confirmable() {
			return &identity.Error{Code: identity.EConflict, Message: "the request is not an erasure request that systems may confirm",
				Fields: []identity.FieldError{{Field: "request_id", Message: "is a " + req.Kind + " request with status " + req.Status +
					"; only erasure requests with status " + strings.Join(ErasureStatuses, " or ") + " are confirmed"}}}
		}
		added, err := insertConfirmation(tx, confirmationRow{TenantID: tenantID, RequestID: req.ID, SystemID: sys.ID,
			SubjectID: req.SubjectID, ConfirmedAt: now.UnixMilli(), ConfirmedBy: string(actor), Note: note})
		if err != nil {
			return err
		}
		if added {
			if err := identity.WriteAudit(tx, tenantID, actor, ActionErasureConfirm, erasureObjectType, req.ID, nil,
				map[string]string{"system_id": sys.ID, "confirmed_by": string(actor), "note": note}, now); err != nil {
				return err
			}
		}
		_, err = s.complete(tx, tenantID, req, actor, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.progress(ctx, s.db.Write, tenantID, requestID)
}

// CheckErasure erases the person's email in tx if every system of the data map has
// confirmed the erasure request, and reports whether the email is now erased. Confirmations
// check by themselves; the request queue calls this when it approves a request, so that a
// tenant whose data map is empty forgets the email at once.
func (s *Service) CheckErasure(tx *gorm.DB, tenantID, requestID string, actor identity.Actor, at time.Time) (bool, error) {
	req, err := s.lockRequest(tx, tenantID, requestID)
	if err != nil {
		return false, err
	}
	if req.EmailErasedAt != nil {
		return true, nil
	}
	return s.complete(tx, tenantID, req, actor, at)
}

// complete erases the subject's email identifiers when the request is confirmable, its
// email is still kept, and every system of the tenant's data map — the systems in the map
// now, those added after the request included — has confirmed it.
func (s *Service) complete(tx *gorm.DB, tenantID string, req *erasureRequest, actor identity.Actor, at time.Time) (bool, error) {
	if req.EmailErasedAt != nil || !req.confirmable() {
		return false, nil
	}
	var missing int64
	if err := tx.Raw(`SELECT COUNT(*) FROM data_map_systems s WHERE s.tenant_id = ? AND NOT EXISTS (
		SELECT 1 FROM erasure_confirmations c WHERE c.tenant_id = s.tenant_id AND c.request_id = ? AND c.system_id = s.id)`,
		tenantID, req.ID).Scan(&missing).Error; err != nil {
		return false, err
	}
	if missing > 0 {
		return false, nil
	}
	// Lupa's copies of the address: the email identifiers (the sealed address and its
	// lookup hash) and the address each connector last wrote for the subject — and for the
	// person it was merged into since, which holds its identifiers now, and every subject
	// merged into that person, under which a connector may still hold an address (the
	// same person: identity.PersonSubjects).
	subjects, err := identity.PersonSubjects(tx.Statement.Context, tx, tenantID, req.SubjectID)
	if err != nil {
		return false, err
	}
	res := tx.Exec(`DELETE FROM identifiers WHERE tenant_id = ? AND subject_id IN ? AND kind = ?`, tenantID, subjects, identity.IDEmail)
	if res.Error != nil {
		return false, res.Error
	}
	identifiers := res.RowsAffected
	for _, subject := range subjects {
		for _, st := range connector.EraseStatements(tenantID, subject, at) {
			if err := tx.Exec(st.SQL, st.Args...).Error; err != nil {
				return false, err
			}
		}
	}
	ms := at.UnixMilli()
	if err := tx.Exec(`UPDATE dsr_requests SET email_erased_at = ? WHERE tenant_id = ? AND id = ?`, ms, tenantID, req.ID).Error; err != nil {
		return false, err
	}
	req.EmailErasedAt = &ms
	return true, identity.WriteAudit(tx, tenantID, actor, ActionEmailErased, erasureObjectType, req.ID, nil,
		map[string]any{"subject_id": req.SubjectID, "email_identifiers": identifiers}, at)
}

// recheckErasures runs the completeness check of every erasure request of the tenant whose
// email is still kept: after a system leaves the map, the others may be all there is.
func (s *Service) recheckErasures(tx *gorm.DB, tenantID string, actor identity.Actor, at time.Time) error {
	var ids []string
	if err := tx.Raw(`SELECT id FROM dsr_requests WHERE tenant_id = ? AND kind = ? AND status IN ? AND email_erased_at IS NULL ORDER BY id`,
		tenantID, identity.DSRErasure, ErasureStatuses).Scan(&ids).Error; err != nil {
		return err
	}
	for _, id := range ids {
		req, err := s.lockRequest(tx, tenantID, id)
		if err != nil {
			return err
		}
		if _, err := s.complete(tx, tenantID, req, actor, at); err != nil {
			return err
		}
	}
	return nil
}

// ErasureProgress returns where an erasure request of the tenant stands: every system of
// the data map, confirmed or not (when, by whom), and whether Lupa has erased its copy of
// the person's email. ENotFound for another tenant's request.
func (s *Service) ErasureProgress(ctx context.Context, tenantID, requestID string) (*ErasureProgress, error) {
	return s.progress(ctx, s.db.Read, tenantID, requestID)
}

func (s *Service) progress(ctx context.Context, db *gorm.DB, tenantID, requestID string) (*ErasureProgress, error) {
	db = db.WithContext(ctx)
	var reqs []erasureRequest
	if err := db.Raw(`SELECT id, subject_id, kind, status, email_erased_at FROM dsr_requests WHERE tenant_id = ? AND id = ?`,
		tenantID, requestID).Scan(&reqs).Error; err != nil {
		return nil, err
	}
	if len(reqs) == 0 || reqs[0].Kind != identity.DSRErasure {
		return nil, identity.NotFound("erasure request")
	}
	req := reqs[0]
	var systems []systemRow
	if err := db.Where("tenant_id = ?", tenantID).Order("id").Find(&systems).Error; err != nil {
		return nil, err
	}
	var confs []confirmationRow
	if err := db.Where("tenant_id = ? AND request_id = ?", tenantID, requestID).Find(&confs).Error; err != nil {
		return nil, err
	}
	byID := make(map[string]confirmationRow, len(confs))
	for _, c := range confs {
		byID[c.SystemID] = c
	}
	p := &ErasureProgress{RequestID: req.ID, SubjectID: req.SubjectID, Status: req.Status, Systems: make([]ErasureSystem, len(systems)),
		Total: len(systems)}
	for i := range systems {
		d := systems[i].domain()
		es := ErasureSystem{SystemID: d.ID, Name: d.Name, Connection: d.Connection, DSRMethod: d.DSR.Method}
		if c, ok := byID[d.ID]; ok {
			at := time.UnixMilli(c.ConfirmedAt).UTC()
			es.Confirmed, es.ConfirmedAt, es.ConfirmedBy, es.Note = true, &at, c.ConfirmedBy, c.Note
			p.Confirmed++
		}
		p.Systems[i] = es
	}
	p.Complete = p.Confirmed == p.Total
	if req.EmailErasedAt != nil {
		at := time.UnixMilli(*req.EmailErasedAt).UTC()
		p.EmailErased, p.EmailErasedAt = true, &at
	}
	return p, nil
}

// checkConnection refuses a connection that names no webhook endpoint (kind webhook) or
// no connector of that vendor (the connector kinds) of the system's own tenant. Only a
// connection that is new or changed is checked: a system whose endpoint was deleted since
// can still be changed otherwise.
func checkConnection(tx *gorm.DB, sys *System, before *Connection) error {
	c := sys.Connection
	if c == nil || (before != nil && *before == *c) {
		return nil
	}
	var n int64
	var msg string
	switch {
	case c.Kind == ConnectionWebhook:
		if err := tx.Raw(`SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = ? AND id = ?`, sys.TenantID, c.ID).Scan(&n).Error; err != nil {
			return err
		}
		msg = "the tenant has no webhook endpoint with this id"
	case slices.Contains(ConnectorKinds, c.Kind):
		if err := tx.Raw(`SELECT COUNT(*) FROM connectors WHERE tenant_id = ? AND id = ? AND vendor = ?`, sys.TenantID, c.ID, c.Kind).Scan(&n).Error; err != nil {
			return err
		}
		msg = "the tenant has no " + c.Kind + " connector with this id"
	default:
		return nil // Validate refused it
	}
	if n == 0 {
		return &identity.Error{Code: identity.EUnprocessable, Message: "unknown connection",
			Fields: []identity.FieldError{{Field: "connection.id", Message: msg}}}
	}
	return nil
}
