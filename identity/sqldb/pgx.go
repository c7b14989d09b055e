package sqldb

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// WithPgx runs fn on the pgx connection under one of pool's connections, for what
// database/sql cannot do: pipelined batches and array parameters without a round trip
// each. The connection goes back to the pool when fn returns and is never used outside it.
func WithPgx(ctx context.Context, pool *sql.DB, fn func(*pgx.Conn) error) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("sqldb: the PostgreSQL driver is not pgx's")
		}
		return fn(c.Conn())
	})
}
