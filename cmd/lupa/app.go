package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/ciam"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/datamap"
	"github.com/lupa-cmp/lupa/integrations/webhook"
	"github.com/lupa-cmp/lupa/migrations"
)

// app is everything wired together.
type app struct {
	cfg     config
	log     *slog.Logger
	db      *sqldb.DB
	keys    *keyring.Keyring
	ids     *identity.Service
	consent *consent.Service
	now     func() time.Time
	// Customer accounts, and where their emails go: SMTP, or the development mailbox
	// (mailbox is nil when mail goes out by SMTP).
	accounts *accounts.Service
	mailbox  *mail.Mailbox
	// The company's CIAM: issuers, bearer tokens, identity events.
	ciam *ciam.Service
	// Sign-in to customer accounts through the tenants' identity providers.
	login *login.Service
	// The data map: the systems that hold each tenant's customers' data.
	dataMap *datamap.Service
	// demoSeeded, when set (by tests), runs inside the demo's transaction between its
	// catalog and its data map; an error stops the seeding there.
	demoSeeded func(*consent.Demo) error
	// reloadEvery is how often reloadKeys reads the keys again: keyring.ReloadInterval
	// when zero (tests shorten it). moveStarted, when set (by tests), runs as a move of the
	// identifiers to new keys starts.
	reloadEvery time.Duration
	moveStarted func()
	// Webhook endpoints, and the engine that delivers domain events to them.
	webhooks   *webhook.Service
	deliveries *integrations.Engine
	// Connectors to Mailchimp, HubSpot and Klaviyo: the engine sends to them beside the
	// webhook endpoints; their vendors' unsubscribes come back as withdrawals.
	connectors *connector.Service
}

// schema says what opening Lupa does with the database schema.
type schema int

const (
	schemaRequired schema = iota // refuse a database without the current schema: the maintenance commands
	schemaMigrate                // apply pending migrations
	schemaAsIs                   // take it as it is: serve with LUPA_AUTO_MIGRATE=false, whose /readyz tells
)

// errNoSchema stops a command that needs a migrated database.
var errNoSchema = errors.New("the database has no Lupa schema (or is behind): run lupa migrate")

// open connects to the database, applies migrations when told to (else requires the current
// schema), and loads the keys.
func open(ctx context.Context, cfg config, log *slog.Logger, migrate bool) (*app, error) {
	if migrate {
		return openWith(ctx, cfg, log, schemaMigrate)
	}
	return openWith(ctx, cfg, log, schemaRequired)
}

// openWith is open with the schema's handling spelled out.
func openWith(ctx context.Context, cfg config, log *slog.Logger, s schema) (*app, error) {
	// An SQLite file that is not there has no schema: say so before opening it creates it.
	if path, ok := sqldb.SQLiteFile(cfg.DatabaseURL, cfg.DataDir); ok && s == schemaRequired {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (%s does not exist)", errNoSchema, path)
		}
	}
	// A master key the operator must give is checked before anything touches the schema;
	// only SQLite's generated key waits until the schema is known to be there.
	var master []byte
	var err error
	if sqldb.IsPostgresURL(cfg.DatabaseURL) || cfg.MasterKey != "" || cfg.MasterKeyFile != "" {
		if master, err = keyring.LoadMasterKey(cfg.MasterKey, cfg.MasterKeyFile, cfg.DataDir, false); err != nil {
			return nil, err
		}
	}
	db, err := sqldb.Open(ctx, cfg.DatabaseURL, cfg.DataDir, sqldb.Options{MaxConns: cfg.DBMaxConns})
	if err != nil {
		return nil, err
	}
	if s == schemaRequired {
		if err := requireSchema(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	}
	if master == nil {
		if master, err = keyring.LoadMasterKey("", "", cfg.DataDir, db.Dialect == sqldb.SQLite); err != nil {
			db.Close()
			return nil, err
		}
	}
	if s == schemaMigrate {
		applied, err := migrations.Up(ctx, db.SQL(), db.Dialect)
		if err != nil {
			db.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("applied migrations", "versions", applied)
		}
	}
	// Lupa stores times in milliseconds: a clock of that resolution makes an answer show a
	// time exactly as a later read of the same object does.
	now := func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	keys, err := keyring.Open(ctx, db, master, now)
	if err != nil {
		db.Close()
		return nil, err
	}
	ids := identity.New(db, keys, now)
	sender, mailbox, err := newMailer(cfg, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	// OWASP's argon2id parameters, as many hashes at once as there are cores and a short
	// queue behind them: a registration storm costs a known amount of memory.
	hasher := password.NewHasher(password.OWASP, 0, 0)
	acc := accounts.New(db, ids, hasher, sender, now, log, accounts.Options{LinkBase: cfg.PublicURL})
	cons := consent.NewService(db, ids, keys, now, log)
	// Confirmations of verbal consent and double opt-in links go out the same way.
	cons.SetMailer(sender, cfg.PublicURL)
	// An erasure also forgets, in its transaction, what the subject's account and the
	// connectors keep about the person.
	cons.OnErase(accounts.EraseStatements)
	cons.OnErase(connector.EraseStatements)
	a := &app{cfg: cfg, log: log, db: db, keys: keys, ids: ids,
		consent: cons, now: now, accounts: acc, mailbox: mailbox, ciam: newCIAM(cfg, log, db, ids, keys, cons, now),
		login: newLogin(cfg, log, db, ids, keys, acc, now), dataMap: datamap.New(db, cons, now)}
	a.newWebhooks()
	return a, nil
}

// requireSchema returns errNoSchema unless the database has every migration this binary
// knows. It only reads: a database without goose's version table is not given one.
func requireSchema(ctx context.Context, db *sqldb.DB) error {
	q := "SELECT to_regclass('goose_db_version') IS NOT NULL"
	if db.Dialect == sqldb.SQLite {
		q = "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'"
	}
	var versioned bool
	if err := db.SQL().QueryRowContext(ctx, q).Scan(&versioned); err != nil {
		return err
	}
	if !versioned {
		return fmt.Errorf("%w (%s)", errNoSchema, db.Location)
	}
	current, err := migrations.Current(ctx, db.SQL(), db.Dialect)
	if err != nil {
		return err
	}
	if !current {
		return fmt.Errorf("%w (%s)", errNoSchema, db.Location)
	}
	return nil
}

// newMailer is the SMTP sender of LUPA_SMTP_URL, or without one the development mailbox,
// which keeps the newest messages in memory for /dev/mailbox and sends nothing.
func newMailer(cfg config, log *slog.Logger) (accounts.Sender, *mail.Mailbox, error) {
	if cfg.SMTP != nil {
		s, err := mail.NewSMTP(*cfg.SMTP)
		return s, nil, err
	}
	box := mail.NewMailbox(log, 0)
	return box, box, nil
}

// listen binds the API's address and, unless it is off, the metrics address.
func listen(cfg config) (api, metrics net.Listener, err error) {
	if api, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, nil, err
	}
	if cfg.MetricsAddr == "" || cfg.MetricsAddr == "off" {
		return api, nil, nil
	}
	if metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
		api.Close()
		return nil, nil, fmt.Errorf("metrics listener: %w", err)
	}
	return api, metrics, nil
}

// serve runs the API and metrics listeners until ctx ends, then shuts down gracefully:
// in-flight requests finish, the writer commits what it holds, then the database closes.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	// The addresses are taken first: a port in use is reported at once, before anything
	// touches the database, and the listeners are never let go between a check and a bind.
	ln, mln, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	if mln != nil {
		defer mln.Close()
	}
	s := schemaAsIs
	if cfg.AutoMigrate {
		s = schemaMigrate
	}
	a, err := openWith(ctx, cfg, log, s)
	if err != nil {
		return err
	}
	defer a.db.Close()
	if err := a.seedDemo(ctx, stdout); err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	m := newMetrics()
	// Each commit that wrote events wakes the delivery engine.
	writer := a.consent.StartWriter(consent.WriterOptions{Workers: cfg.WriterWorkers, MaxBatch: cfg.WriterMaxBatch,
		Metrics: wakingMetrics{metrics: m, engine: a.deliveries}})
	sweepCtx, stopSweeps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSweeps()
	sweeper := a.consent.NewSweeper(log, cfg.SweepInterval, cfg.RootInterval)
	sweepsDone := make(chan struct{})
	go func() { sweeper.Run(sweepCtx); close(sweepsDone) }()
	go a.reloadKeys(sweepCtx)
	go a.ciamHousekeeping(sweepCtx)
	// Webhook deliveries: domain events out, signed, in order, retried (integrations).
	a.deliveries.SetMetrics(registerDeliveryMetrics(m, a.deliveries))
	deliveriesDone := make(chan struct{})
	go func() { a.deliveries.Run(sweepCtx); close(deliveriesDone) }()
	// Connectors read unsubscribes back from their vendors every LUPA_RECONCILE_INTERVAL.
	go a.connectors.RunReconcile(sweepCtx)
	// The tables of the hot lookups; the others are only written or read by primary key.
	go a.db.KeepStatistics(sweepCtx, log, []string{"identifiers", "subjects", "chain_heads", "consent_state"}, 5*time.Second)

	router, err := a.routes(m)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: cfg.Addr, Handler: router, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	var metricsSrv *http.Server
	if mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
		// Profiles for operators, on the internal listener only.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		metricsSrv = &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = metricsSrv.Serve(mln) }()
	}
	// The start-up text comes first: the listener was bound long ago, so a request that
	// waits on it is answered the moment serving starts, and whoever waits for /healthz
	// then finds the whole text.
	metricsAt := "off"
	if mln != nil {
		metricsAt = "http://" + cfg.MetricsAddr + "/metrics"
	}
	log.Info("lupa is serving", "addr", ln.Addr().String(), "metrics", metricsAt, "database", a.db.Dialect)
	fmt.Fprintf(stdout, "Lupa is running at %s  (API %s/v1, OpenAPI %s/v1/openapi.json, health %s/healthz, metrics %s)\n",
		cfg.PublicURL, cfg.PublicURL, cfg.PublicURL, cfg.PublicURL, metricsAt)
	a.warnAboutMail(stdout)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			stopSweeps()
			writer.Close()
			return err
		}
	}
	log.Info("shutting down: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	a.accounts.Wait(shutdownCtx) // links mailed after their answers, before the database closes
	writer.Close()               // after the last handler: everything acknowledged is committed
	stopSweeps()
	<-sweepsDone
	<-deliveriesDone // attempts in flight are abandoned; their leases run out and they are sent again
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	log.Info("stopped")
	return err
}

// warnAboutMail says where account emails go when they do not go out by SMTP: fine on a
// developer's machine, a mistake anywhere else.
func (a *app) warnAboutMail(stdout io.Writer) {
	if a.mailbox == nil {
		return
	}
	if a.cfg.DatabaseURL != "" {
		a.log.Warn("LUPA_SMTP_URL is not set: account emails (verification, sign-in and reset links) are not sent, " +
			"only kept in this instance's memory; set LUPA_SMTP_URL in production")
	}
	if a.cfg.DevMailbox {
		if a.cfg.DatabaseURL != "" {
			a.log.Warn("LUPA_DEV_MAILBOX is on: /dev/mailbox shows sign-in links to anyone who can reach it")
		}
		fmt.Fprintf(stdout, "Emails are not sent; read them at %s/dev/mailbox  (set LUPA_SMTP_URL to send them)\n", a.cfg.PublicURL)
	}
}

// reloadKeys picks up keys rotated by another instance or by `lupa keys rotate`.
// Once new identifiers are hashed with a newer lookup key (keyring.LookupKeyDelay after a
// rotation), it moves the existing ones to the newest keys. The move runs beside the
// reloads, not between them: re-hashing a large table takes long, and the delays of new
// lookup and signing keys count on every instance reloading each ReloadInterval.
func (a *app) reloadKeys(ctx context.Context) {
	every := a.reloadEvery
	if every == 0 {
		every = keyring.ReloadInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	moved := ""           // the lookup key the identifiers were last moved to
	var moving chan error // the move in progress, nil when none
	movingTo := ""        // the lookup key it moves them to
	try := true           // at the start and after each tick: a failed move waits for the next
	for {
		if id := a.keys.ActiveID(keyring.Lookup); try && moving == nil && id != moved {
			moving, movingTo = make(chan error, 1), id
			go func(done chan<- error) {
				if a.moveStarted != nil {
					a.moveStarted()
				}
				done <- a.moveIdentifiers(ctx)
			}(moving)
		}
		try = false
		select {
		case <-ctx.Done():
			if moving != nil {
				<-moving // it stops with the context; let it, before the database closes
			}
			return
		case err := <-moving:
			if err == nil {
				moved = movingTo
			}
			moving = nil
		case <-t.C:
			try = true
			if err := a.keys.Reload(ctx); err != nil {
				a.log.Error("reload keys", "err", err)
			}
		}
	}
}

// moveIdentifiers re-hashes and re-encrypts the identifiers still under older keys, one
// instance at a time. With a single lookup key there is nothing to move.
func (a *app) moveIdentifiers(ctx context.Context) error {
	if a.keys.Count(keyring.Lookup) < 2 {
		return nil
	}
	_, err := a.db.TryLock(ctx, "rehash_identifiers", func(ctx context.Context) error {
		n, err := a.ids.RehashIdentifiers(ctx)
		if n > 0 {
			a.log.Info("identifiers moved to the new keys", "rows", n)
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		a.log.Error("move identifiers to the new keys", "err", err)
	}
	return err
}

// seedDemoTx creates the demo tenant, its catalog and its data map in one transaction:
// a first start stopped half-way leaves nothing, and the next start creates the demo (and
// prints its admin key) again, instead of skipping it because a tenant exists. The
// services doing it are built on the transaction; their writes nest in it as savepoints.
func (a *app) seedDemoTx(ctx context.Context, origins []string) (*consent.Demo, error) {
	var d *consent.Demo
	err := a.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		txdb := &sqldb.DB{Write: tx, Read: tx, Dialect: a.db.Dialect, Location: a.db.Location}
		ids := identity.New(txdb, a.keys, a.now)
		cons := consent.NewService(txdb, ids, a.keys, a.now, a.log)
		var err error
		if d, err = cons.SeedDemo(ctx, origins); err != nil {
			return err
		}
		if a.demoSeeded != nil {
			if err := a.demoSeeded(d); err != nil {
				return err
			}
		}
		_, err = datamap.New(txdb, cons, a.now).SeedDemo(ctx, d.Tenant.ID)
		return err
	})
	return d, err
}

// seedDemo creates the demo tenant on an empty database and prints how to use it.
func (a *app) seedDemo(ctx context.Context, stdout io.Writer) error {
	if !a.cfg.Demo {
		return nil
	}
	n, err := a.ids.CountTenants(ctx)
	if err != nil || n > 0 {
		return err
	}
	origins := []string{identity.NormalizeOrigin(a.cfg.PublicURL)}
	if u, err := url.Parse(a.cfg.PublicURL); err == nil && u.Hostname() == "localhost" {
		origins = append(origins, identity.NormalizeOrigin("http://127.0.0.1"+portOf(a.cfg.Addr)))
	}
	d, err := a.seedDemoTx(ctx, origins)
	if identity.IsCode(err, identity.EConflict) {
		return nil // another instance seeded it at the same moment
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
Created the demo tenant %q (LUPA_DEMO=false turns this off).
  Admin API key (shown once): %s
  Web shop property key:      %s   (allowed origins: %v)
  App property key:           %s
  Demo shop with the banner:  %s/demo  (also /demo/fi and /demo/sv)
  Customer registration:      %s/t/%s/register  (sign in at %s/t/%s/signin)

  Try it:
    curl -s -H "Authorization: Bearer %s" %s/v1/admin/purposes
    curl -s -X POST -H "Content-Type: application/json" -H "Origin: %s" \
      "%s/v1/consents?property=%s" \
      -d '{"method":"banner_custom","language":"fi","decisions":[{"purpose":"analytics","version":1,"decision":"granted"}]}'

`, d.Tenant.LegalName, d.AdminKey, d.WebShop.PublicKey, d.WebShop.AllowedOrigins, d.App.PublicKey, a.cfg.PublicURL,
		a.cfg.PublicURL, d.Tenant.Slug, a.cfg.PublicURL, d.Tenant.Slug,
		d.AdminKey, a.cfg.PublicURL, d.WebShop.AllowedOrigins[0], a.cfg.PublicURL, d.WebShop.PublicKey)
	return nil
}
