package ciam

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Identity events: the CIAM tells Lupa that a user was created, updated or deleted. Each
// issuer has its own webhook secret; a request is authenticated by its Standard Webhooks
// signature (docs/identity-events.md), and each webhook-id is processed once.

// Event types Lupa applies.
const (
	EventUserCreated = "user.created"
	EventUserUpdated = "user.updated"
	EventUserDeleted = "user.deleted"
	// EventUserMerged says the CIAM merged the user data.merged_sub into data.sub.
	EventUserMerged = "user.merged"
)

// EventTypes lists the accepted event types.
var EventTypes = []string{EventUserCreated, EventUserUpdated, EventUserDeleted, EventUserMerged}

// WebhookTolerance is how far a webhook-timestamp may be from Lupa's clock.
const WebhookTolerance = 5 * time.Minute

const (
	// webhookIDTTL is how long a processed webhook-id is remembered: far longer than the
	// tolerance, so a replay is answered from memory even while its timestamp would pass.
	webhookIDTTL = 24 * time.Hour
	// claimTakeover is when a delivery still marked in progress is taken to have died.
	claimTakeover = 2 * time.Minute
	// MethodSystem and the reason are what the withdrawal of a deleted user's consents is
	// recorded with. The reason is consent.WithdrawUserDeleted (identity cannot import
	// consent): the integrations read it to tell downstream systems that the account was
	// deleted, not that the person decided.
	withdrawMethod = "system"
	withdrawReason = "idp_user_deleted"
)

// WebhookRequest is an identity event as it arrived: the Standard Webhooks headers and the
// body, byte for byte.
type WebhookRequest struct {
	ID, Timestamp, Signature string
	Body                     []byte
}

// EventResult is the answer to an identity event.
type EventResult struct {
	Status   int
	Body     []byte
	Replayed bool // a retry of a webhook-id already processed
}

// EventAnswer is the body of the answer: what Lupa did.
type EventAnswer struct {
	WebhookID string `json:"webhook_id"`
	Type      string `json:"type"`
	// Subject is the person's pseudonym in the ledger; absent when Lupa knows no such person.
	Subject       string `json:"subject,omitempty"`
	PersonCreated bool   `json:"person_created"`
	// Email says what became of the event's email address: added, known (the person has it),
	// unverified (ignored), linked_elsewhere (another subject has it; never moved), none.
	Email string `json:"email,omitempty"`
	// Merged says what user.merged did: merged, or none (Lupa never met the merged user).
	Merged string `json:"merged,omitempty"`
	// Withdrawn counts the consents withdrawn for user.deleted.
	Withdrawn      int    `json:"withdrawn"`
	ErasureRequest string `json:"erasure_request,omitempty"`
	// MergedAway, on user.deleted: the user had been merged into another (Subject), whose
	// person stays as it is; only the merged user's identifier is gone.
	MergedAway bool `json:"merged_away,omitempty"`
	// Ignored says why nothing was done: user_deleted — the CIAM deleted the user (or, on
	// user.merged, one of the two) at or after the time this event was sent, or the event has
	// no timestamp to show it is newer; a late or retried event does not bring them back.
	Ignored string `json:"ignored,omitempty"`
}

// IgnoredUserDeleted is EventAnswer.Ignored for an event older than the user's deletion.
const IgnoredUserDeleted = "user_deleted"

var (
	errSignature = errors.New("signature")
)

func unauthorizedWebhook(msg string, err error) error {
	return &identity.Error{Code: identity.EUnauthorized, Message: msg, Err: err}
}

// validWebhookID: 1–255 printable ASCII characters without spaces.
func validWebhookID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// VerifySignature checks a Standard Webhooks request: webhook-timestamp within the
// tolerance of now, and one of the space-separated v1 signatures in webhook-signature the
// base64 HMAC-SHA256, under key, of "<webhook-id>.<webhook-timestamp>.<body>" (compared in
// constant time).
func VerifySignature(key []byte, r WebhookRequest, now time.Time) error {
	if !validWebhookID(r.ID) {
		return unauthorizedWebhook("send the webhook-id header: 1–255 printable characters", errSignature)
	}
	ts, err := strconv.ParseInt(r.Timestamp, 10, 64)
	if err != nil || r.Timestamp == "" || r.Timestamp[0] == '+' || r.Timestamp[0] == '-' {
		return unauthorizedWebhook("send the webhook-timestamp header: Unix seconds", errSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return unauthorizedWebhook("the webhook-timestamp is more than 5 minutes from Lupa's clock", errSignature)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.ID + "." + r.Timestamp + "."))
	mac.Write(r.Body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(r.Signature) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return unauthorizedWebhook("the webhook signature does not verify", errSignature)
}

// webhookKey returns the issuer an event names by id and the HMAC key of its secret. An
// unknown issuer is answered like a bad signature.
func (s *Service) webhookKey(ctx context.Context, issuerID string) (*Issuer, []byte, error) {
	var rows []issuerRow
	if len(issuerID) <= 64 {
		if err := s.db.Read.WithContext(ctx).Where("id = ?", issuerID).Limit(1).Find(&rows).Error; err != nil {
			return nil, nil, err
		}
	}
	if len(rows) == 0 {
		return nil, nil, unauthorizedWebhook("the webhook signature does not verify", errors.New("unknown issuer"))
	}
	r := rows[0]
	key, err := s.keys.Decrypt(ctx, r.WebhookSecretKID, r.WebhookSecret, secretAAD(r.TenantID, r.ID))
	if err != nil {
		return nil, nil, err
	}
	return r.domain(), key, nil
}

type eventEnvelope struct {
	Type      string          `json:"type"`
	Timestamp *time.Time      `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// UserData is the data of a user event. Other members (a name, a locale …) are ignored.
type UserData struct {
	Sub           string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	// MergedSub is, on user.merged, the user that no longer exists: its person joins Sub's.
	MergedSub string `json:"merged_sub"`
}

func parseEvent(body []byte) (*eventEnvelope, *UserData, error) {
	var ev eventEnvelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, nil, identity.FieldErrors("the body is not an identity event",
			identity.FieldError{Field: "", Message: "an object with type, timestamp and data: " + err.Error()})
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, identity.FieldErrors("the body has data after the JSON value")
	}
	var v identity.Validator
	v.Check(ev.Type != "", "type", "is required")
	v.Check(len(ev.Data) > 0 && ev.Data[0] == '{', "data", "is required: an object")
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	if !slices.Contains(EventTypes, ev.Type) {
		return nil, nil, identity.Unprocessable("type", "unknown event type; Lupa takes "+strings.Join(EventTypes, ", "))
	}
	var d UserData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil, nil, identity.FieldErrors("the event's data is not valid", identity.FieldError{Field: "data", Message: err.Error()})
	}
	v.Check(d.Sub != "", "data.sub", "is required: the user's subject at the issuer")
	v.Check(ev.Type != EventUserMerged || (d.MergedSub != "" && d.MergedSub != d.Sub), "data.merged_sub",
		"is required on user.merged: the user merged into data.sub, another than it")
	if d.Email != "" {
		d.Email = identity.NormalizeEmail(d.Email)
		v.Check(identity.ValidEmail(d.Email), "data.email", "must be an email address")
	}
	return &ev, &d, v.Err()
}

// HandleEvent authenticates an identity event sent for an issuer, applies it once and
// returns the answer; a retry with the same webhook-id gets the first answer again.
func (s *Service) HandleEvent(ctx context.Context, issuerID string, r WebhookRequest) (*EventResult, error) {
	iss, key, err := s.webhookKey(ctx, issuerID)
	if err != nil {
		return nil, err
	}
	if err := VerifySignature(key, r, s.now()); err != nil {
		return nil, err
	}
	ev, data, err := parseEvent(r.Body)
	if err != nil {
		return nil, err
	}
	idp := identity.Identifier{Kind: identity.IDIdP, Namespace: iss.Issuer, Value: data.Sub}.Normalized()
	if err := idp.Validate("data"); err != nil {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "data.sub", Message: "1–255 printable characters"})
	}
	sum := sha256.Sum256(r.Body)
	hash := hex.EncodeToString(sum[:])
	stored, err := s.claim(ctx, iss, r.ID, hash)
	if err != nil || stored != nil {
		return stored, err
	}
	ans := &EventAnswer{WebhookID: r.ID, Type: ev.Type}
	var body []byte
	switch ev.Type {
	case EventUserDeleted:
		body, err = s.userDeleted(ctx, iss, r.ID, idp, s.deletionTime(ev), ans)
	case EventUserMerged:
		body, err = s.userMerged(ctx, iss, r.ID, idp, data, ev.Timestamp, ans)
	default:
		body, err = s.userUpserted(ctx, iss, r.ID, idp, data, ev.Timestamp, ans)
	}
	if err != nil {
		if rerr := s.release(context.WithoutCancel(ctx), iss, r.ID); rerr != nil {
			s.log.Error("release webhook id", "issuer_id", iss.ID, "err", rerr)
		}
		return nil, err
	}
	return &EventResult{Status: 200, Body: body}, nil
}

// deletionTime is when the CIAM deleted the user: the event's timestamp, or when Lupa got
// the event if it has none (later than the deletion, so never too early).
func (s *Service) deletionTime(ev *eventEnvelope) time.Time {
	if ev.Timestamp != nil {
		return ev.Timestamp.UTC()
	}
	return s.now()
}

// ignored answers an event that must not act (see EventAnswer.Ignored), completing its
// webhook id.
func (s *Service) ignored(tx *gorm.DB, iss *Issuer, webhookID string, ans *EventAnswer) ([]byte, error) {
	*ans = EventAnswer{WebhookID: ans.WebhookID, Type: ans.Type, Ignored: IgnoredUserDeleted}
	body, err := json.Marshal(ans)
	if err != nil {
		return nil, err
	}
	return body, s.complete(tx, iss, webhookID, body)
}

// userUpserted makes sure the person (issuer, sub) exists and adds a verified email
// address to it — unless the address already names another subject: never linking by email
// alone, Lupa leaves it there. An event sent before the CIAM deleted the user does nothing.
func (s *Service) userUpserted(ctx context.Context, iss *Issuer, webhookID string, idp identity.Identifier, d *UserData,
	sentAt *time.Time, ans *EventAnswer) ([]byte, error) {
	var body []byte
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := s.lockUser(tx, iss.TenantID, idp); err != nil {
				return err
			}
			if stale, err := s.staleForDeleted(ctx, tx, iss.TenantID, idp, sentAt); err != nil || stale {
				if err == nil {
					body, err = s.ignored(tx, iss, webhookID, ans)
				}
				return err
			}
			subj, created, err := s.ids.EnsurePerson(ctx, tx, iss.TenantID, idp)
			if err != nil {
				return err
			}
			ans.Subject, ans.PersonCreated = subj.Pseudonym, created
			switch {
			case d.Email == "":
				ans.Email = "none"
			case !d.EmailVerified:
				ans.Email = "unverified"
			default:
				added, owner, err := s.ids.AttachIdentifier(ctx, tx, subj, identity.Identifier{Kind: identity.IDEmail, Value: d.Email})
				if err != nil {
					return err
				}
				switch {
				case added:
					ans.Email = "added"
				case owner == subj.ID:
					ans.Email = "known"
				default:
					ans.Email = "linked_elsewhere"
				}
			}
			if body, err = json.Marshal(ans); err != nil {
				return err
			}
			return s.complete(tx, iss, webhookID, body)
		})
		if !sqldb.IsUniqueViolation(err) {
			break // a concurrent creation of the same person or address: look again
		}
	}
	return body, err
}

// userDeleted withdraws every consent of the person at once (through the consent writer,
// so the withdrawals are ledger events and reach downstream systems) and opens an erasure
// request, to be assessed against legal retention. First of all it records the deletion,
// deleted at the CIAM at at: from then on the user's tokens issued until then are refused
// and the events sent until then do nothing, so no grant or person can come back after the
// withdrawal.
func (s *Service) userDeleted(ctx context.Context, iss *Issuer, webhookID string, idp identity.Identifier, at time.Time, ans *EventAnswer) ([]byte, error) {
	if err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockUser(tx, iss.TenantID, idp); err != nil {
			return err
		}
		return s.markDeleted(tx, iss.TenantID, idp, at)
	}); err != nil {
		return nil, err
	}
	subj, err := s.ids.FindSubject(ctx, iss.TenantID, idp)
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return nil, err
	}
	if subj != nil {
		if body, done, err := s.mergedAwayDeleted(ctx, iss, webhookID, idp, subj, ans); done || err != nil {
			return body, err
		}
		if s.wd == nil {
			return nil, errors.New("ciam: no withdrawer configured")
		}
		ans.Subject = subj.Pseudonym
		if ans.Withdrawn, err = s.wd.WithdrawAll(ctx, iss.TenantID, idp, withdrawMethod, withdrawReason); err != nil {
			return nil, err
		}
	}
	var body []byte
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if subj != nil {
			id, _, err := s.ids.OpenErasureRequest(ctx, tx, iss.TenantID, subj.ID, "ciam:"+iss.ID, s.now())
			if err != nil {
				return err
			}
			ans.ErasureRequest = id
		}
		var err error
		if body, err = json.Marshal(ans); err != nil {
			return err
		}
		return s.complete(tx, iss, webhookID, body)
	})
	return body, err
}

// mergedAwayDeleted handles the deletion of a user the CIAM had merged into another: the
// identifier now names the remaining person, who must keep their consents and data. Only the
// identifier goes. done says whether the user was such a one.
func (s *Service) mergedAwayDeleted(ctx context.Context, iss *Issuer, webhookID string, idp identity.Identifier,
	survivor *identity.Subject, ans *EventAnswer) (body []byte, done bool, err error) {
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if done, err = s.ids.DropMergedAway(tx, iss.TenantID, idp); err != nil || !done {
			return err
		}
		ans.Subject, ans.MergedAway = survivor.Pseudonym, true
		if body, err = json.Marshal(ans); err != nil {
			return err
		}
		return s.complete(tx, iss, webhookID, body)
	})
	return body, done && err == nil, err
}

// userMerged joins the merged user's person (with its decisions, identifiers and chain)
// into the remaining user's, through the consent writer: of two decisions on one purpose the
// newer stands. A merged user Lupa never met leaves nothing to join (merged none; the answer
// still names the remaining person if Lupa knows them). A merge sent before the CIAM deleted
// either user does nothing: it would bring the remaining user back, or hand the deleted
// user's withdrawals to the person who stays.
func (s *Service) userMerged(ctx context.Context, iss *Issuer, webhookID string, idp identity.Identifier, d *UserData,
	sentAt *time.Time, ans *EventAnswer) ([]byte, error) {
	merged := identity.Identifier{Kind: identity.IDIdP, Namespace: iss.Issuer, Value: d.MergedSub}.Normalized()
	if err := merged.Validate("data"); err != nil {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "data.merged_sub", Message: "1–255 printable characters"})
	}
	// Both users are locked, as userUpserted and userDeleted lock them, so a deletion running
	// now is either seen here or comes after the merge. Locked in a stable order (by the
	// lock's own key) so two merges of the same pair cannot deadlock.
	var body []byte
	stale := false
	if err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.lockUsers(tx, iss.TenantID, idp, merged); err != nil {
			return err
		}
		for _, id := range []identity.Identifier{idp, merged} {
			st, err := s.staleForDeleted(ctx, tx, iss.TenantID, id, sentAt)
			if err != nil {
				return err
			}
			if st {
				stale = true
				body, err = s.ignored(tx, iss, webhookID, ans)
				return err
			}
		}
		return nil
	}); err != nil || stale {
		return body, err
	}
	if s.mg == nil {
		return nil, errors.New("ciam: no merger configured")
	}
	ans.Merged = "none"
	if _, err := s.ids.FindSubject(ctx, iss.TenantID, merged); err == nil {
		// The remaining user may be new to Lupa: it is made first, to receive the other.
		if err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			_, _, err := s.ids.EnsurePerson(ctx, tx, iss.TenantID, idp)
			return err
		}); err != nil && !sqldb.IsUniqueViolation(err) {
			return nil, err
		}
		subject, err := s.mg.MergePersons(ctx, iss.TenantID, merged, idp)
		if err != nil {
			return nil, err
		}
		ans.Subject, ans.Merged = subject, "merged"
	} else if !identity.IsCode(err, identity.ENotFound) {
		return nil, err
	} else {
		// Nothing to join, but the answer still names the remaining person when Lupa knows
		// them, as every other answer names the person it is about.
		survivor, err := s.ids.FindSubject(ctx, iss.TenantID, idp)
		switch {
		case err == nil:
			ans.Subject = survivor.Pseudonym
		case !identity.IsCode(err, identity.ENotFound):
			return nil, err
		}
	}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if ans.Merged == "merged" {
			// A deletion of the merged user, which CIAMs often send next, must not reach the
			// person who stays (mergedAwayDeleted).
			if err := s.ids.MarkMergedAway(tx, iss.TenantID, merged, s.now()); err != nil {
				return err
			}
		}
		var err error
		if body, err = json.Marshal(ans); err != nil {
			return err
		}
		return s.complete(tx, iss, webhookID, body)
	})
	return body, err
}

// claim takes a webhook-id for this delivery. It returns nil when the delivery is to be
// processed, or the stored answer of an earlier one.
func (s *Service) claim(ctx context.Context, iss *Issuer, webhookID, hash string) (*EventResult, error) {
	now := s.now()
	res := s.db.Write.WithContext(ctx).Exec(`INSERT INTO ciam_webhook_ids
		(tenant_id, issuer_id, webhook_id, request_hash, status, response, created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)
		ON CONFLICT (tenant_id, issuer_id, webhook_id) DO NOTHING`, iss.TenantID, iss.ID, webhookID, hash, []byte{},
		now.UnixMilli(), now.Add(webhookIDTTL).UnixMilli())
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 1 {
		return nil, nil
	}
	var rows []struct {
		RequestHash string
		Status      int
		Response    []byte
		CreatedAt   int64
	}
	if err := s.db.Write.WithContext(ctx).Raw(`SELECT request_hash, status, response, created_at FROM ciam_webhook_ids
		WHERE tenant_id = ? AND issuer_id = ? AND webhook_id = ?`, iss.TenantID, iss.ID, webhookID).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 { // released a moment ago: claim again
		return s.claim(ctx, iss, webhookID, hash)
	}
	r := rows[0]
	switch {
	case r.RequestHash != hash:
		return nil, identity.Unprocessable("webhook-id", "this webhook-id was used with another payload")
	case r.Status != 0:
		return &EventResult{Status: r.Status, Body: r.Response, Replayed: true}, nil
	case now.UnixMilli()-r.CreatedAt > claimTakeover.Milliseconds():
		// The delivery that claimed it stopped half-way; everything an event does can be
		// done again, so this one takes over.
		res := s.db.Write.WithContext(ctx).Exec(`UPDATE ciam_webhook_ids SET created_at = ?
			WHERE tenant_id = ? AND issuer_id = ? AND webhook_id = ? AND status = 0 AND created_at = ?`,
			now.UnixMilli(), iss.TenantID, iss.ID, webhookID, r.CreatedAt)
		if res.Error != nil {
			return nil, res.Error
		}
		if res.RowsAffected == 1 {
			return nil, nil
		}
	}
	return nil, identity.Errorf(identity.EConflict, "an event with this webhook-id is being processed; retry")
}

func (s *Service) complete(tx *gorm.DB, iss *Issuer, webhookID string, body []byte) error {
	return tx.Exec(`UPDATE ciam_webhook_ids SET status = 200, response = ?
		WHERE tenant_id = ? AND issuer_id = ? AND webhook_id = ? AND status = 0`, body, iss.TenantID, iss.ID, webhookID).Error
}

func (s *Service) release(ctx context.Context, iss *Issuer, webhookID string) error {
	return s.db.Write.WithContext(ctx).Exec(`DELETE FROM ciam_webhook_ids
		WHERE tenant_id = ? AND issuer_id = ? AND webhook_id = ? AND status = 0`, iss.TenantID, iss.ID, webhookID).Error
}

// Housekeeping forgets webhook ids past their day and deleted users past
// DeletedUserRetention, and returns how many rows it removed.
func (s *Service) Housekeeping(ctx context.Context) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM ciam_webhook_ids WHERE (tenant_id, issuer_id, webhook_id) IN
			(SELECT tenant_id, issuer_id, webhook_id FROM ciam_webhook_ids WHERE expires_at < ? LIMIT 1000)`,
		`DELETE FROM ciam_deleted_users WHERE (tenant_id, user_hash) IN
			(SELECT tenant_id, user_hash FROM ciam_deleted_users WHERE expires_at < ? LIMIT 1000)`,
	} {
		for range 10000 {
			res := s.db.Write.WithContext(ctx).Exec(q, s.now().UnixMilli())
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
