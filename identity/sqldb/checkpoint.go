package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/libtnb/sqlite"
	"gorm.io/gorm"
)

// SQLite checkpoints. In WAL mode a commit appends the pages it changed to the -wal file,
// and a checkpoint copies them back into the database file. By default SQLite checkpoints
// on the connection that committed, whenever the WAL passes 1,000 pages: under load that
// is the one writer, several times a second, copying megabytes and syncing the database
// file while every request waiting for the next group commit waits with it.
//
// Lupa copies from a connection of its own instead, every checkpointEvery, in PASSIVE
// mode, which never waits for and never blocks the writer or a reader, and which runs on
// the other core. The writer keeps an automatic checkpoint, at walAutoCheckpoint pages, as
// the backstop that bounds the WAL: a PASSIVE checkpoint cannot start the WAL again from
// its beginning while commits keep arriving, the writer's own can. By the time the writer
// gets there the background has copied nearly everything, so only the tail is left to it.
const (
	checkpointEvery   = 20 * time.Millisecond
	walAutoCheckpoint = 4000 // pages (16 MiB)
)

// checkpointer runs PASSIVE checkpoints in the background until closed.
type checkpointer struct {
	db     *sql.DB
	cancel context.CancelFunc
	done   chan struct{}
}

func startCheckpointer(path string) (*checkpointer, error) {
	g, err := gorm.Open(sqlite.Open(sqliteDSN(path, false)), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite checkpointer %s: %w", path, err)
	}
	db, err := g.DB()
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	every(ctx, checkpointEvery, func() {
		// With nothing new in the WAL this takes a lock and returns: no I/O. An error (a
		// full disk, say) is the writer's to report; the next tick tries again.
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	})
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func (c *checkpointer) close() error {
	c.cancel()
	<-c.done
	return c.db.Close()
}
