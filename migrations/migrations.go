// Package migrations holds Lupa's forward-only SQL migrations, one folder per dialect,
// embedded in the binary, and applies them.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// provider builds a goose provider for the dialect ("postgres" or "sqlite"). On PostgreSQL
// it takes a session advisory lock, so instances that start together apply each migration
// exactly once: the first applies, the others wait and then find nothing pending.
func provider(db *sql.DB, dialect string) (*goose.Provider, error) {
	sub, err := fs.Sub(files, dialect)
	if err != nil {
		return nil, err
	}
	var opts []goose.ProviderOption
	var gd goose.Dialect
	switch dialect {
	case "postgres":
		gd = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case "sqlite":
		gd = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true))
	return goose.NewProvider(gd, db, sub, opts...)
}

// Up applies every pending migration and returns the versions it applied.
func Up(ctx context.Context, db *sql.DB, dialect string) ([]int64, error) {
	p, err := provider(db, dialect)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// Current reports whether the database schema has every migration this binary knows.
func Current(ctx context.Context, db *sql.DB, dialect string) (bool, error) {
	p, err := provider(db, dialect)
	if err != nil {
		return false, err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return false, err
	}
	return current >= target, nil
}
