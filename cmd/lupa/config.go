package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/identity/login"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/integrations"
)

// config is every LUPA_* setting; README.md documents each one.
type config struct {
	Addr            string
	MetricsAddr     string
	PublicURL       string
	DatabaseURL     string
	DataDir         string
	MasterKey       string
	MasterKeyFile   string
	Demo            bool
	AutoMigrate     bool
	TrustedProxies  []string
	RateLimit       float64
	RateBurst       int
	DBMaxConns      int
	WriterWorkers   int
	WriterMaxBatch  int
	SweepInterval   time.Duration
	RootInterval    time.Duration
	ShutdownTimeout time.Duration
	// ReconcileInterval is how often each connector reads unsubscribes back from its vendor.
	ReconcileInterval time.Duration
	// DeliveryLogRetention is how long the delivery log keeps a finished message.
	DeliveryLogRetention time.Duration
	// ConnectorInstances is how many instances share each vendor account's rate limits.
	ConnectorInstances int
	LogLevel           string
	LogFormat          string
	// SMTP is the mail server from LUPA_SMTP_URL; nil keeps mail in the development
	// mailbox instead (MailFrom is then only the From of the kept messages).
	SMTP       *mail.SMTPConfig
	MailFrom   string
	DevMailbox bool // serve /dev/mailbox
	// AllowPrivateWebhooks lets outbound requests to tenant-configured URLs (a CIAM's
	// discovery document and keys) reach loopback and private addresses.
	AllowPrivateWebhooks bool
	// FacebookDialogURL and FacebookGraphURL are Facebook Login's endpoints: the login
	// dialog and the Graph API base (its version in the path).
	FacebookDialogURL, FacebookGraphURL string
}

// The greatest values of the numeric settings. Above each, the setting buys nothing and
// costs memory, connections or correctness, so it is refused at start like a value below
// its least.
const (
	// maxRate bounds LUPA_RATE_LIMIT and LUPA_RATE_BURST: see loadConfig.
	maxRate = 1_000_000
	// maxDBConns bounds LUPA_DB_MAX_CONNS. Every PostgreSQL connection is a server process
	// (max_connections is 100 by default and rarely more than a few thousand), and the pool
	// keeps as many idle: 1,000 per instance is more than nearly any server accepts from all
	// instances together, and past it a connection pooler (PgBouncer) is the tool. On SQLite
	// these are read connections, which help no further than the cores.
	maxDBConns = 1000
	// maxWriterWorkers bounds LUPA_WRITER_WORKERS. Each worker holds a connection of the
	// pool in a write transaction; a few let one batch's commit overlap the next batch's
	// statements, more only wait on the same chain-head locks and take connections from
	// readers.
	maxWriterWorkers = 32
	// maxWriterBatch bounds LUPA_WRITER_MAX_BATCH. Every request of a batch waits for the
	// whole batch's commit, the writer's queue holds twice a batch, and a batch locks its
	// subjects' chain heads with one list of bound parameters, which SQLite caps at 32,766
	// per statement (PostgreSQL at 65,535): 10,000 stays well under both, and far above the
	// default of 256 and the batches the benchmarks measure (tens, bench/README.md).
	maxWriterBatch = 10_000
	// maxConnectorInstances bounds LUPA_CONNECTOR_INSTANCES. Each instance keeps to its
	// share of a vendor's documented limits, at least one call; by 750 instances every share
	// (the largest limit is Klaviyo's 750 a minute) is that one call, so larger numbers
	// change nothing and can only be a mistake.
	maxConnectorInstances = 1000
)

// loadConfig reads the environment through getenv (os.Getenv in main, a map in tests).
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:                 str(getenv, "LUPA_ADDR", ":8080"),
		MetricsAddr:          str(getenv, "LUPA_METRICS_ADDR", "127.0.0.1:9090"),
		DatabaseURL:          getenv("LUPA_DATABASE_URL"),
		DataDir:              str(getenv, "LUPA_DATA_DIR", "./lupa-data"),
		MasterKey:            getenv("LUPA_MASTER_KEY"),
		MasterKeyFile:        getenv("LUPA_MASTER_KEY_FILE"),
		LogLevel:             str(getenv, "LUPA_LOG_LEVEL", "info"),
		LogFormat:            str(getenv, "LUPA_LOG_FORMAT", "json"),
		TrustedProxies:       list(getenv("LUPA_TRUSTED_PROXIES")),
		SweepInterval:        time.Minute,
		RootInterval:         10 * time.Minute,
		ShutdownTimeout:      30 * time.Second,
		ReconcileInterval:    15 * time.Minute,
		DeliveryLogRetention: integrations.DefaultLogRetention,
	}
	var errs []string
	fail := func(name string, err error) { errs = append(errs, fmt.Sprintf("%s: %v", name, err)) }
	var err error
	if c.Demo, err = boolean(getenv, "LUPA_DEMO", true); err != nil {
		fail("LUPA_DEMO", err)
	}
	if c.AutoMigrate, err = boolean(getenv, "LUPA_AUTO_MIGRATE", true); err != nil {
		fail("LUPA_AUTO_MIGRATE", err)
	}
	if c.AllowPrivateWebhooks, err = boolean(getenv, "LUPA_ALLOW_PRIVATE_WEBHOOKS", false); err != nil {
		fail("LUPA_ALLOW_PRIVATE_WEBHOOKS", err)
	}
	var level slog.Level
	if level.UnmarshalText([]byte(c.LogLevel)) != nil {
		fail("LUPA_LOG_LEVEL", fmt.Errorf("must be debug, info, warn or error"))
	}
	if !strings.EqualFold(c.LogFormat, "json") && !strings.EqualFold(c.LogFormat, "text") {
		fail("LUPA_LOG_FORMAT", fmt.Errorf("must be json or text"))
	}
	// The per-IP limiter bounds abuse. One instance serves far fewer than a million requests
	// a second, so a larger rate or burst limits nothing: it is a slip of the keyboard that
	// would turn the limit off unnoticed (and NaN or Inf are no number of requests).
	if c.RateLimit, err = number(getenv, "LUPA_RATE_LIMIT", 30); err != nil || math.IsNaN(c.RateLimit) || c.RateLimit <= 0 {
		fail("LUPA_RATE_LIMIT", fmt.Errorf("must be a positive number of requests per second"))
	} else if c.RateLimit > maxRate {
		fail("LUPA_RATE_LIMIT", fmt.Errorf("must be at most %d requests per second", maxRate))
	}
	// A bucket of burst 0 refuses every request, and a pool or batch of 0 means nothing:
	// each has a least value; 0 workers is the dialect's default. Each also has a greatest
	// value, past which it only costs (the reasons are at the maxima).
	ints := []struct {
		name          string
		dst           *int
		def, min, max int
	}{
		{"LUPA_RATE_BURST", &c.RateBurst, 120, 1, maxRate}, {"LUPA_DB_MAX_CONNS", &c.DBMaxConns, 32, 1, maxDBConns},
		{"LUPA_WRITER_WORKERS", &c.WriterWorkers, 0, 0, maxWriterWorkers},
		{"LUPA_WRITER_MAX_BATCH", &c.WriterMaxBatch, 256, 1, maxWriterBatch},
		{"LUPA_CONNECTOR_INSTANCES", &c.ConnectorInstances, 1, 1, maxConnectorInstances},
	}
	for _, i := range ints {
		v, err := number(getenv, i.name, float64(i.def))
		switch {
		case err != nil || v != math.Trunc(v): // NaN and ±Inf too
			fail(i.name, fmt.Errorf("must be a whole number"))
		case v < float64(i.min):
			fail(i.name, fmt.Errorf("must be at least %d", i.min))
		case v > float64(i.max):
			fail(i.name, fmt.Errorf("must be at most %d", i.max))
		default:
			*i.dst = int(v)
		}
	}
	// Each interval has a least value, below which its job would run in a loop and take the
	// one SQLite writer or a vendor's rate limit, and a greatest, past which it would hardly
	// run at all; a retention, past which it keeps pseudonyms for no purpose.
	durations := []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
	}{
		// Expiry, outdated and end-of-evidence events are late by up to one interval.
		{"LUPA_SWEEP_INTERVAL", &c.SweepInterval, time.Second, 24 * time.Hour},
		// The newest events of a chain are proven by a signed root only once one is made.
		{"LUPA_ROOT_INTERVAL", &c.RootInterval, time.Second, 24 * time.Hour},
		// Requests in flight need some time; a load balancer waits no hour.
		{"LUPA_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, time.Second, time.Hour},
		// Each reconcile reads the vendors' lists, at a cost to their rate limits; an
		// unsubscribe made at a vendor must come back at least daily.
		{"LUPA_RECONCILE_INTERVAL", &c.ReconcileInterval, time.Minute, 24 * time.Hour},
		// The log holds pseudonyms: ten years is more than any evidence period asks.
		{"LUPA_DELIVERY_LOG_RETENTION", &c.DeliveryLogRetention, time.Hour, 10 * 8760 * time.Hour},
	}
	for _, d := range durations {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		switch {
		case err != nil:
			fail(d.name, fmt.Errorf("must be a duration such as 30s or 10m"))
		case dur < d.min || dur > d.max:
			fail(d.name, fmt.Errorf("must be between %s and %s", d.min, d.max))
		default:
			*d.dst = dur
		}
	}
	// Checked by the parser that will use the list, entry by entry, so the two never disagree.
	for _, p := range c.TrustedProxies {
		if _, err := identityweb.NewClientIPs([]string{p}); err != nil {
			fail("LUPA_TRUSTED_PROXIES", fmt.Errorf("%q is not an IP address or CIDR", p))
		}
	}
	c.PublicURL = strings.TrimRight(getenv("LUPA_PUBLIC_URL"), "/")
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost" + portOf(c.Addr)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("LUPA_PUBLIC_URL", fmt.Errorf("must be an absolute http(s) URL"))
	}
	c.FacebookDialogURL = str(getenv, "LUPA_FACEBOOK_DIALOG_URL", login.FacebookDialogURL)
	c.FacebookGraphURL = strings.TrimRight(str(getenv, "LUPA_FACEBOOK_GRAPH_URL", login.FacebookGraphURL), "/")
	// The Graph API gets the app's proof and the person's codes and tokens: https, as every
	// identity provider's URL, with plain http only on localhost or 127.0.0.1, where a
	// test's fake Facebook listens.
	for name, v := range map[string]string{"LUPA_FACEBOOK_DIALOG_URL": c.FacebookDialogURL, "LUPA_FACEBOOK_GRAPH_URL": c.FacebookGraphURL} {
		if !login.ValidURL(v) {
			fail(name, fmt.Errorf("must be an https URL without query or fragment (plain http only on localhost or 127.0.0.1, for tests)"))
		}
	}
	c.MailFrom = str(getenv, "LUPA_MAIL_FROM", defaultMailFrom(c.PublicURL))
	if _, err := netmail.ParseAddress(c.MailFrom); err != nil {
		fail("LUPA_MAIL_FROM", fmt.Errorf("must be an email address, optionally with a name: Lupa <noreply@example.fi>"))
	}
	if v := getenv("LUPA_SMTP_URL"); v != "" {
		if c.SMTP, err = parseSMTPURL(v, c.MailFrom); err != nil {
			fail("LUPA_SMTP_URL", err)
		}
	}
	// The mailbox page shows sign-in links to anyone who can reach it: on by default only
	// on the embedded default (a developer's machine), and only when mail is kept, not sent.
	if c.DevMailbox, err = boolean(getenv, "LUPA_DEV_MAILBOX", c.DatabaseURL == "" && c.SMTP == nil); err != nil {
		fail("LUPA_DEV_MAILBOX", err)
	} else if c.DevMailbox && getenv("LUPA_SMTP_URL") != "" {
		fail("LUPA_DEV_MAILBOX", fmt.Errorf("the development mailbox holds mail only when LUPA_SMTP_URL is empty"))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// defaultMailFrom is noreply@ the public URL's host name.
func defaultMailFrom(publicURL string) string {
	from := "Lupa <noreply@localhost>"
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		if a, err := netmail.ParseAddress("noreply@" + u.Hostname()); err == nil {
			from = "Lupa <" + a.Address + ">"
		}
	}
	return from
}

// parseSMTPURL reads smtp://user:password@host:port?tls=starttls|tls|none. Its errors
// never quote the URL: it holds a password.
func parseSMTPURL(raw, from string) (*mail.SMTPConfig, error) {
	const form = "must look like smtp://user:password@mail.example:587?tls=starttls (tls: starttls, tls or none)"
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New(form)
	}
	cfg := &mail.SMTPConfig{Host: u.Hostname(), From: from, TLS: mail.StartTLS}
	if p := u.Port(); p != "" {
		if cfg.Port, err = strconv.Atoi(p); err != nil || cfg.Port < 1 || cfg.Port > 65535 {
			return nil, errors.New("the port must be 1–65535")
		}
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New(form)
	}
	for k := range q {
		if k != "tls" {
			return nil, fmt.Errorf("unknown parameter %q; %s", k, form)
		}
	}
	switch q.Get("tls") {
	case "", "starttls":
	case "tls":
		cfg.TLS = mail.ImplicitTLS
	case "none":
		cfg.TLS = mail.NoTLS
	default:
		return nil, errors.New(form)
	}
	// The sender checks the rest (credentials without TLS, line breaks) before anything
	// is sent; checking here stops Lupa at start instead.
	if _, err := mail.NewSMTP(*cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "80" {
		return ""
	}
	return ":" + port
}

func str(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

func boolean(getenv func(string) string, name string, def bool) (bool, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseBool(v)
}

func number(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseFloat(v, 64)
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func osGetenv(name string) string { return os.Getenv(name) }
