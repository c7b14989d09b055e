package main

import (
	"log/slog"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// newLogin wires sign-in through the tenants' identity providers: every request to a
// provider (discovery, keys, tokens, the Graph API) goes through a client that refuses
// internal addresses (unless LUPA_ALLOW_PRIVATE_WEBHOOKS), and callbacks are under
// LUPA_PUBLIC_URL.
func newLogin(cfg config, log *slog.Logger, db *sqldb.DB, ids *identity.Service, keys *keyring.Keyring,
	acc *accounts.Service, now func() time.Time) *login.Service {
	return login.New(db, ids, keys, acc, now, login.Options{
		Client:            safehttp.New(safehttp.Options{AllowPrivate: cfg.AllowPrivateWebhooks}),
		PublicURL:         cfg.PublicURL,
		FacebookDialogURL: cfg.FacebookDialogURL,
		FacebookGraphURL:  cfg.FacebookGraphURL,
		Log:               log,
	})
}
