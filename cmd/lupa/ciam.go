package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// newCIAM wires the CIAM service: its discovery documents and keys come through a client
// that refuses internal addresses (unless LUPA_ALLOW_PRIVATE_WEBHOOKS), and a deleted
// user's consents are withdrawn by the consent service.
func newCIAM(cfg config, log *slog.Logger, db *sqldb.DB, ids *identity.Service, keys *keyring.Keyring,
	cons *consent.Service, now func() time.Time) *ciam.Service {
	return ciam.New(db, ids, keys, now, ciam.Options{
		Client:     safehttp.New(safehttp.Options{AllowPrivate: cfg.AllowPrivateWebhooks}),
		Withdrawer: cons,
		Merger:     personMerger{cons},
		Log:        log,
	})
}

// ciamHousekeeping forgets identity events' webhook ids past their day, and CIAM users'
// deletions past their retention (ciam.DeletedUserRetention).
func (a *app) ciamHousekeeping(ctx context.Context) {
	t := time.NewTicker(a.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.ciam.Housekeeping(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("forget old webhook ids and deleted CIAM users", "err", err)
			}
		}
	}
}

// personMerger lets a CIAM's user.merged join two persons through the consent writer.
type personMerger struct{ cons *consent.Service }

func (m personMerger) MergePersons(ctx context.Context, tenantID string, merged, survivor identity.Identifier) (string, error) {
	out, err := m.cons.MergePersons(ctx, tenantID, merged, survivor)
	if err != nil {
		return "", err
	}
	return out.Subject, nil
}
