// Package sqldb opens Lupa's database — PostgreSQL in production, SQLite as the embedded
// default — with the settings each needs, and holds the few helpers that differ by dialect.
//
// SQLite allows one writer at a time. Lupa gives it exactly one write connection, shared by
// everything that writes (the consent writer's group commits, admin changes, background
// jobs, sessions), and a separate pool of read connections that run beside it in WAL mode.
// PostgreSQL gets one pool for both.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialects.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// DB is an open database: Write for transactions that change data, Read for queries.
// On PostgreSQL both are the same pool.
type DB struct {
	Write   *gorm.DB
	Read    *gorm.DB
	Dialect string
	// Location is a description of where the data lives, without credentials.
	Location string

	ckpt *checkpointer // SQLite only
}

// Options tune the pools.
type Options struct {
	MaxConns int // PostgreSQL pool size; SQLite read pool size
}

// IsPostgresURL reports whether url names a PostgreSQL database (postgres:// or
// postgresql://).
func IsPostgresURL(rawURL string) bool {
	return strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://")
}

// SQLiteFile returns the SQLite file url names, and false when url is not SQLite's: empty
// means lupa.db under dataDir, sqlite:PATH names a file.
func SQLiteFile(rawURL, dataDir string) (string, bool) {
	switch {
	case rawURL == "":
		return filepath.Join(dataDir, "lupa.db"), true
	case strings.HasPrefix(rawURL, "sqlite:"):
		return strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//"), true
	}
	return "", false
}

// Open connects to url: empty means an SQLite file lupa.db under dataDir; postgres:// or
// postgresql:// means PostgreSQL; sqlite:PATH names an SQLite file.
func Open(ctx context.Context, rawURL, dataDir string, opt Options) (*DB, error) {
	if opt.MaxConns <= 0 {
		opt.MaxConns = 16
	}
	if path, ok := SQLiteFile(rawURL, dataDir); ok {
		if rawURL == "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("create data directory: %w", err)
			}
		}
		return openSQLite(ctx, path, opt)
	}
	if IsPostgresURL(rawURL) {
		return openPostgres(ctx, rawURL, opt)
	}
	return nil, errors.New("LUPA_DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
}

func openPostgres(ctx context.Context, rawURL string, opt Options) (*DB, error) {
	g, err := gorm.Open(postgres.New(postgres.Config{DSN: rawURL}), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(opt.MaxConns)
	sqlDB.SetMaxIdleConns(opt.MaxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to postgres at %s: %w", redact(rawURL), err)
	}
	return &DB{Write: g, Read: g, Dialect: Postgres, Location: redact(rawURL)}, nil
}

// sqliteDSN sets what every connection needs: WAL so readers never block the writer,
// synchronous=FULL so an acknowledged commit survives power loss, a busy timeout for the
// rare second process, and IMMEDIATE transactions so a writer takes the lock up front
// instead of failing half-way. The writer checkpoints only as the backstop (checkpoint.go).
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutoCheckpoint))
	}
	return "file:" + uriPath.Replace(path) + "?" + q.Encode()
}

// uriPath escapes what a file: URI would read as other than the path: the driver splits
// the name at its first '?', and SQLite ends the path at '?' or '#' and decodes '%HH'.
// Unescaped, a data directory such as /srv/lupa#2 would open /srv/lupa.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

func openSQLite(ctx context.Context, path string, opt Options) (*DB, error) {
	w, err := gorm.Open(sqlite.Open(sqliteDSN(path, false)), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	wdb, _ := w.DB()
	wdb.SetMaxOpenConns(1) // the one writer
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := wdb.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := gorm.Open(sqlite.Open(sqliteDSN(path, true)), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	rdb, _ := r.DB()
	rdb.SetMaxOpenConns(opt.MaxConns)
	rdb.SetMaxIdleConns(opt.MaxConns)
	rdb.SetConnMaxIdleTime(0)
	ckpt, err := startCheckpointer(path)
	if err != nil {
		_ = wdb.Close()
		_ = rdb.Close()
		return nil, err
	}
	return &DB{Write: w, Read: r, Dialect: SQLite, Location: path, ckpt: ckpt}, nil
}

// SQL returns the write pool's *sql.DB (migrations and job libraries want it).
func (d *DB) SQL() *sql.DB {
	s, _ := d.Write.DB()
	return s
}

// ReadSQL returns the read pool's *sql.DB.
func (d *DB) ReadSQL() *sql.DB {
	s, _ := d.Read.DB()
	return s
}

// Close closes both pools.
func (d *DB) Close() error {
	var errs []error
	if d.ckpt != nil {
		errs = append(errs, d.ckpt.close())
	}
	if s, err := d.Write.DB(); err == nil {
		errs = append(errs, s.Close())
	}
	if d.Read != d.Write {
		if s, err := d.Read.DB(); err == nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	s, err := d.Read.DB()
	if err != nil {
		return err
	}
	return s.PingContext(ctx)
}

// ForUpdate is the row-locking suffix of a SELECT: PostgreSQL locks rows; SQLite needs
// nothing, its write transaction already excludes every other writer.
func (d *DB) ForUpdate() string {
	if d.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// TryLock runs fn only if no other instance holds the named lock, so periodic work runs
// once across several instances on PostgreSQL. SQLite has one process, so fn just runs.
// It reports whether fn ran.
func (d *DB) TryLock(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	if d.Dialect != Postgres {
		return true, fn(ctx)
	}
	sqlDB := d.SQL()
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	var got bool
	key := lockKey(name)
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		return false, err
	}
	if !got {
		return false, nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key) //nolint:errcheck
	return true, fn(ctx)
}

// TryXactLock takes the named lock for the rest of tx, if no other transaction holds it,
// and reports whether it did. Unlike TryLock's, the lock lives and ends with the
// transaction that does the work: when an instance dies, PostgreSQL frees the lock and the
// rows the transaction held at the same moment, so the next instance never sees the one
// without the other. SQLite has one process and one writer, so it always succeeds.
func (d *DB) TryXactLock(tx *gorm.DB, name string) (bool, error) {
	if d.Dialect != Postgres {
		return true, nil
	}
	var got bool
	err := tx.Raw("SELECT pg_try_advisory_xact_lock(?)", lockKey(name)).Scan(&got).Error
	return got, err
}

// lockKey turns a lock name into PostgreSQL's 64-bit advisory lock key (FNV-1a).
func lockKey(name string) int64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return int64(h)
}

// redact removes the password from a database URL so it can be logged.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// IsUniqueViolation reports whether err is a unique-constraint failure on either dialect.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "UNIQUE constraint failed") ||
		strings.Contains(s, "duplicate key value")
}

// IsLockConflict reports whether err is PostgreSQL ending a transaction that it chose as
// the victim of a deadlock (40P01) or that failed to serialise (40001): the transaction
// did nothing, and running it again is the answer.
func IsLockConflict(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40P01" || pe.Code == "40001"
	}
	return false
}

// IsInfrastructure reports whether err is a failure of the database itself (connection lost,
// disk full, shutting down) rather than of one request's data. Group commit fails a whole
// batch only for these.
func IsInfrastructure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
		return true
	}
	s := err.Error()
	for _, marker := range []string{
		"SQLSTATE 08", "SQLSTATE 53", "SQLSTATE 57", "SQLSTATE 58", // connection, resources, operator, system
		"connection refused", "broken pipe", "connection reset", "database is locked",
		"disk I/O error", "database or disk is full", "bad connection", "closed pool",
	} {
		if strings.Contains(s, marker) {
			return true
		}
	}
	return false
}

// maxParams keeps one statement under both dialects' limits on bound parameters
// (PostgreSQL 65535, SQLite 32766).
const maxParams = 30000

// Inserter is what BulkInsert needs of a transaction: gorm's *gorm.DB satisfies it.
type Inserter interface {
	Exec(sql string, values ...any) *gorm.DB
}

// BulkInsert inserts rows into table with multi-row INSERT statements, as few as the
// parameter limits allow. suffix is appended to each statement (an ON CONFLICT clause).
func BulkInsert(tx *gorm.DB, table string, columns []string, rows [][]any, suffix string) error {
	if len(rows) == 0 {
		return nil
	}
	per := max(1, maxParams/len(columns))
	head := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES "
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	for start := 0; start < len(rows); start += per {
		end := min(start+per, len(rows))
		var b strings.Builder
		b.Grow(len(head) + (end-start)*(len(tuple)+2) + len(suffix))
		b.WriteString(head)
		args := make([]any, 0, (end-start)*len(columns))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			args = append(args, rows[i]...)
		}
		b.WriteString(suffix)
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}
