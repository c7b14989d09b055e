package connector

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations/hubspot"
	"github.com/lupa-cmp/lupa/integrations/klaviyo"
	"github.com/lupa-cmp/lupa/integrations/mailchimp"
)

// The reconcile reads the person's own unsubscribes back from the vendor, for what the
// webhooks missed (Lupa was down, the webhook was never registered, Klaviyo sends none):
//
//   - Mailchimp: members of each mapped audience whose status is unsubscribed and changed
//     since the cursor → withdrawal of the purposes mapped to that audience, at the member's
//     last_changed. Cleaned members are not read: a bounce is not a decision about consent,
//     and the member list does not tell a spam complaint from a bounce (the webhook does).
//   - HubSpot: the EMAIL subscription statuses of the addresses the connector has written
//     (connector_members), 100 per call; UNSUBSCRIBED on a mapped subscription → withdrawal
//     (objection for a legitimate-interest purpose), at the status's timestamp. HubSpot
//     cannot list changes since a time, so the reconcile walks the members in subject order,
//     at most Options.ReconcileHubSpotMembers a run, each run from where the last one
//     stopped (connectors.reconcile_position), and starts again after the last member.
//   - Klaviyo: profiles whose global email suppression was set since the cursor; an
//     unsubscribe or spam complaint (klaviyo.Profile.Withdrawal) → withdrawal of every
//     mapped purpose (the suppression is global), at the suppression's time.
//
// Recording goes through RecordFromSystem like the webhooks: only what is granted now and
// was decided in Lupa before the vendor's time, so a re-read, an overlap with a webhook or
// the echo of Lupa's own unsubscribe records nothing. Mailchimp's walk relies on that: when
// members change under it, it reads a page again rather than skip one (Client.Changed); if
// they keep changing it fails, and the audience's cursor stays where it was.
//
// The cursor (connectors.reconcile_cursor) is a JSON object from a source to the newest
// vendor-side time applied from it, RFC 3339 in UTC:
//
//	{"mailchimp:list:<audience id>": "…", "hubspot:statuses": "…", "klaviyo:suppressions": "…"}
//
// A source's entry moves only after its walk completed, and never backwards; the next read
// starts one second before it, because the vendors' time filters have one-second
// resolution and may be exclusive (re-reading the edge is harmless). No entry means read
// everything: the first run after a connector is made brings back every unsubscribe newer
// than the person's decision in Lupa. For HubSpot the entry is informational (the walk's
// position is what moves it). reconciled_at is set when a whole run succeeded.

// Cursor sources.
const (
	cursorMailchimpList = "mailchimp:list:"
	cursorHubSpot       = "hubspot:statuses"
	cursorKlaviyo       = "klaviyo:suppressions"
)

// cursorOverlap is how far before the cursor the next read starts.
const cursorOverlap = time.Second

type reconcileCursor map[string]time.Time

func parseCursor(s string) reconcileCursor {
	c := reconcileCursor{}
	if s != "" && json.Unmarshal([]byte(s), &c) != nil {
		return reconcileCursor{} // unreadable: read everything again (harmless)
	}
	return c
}

// since is where the source's next read starts.
func (c reconcileCursor) since(source string) time.Time {
	t := c[source]
	if t.IsZero() {
		return t
	}
	return t.Add(-cursorOverlap)
}

// advance moves the source's entry to t if that is later.
func (c reconcileCursor) advance(source string, t time.Time) {
	if t.After(c[source]) {
		c[source] = t.UTC()
	}
}

// errReconcileBusy refuses a reconcile of a connector that is being reconciled already.
var errReconcileBusy = identity.Errorf(identity.EConflict, "connector: a reconcile of this connector is running")

// Reconcile reads the connector's unsubscribes back from the vendor since its cursor and
// records them in Lupa (see above), on behalf of actor (an admin asked for it). It returns
// how many decisions it recorded. A source that fails does not stop the others; the error
// (EUpstream) names the failures, and the cursor of a failed source stays where it was.
// A run is audited once it is over, with the connector before and after, what it recorded
// and the vendor's error if any; a refused one (no such connector, disabled, or one
// running already: EConflict) changed nothing and is not.
func (s *Service) Reconcile(ctx context.Context, tenantID, connectorID string, actor identity.Actor) (int, error) {
	before, n, err := s.reconcileExclusive(ctx, tenantID, connectorID)
	if before == nil {
		return n, err
	}
	var ie *identity.Error
	if err != nil && !errors.As(err, &ie) && ctx.Err() == nil {
		// The vendor's error (connector errors carry no addresses; errText scrubs anyway).
		err = identity.Errorf(identity.EUpstream, "the vendor could not be read: %s", errText(err))
	}
	if aerr := s.auditReconcile(context.WithoutCancel(ctx), actor, before, n, err); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return n, err
}

// auditReconcile writes a run to the audit log: the connector before and after (its
// reconciled_at moves), how many decisions it recorded, and the run's error if any.
func (s *Service) auditReconcile(ctx context.Context, actor identity.Actor, before *Connector, recorded int, runErr error) error {
	after := map[string]any{"recorded": recorded}
	if runErr != nil {
		after["error"] = runErr.Error()
	}
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, before.TenantID, before.ID)
		switch {
		case err == nil:
			after["connector"] = r.domain()
		case !identity.IsCode(err, identity.ENotFound): // deleted meanwhile: no "after" to show
			return err
		}
		return identity.WriteAudit(tx, before.TenantID, actor, "connector.reconcile", "connector", before.ID, before, after, s.now())
	})
}

// reconcileExclusive runs one reconcile of the connector unless one is running already:
// two at once would both walk HubSpot from the same reconcile_position and race to store
// it. An in-process guard covers this instance (the loop and an admin's request; SQLite has
// no other), a PostgreSQL advisory lock the other instances. It returns the connector as
// the run found it, or nil when the run was refused (busy, not found, disabled).
func (s *Service) reconcileExclusive(ctx context.Context, tenantID, connectorID string) (*Connector, int, error) {
	k := cacheKey(tenantID, connectorID)
	s.mu.Lock()
	if s.reconciling[k] {
		s.mu.Unlock()
		return nil, 0, errReconcileBusy
	}
	s.reconciling[k] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.reconciling, k)
		s.mu.Unlock()
	}()
	var before *Connector
	var n int
	ran, err := s.db.TryLock(ctx, "lupa.connector.reconcile."+connectorID, func(ctx context.Context) error {
		var err error
		before, n, err = s.reconcile(ctx, tenantID, connectorID)
		return err
	})
	if !ran && err == nil {
		return nil, 0, errReconcileBusy
	}
	return before, n, err
}

// reconcile is one run, under the connector's lock.
func (s *Service) reconcile(ctx context.Context, tenantID, connectorID string) (*Connector, int, error) {
	c, err := s.loaded(ctx, tenantID, connectorID)
	if err != nil {
		return nil, 0, err
	}
	if c.conn.Status != StatusEnabled {
		return nil, 0, identity.Errorf(identity.EConflict, "connector: the connector is disabled")
	}
	var stored struct {
		Cursor       string `gorm:"column:reconcile_cursor"`
		Position     string `gorm:"column:reconcile_position"`
		ReconciledAt *int64 `gorm:"column:reconciled_at"`
	}
	if err := s.db.Write.WithContext(ctx).Raw(`SELECT reconcile_cursor, reconcile_position, reconciled_at FROM connectors
		WHERE tenant_id = ? AND id = ?`, tenantID, connectorID).Scan(&stored).Error; err != nil {
		return nil, 0, err
	}
	before := *c.conn // the cached connector with the row's own reconciled_at (it moves without updated_at)
	before.ReconciledAt = nil
	if stored.ReconciledAt != nil {
		t := time.UnixMilli(*stored.ReconciledAt).UTC()
		before.ReconciledAt = &t
	}
	cur := parseCursor(stored.Cursor)
	next := reconcileCursor{}
	var n int
	var position *string // where the HubSpot walk goes on next time
	switch c.conn.Vendor {
	case Mailchimp:
		n, err = s.reconcileMailchimp(ctx, c, cur, next)
	case HubSpot:
		var pos string
		n, pos, err = s.reconcileHubSpot(ctx, c, stored.Position, next)
		position = &pos
	case Klaviyo:
		n, err = s.reconcileKlaviyo(ctx, c, cur, next)
	}
	if serr := s.saveCursor(context.WithoutCancel(ctx), c.conn, next, position, err == nil); serr != nil {
		err = errors.Join(err, serr)
	}
	return &before, n, err
}

func (s *Service) reconcileMailchimp(ctx context.Context, c *clients, cur, next reconcileCursor) (int, error) {
	var lists []string
	purposes := map[string][]string{}
	for _, m := range c.conn.Mappings {
		if !slices.Contains(lists, m.ListID) {
			lists = append(lists, m.ListID)
		}
		purposes[m.ListID] = append(purposes[m.ListID], m.Purpose)
	}
	n := 0
	var errs []error
	for _, list := range lists {
		source := cursorMailchimpList + list
		newest := time.Time{}
		err := c.mailchimp.Changed(ctx, list, cur.since(source), []string{mailchimp.StatusUnsubscribed}, func(m mailchimp.Member) error {
			at := m.LastChangedTime()
			if at.IsZero() {
				return nil // no time to weigh against Lupa's decisions: leave it to the webhook
			}
			k, err := s.recordVendorDecision(ctx, c, m.EmailAddress, purposes[list], ReasonVendorUnsubscribe, at)
			if err != nil {
				return err
			}
			n += k
			if at.After(newest) {
				newest = at
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next.advance(source, newest)
	}
	return n, errors.Join(errs...)
}

// memberPage is one page of the addresses a connector wrote.
type memberPage []struct {
	SubjectID string `gorm:"column:subject_id"`
	EmailCT   []byte `gorm:"column:email_ct"`
	EmailKID  string `gorm:"column:email_kid"`
}

// reconcileHubSpot reads the statuses of at most Options.ReconcileHubSpotMembers of the
// connector's members, in subject order after from, and returns where the next run goes on:
// after the last member it read, or "" once it read the last one. A run that fails returns
// the position after the last page it finished, so a run cut short (by an error, or by the
// interval's deadline) loses nothing it did. The bound keeps a large audience from taking
// the account's rate limit, which the deliveries share, for minutes at every interval.
func (s *Service) reconcileHubSpot(ctx context.Context, c *clients, from string, next reconcileCursor) (int, string, error) {
	purposes := map[int64][]string{}
	for _, m := range c.conn.Mappings {
		purposes[m.SubscriptionID] = append(purposes[m.SubscriptionID], m.Purpose)
	}
	budget := s.opt.ReconcileHubSpotMembers
	n, after, read, newest, undecryptable := 0, from, 0, time.Time{}, 0
	defer func() {
		if undecryptable > 0 {
			s.opt.Log.Warn("connector reconcile: member addresses that do not decrypt were skipped",
				"tenant", c.conn.TenantID, "connector", c.conn.ID, "count", undecryptable)
		}
	}()
	for read < budget {
		limit := min(budget-read, hubspot.DefaultBatchSize)
		var rows memberPage
		if err := s.db.Read.WithContext(ctx).Raw(`SELECT subject_id, email_ct, email_kid FROM connector_members
			WHERE tenant_id = ? AND connector_id = ? AND subject_id > ? ORDER BY subject_id LIMIT ?`,
			c.conn.TenantID, c.conn.ID, after, limit).Scan(&rows).Error; err != nil {
			return n, after, err
		}
		if len(rows) == 0 && read == 0 && after != "" {
			after = "" // the previous run read the last member: start again
			continue
		}
		k, bad, err := s.hubspotStatuses(ctx, c, rows, purposes, &newest)
		n, undecryptable = n+k, undecryptable+bad
		if err != nil {
			return n, after, err
		}
		read += len(rows)
		if len(rows) < limit {
			after = "" // that was the last member
			break
		}
		after = rows[len(rows)-1].SubjectID
	}
	next.advance(cursorHubSpot, newest)
	return n, after, nil
}

// hubspotStatuses asks HubSpot for one page of members' statuses and records each
// unsubscribe from a mapped subscription; newest moves to the latest status time applied.
// It returns how many decisions it recorded and how many addresses did not decrypt.
func (s *Service) hubspotStatuses(ctx context.Context, c *clients, rows memberPage, purposes map[int64][]string, newest *time.Time) (int, int, error) {
	asked := map[string]bool{}
	var emails []string
	undecryptable := 0
	for _, r := range rows {
		b, err := s.keys.Decrypt(ctx, r.EmailKID, r.EmailCT, memberAAD(c.conn.TenantID, c.conn.ID, r.SubjectID))
		if err != nil {
			undecryptable++
			continue
		}
		e := identity.NormalizeEmail(string(b))
		if e != "" && !asked[e] {
			asked[e] = true
			emails = append(emails, string(b))
		}
	}
	if len(emails) == 0 {
		return 0, undecryptable, nil
	}
	res, err := c.hubspot.Statuses(ctx, emails)
	if err != nil {
		return 0, undecryptable, err
	}
	n := 0
	for addr, sts := range res {
		if !asked[identity.NormalizeEmail(addr)] {
			continue // HubSpot answered about an address Lupa did not ask for
		}
		for _, st := range sts {
			ps := purposes[st.SubscriptionID]
			if st.Status != hubspot.Unsubscribed || len(ps) == 0 || st.Timestamp.IsZero() {
				continue
			}
			k, err := s.recordVendorDecision(ctx, c, addr, ps, ReasonVendorOptOut, st.Timestamp)
			if err != nil {
				return n, undecryptable, err
			}
			n += k
			if st.Timestamp.After(*newest) {
				*newest = st.Timestamp
			}
		}
	}
	return n, undecryptable, nil
}

func (s *Service) reconcileKlaviyo(ctx context.Context, c *clients, cur, next reconcileCursor) (int, error) {
	purposes := c.conn.Purposes()
	n, newest := 0, time.Time{}
	since := cur.since(cursorKlaviyo)
	if since.IsZero() {
		since = time.Unix(0, 0) // everything, as a time Klaviyo's filter surely accepts
	}
	err := c.klaviyo.Suppressed(ctx, since, func(p klaviyo.Profile) error {
		var latest time.Time // the newest suppression of any reason: the walk's position
		for _, x := range p.Suppressions {
			if x.Timestamp.After(latest) {
				latest = x.Timestamp
			}
		}
		if latest.After(newest) {
			newest = latest
		}
		if !p.Withdrawal() {
			return nil // a bounce, an invalid address, an admin's suppression: not the person's decision
		}
		at := p.WithdrawnAt()
		if at.IsZero() {
			return nil
		}
		k, err := s.recordVendorDecision(ctx, c, p.Email, purposes, klaviyoReason(p), at)
		n += k
		return err
	})
	if err != nil {
		return n, err
	}
	next.advance(cursorKlaviyo, newest)
	return n, nil
}

// klaviyoReason says which refusal the profile's newest one is.
func klaviyoReason(p klaviyo.Profile) string {
	var at time.Time
	reason := ReasonVendorUnsubscribe
	for _, x := range p.Suppressions {
		if (x.Reason == "UNSUBSCRIBE" || x.Reason == "SPAM_COMPLAINT") && x.Timestamp.After(at) {
			at = x.Timestamp
			reason = ReasonVendorUnsubscribe
			if x.Reason == "SPAM_COMPLAINT" {
				reason = ReasonVendorSpamComplaint
			}
		}
	}
	return reason
}

// saveCursor merges the run's progress into the stored cursor (an entry never moves back),
// stores the HubSpot walk's position when there is one (runs of one connector never
// overlap: reconcileExclusive) and, after a complete run, sets
// reconciled_at. It leaves updated_at alone: that is the connector's configuration's version.
func (s *Service) saveCursor(ctx context.Context, c *Connector, next reconcileCursor, position *string, complete bool) error {
	if len(next) == 0 && position == nil && !complete {
		return nil
	}
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := `SELECT reconcile_cursor FROM connectors WHERE tenant_id = ? AND id = ?`
		if s.db.Dialect == sqldb.Postgres {
			q += ` FOR UPDATE`
		}
		var stored []string
		if err := tx.Raw(q, c.TenantID, c.ID).Scan(&stored).Error; err != nil {
			return err
		}
		if len(stored) == 0 {
			return nil // deleted meanwhile
		}
		cur := parseCursor(stored[0])
		for k, t := range next {
			cur.advance(k, t)
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		set, args := "reconcile_cursor = ?", []any{string(b)}
		if position != nil {
			set, args = set+", reconcile_position = ?", append(args, *position)
		}
		if complete {
			set, args = set+", reconciled_at = ?", append(args, s.now().UnixMilli())
		}
		return tx.Exec("UPDATE connectors SET "+set+" WHERE tenant_id = ? AND id = ?", append(args, c.TenantID, c.ID)...).Error
	})
}

// RunReconcile reconciles every enabled connector of every tenant every
// Options.ReconcileEvery (and once at start), until ctx ends. A connector reconciled
// successfully less than an interval ago (by another instance, or before a restart) is
// left until it is due; each runs under a database lock named for it, so two instances
// never reconcile one connector at once, and for at most one interval (or a minute, if
// longer). Failures are logged
// (ids and the vendor's scrubbed error, never an address) and retried at the next tick.
func (s *Service) RunReconcile(ctx context.Context) {
	t := time.NewTicker(s.opt.ReconcileEvery)
	defer t.Stop()
	for {
		s.reconcileDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcileDue makes one pass over the enabled connectors.
func (s *Service) reconcileDue(ctx context.Context) {
	var rows []struct {
		TenantID     string `gorm:"column:tenant_id"`
		ID           string `gorm:"column:id"`
		Vendor       string `gorm:"column:vendor"`
		ReconciledAt *int64 `gorm:"column:reconciled_at"`
	}
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT tenant_id, id, vendor, reconciled_at FROM connectors
		WHERE status = ? ORDER BY tenant_id, id`, StatusEnabled).Scan(&rows).Error; err != nil {
		if ctx.Err() == nil {
			s.opt.Log.Error("connector reconcile: list the connectors", "error", errText(err))
		}
		return
	}
	// A little slack, so a run that finished just after the previous tick is not skipped.
	dueBefore := s.now().Add(-s.opt.ReconcileEvery + s.opt.ReconcileEvery/10).UnixMilli()
	for _, r := range rows {
		if ctx.Err() != nil {
			return
		}
		if r.ReconciledAt != nil && *r.ReconciledAt > dueBefore {
			continue
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, max(s.opt.ReconcileEvery, time.Minute))
		// Not audited: the audit log is for what people asked; the loop's runs are logged.
		_, n, err := s.reconcileExclusive(rctx, r.TenantID, r.ID)
		cancel()
		switch {
		case errors.Is(err, errReconcileBusy): // another instance, or an admin's request, is at it
		case err != nil && ctx.Err() == nil:
			s.opt.Log.Warn("connector reconcile failed", "tenant", r.TenantID, "connector", r.ID, "vendor", r.Vendor,
				"recorded", n, "error", errText(err))
		case err == nil:
			s.opt.Log.Info("connector reconciled", "tenant", r.TenantID, "connector", r.ID, "vendor", r.Vendor,
				"recorded", n, "duration", time.Since(start))
		}
	}
}
