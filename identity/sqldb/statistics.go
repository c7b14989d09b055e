package sqldb

import (
	"context"
	"log/slog"
	"time"
)

// KeepStatistics analyzes tables whose row count has grown several times over since they
// were last analyzed, every interval until ctx ends. PostgreSQL only.
//
// Why: Lupa's hot queries are prepared statements, and PostgreSQL settles on a generic plan
// after a few executions. A plan made while a table is nearly empty scans it sequentially,
// and it stays until the table is next analyzed — autovacuum looks only once a minute, so on
// a new database lookups run a hundred times slower for that minute. Analyzing early
// replaces those plans; once tables are large, autovacuum's own thresholds take over.
func (d *DB) KeepStatistics(ctx context.Context, log *slog.Logger, tables []string, interval time.Duration) {
	if d.Dialect != Postgres {
		return
	}
	analyzed := map[string]float64{}
	every(ctx, interval, func() {
		rows, err := d.Read.WithContext(ctx).Raw(`SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname IN ?`, tables).Rows()
		if err != nil {
			return
		}
		var grown []string
		for rows.Next() {
			var name string
			var n float64
			if rows.Scan(&name, &n) == nil && n >= 500 && n > 4*analyzed[name] {
				grown = append(grown, name)
				analyzed[name] = n
			}
		}
		rows.Close()
		for _, name := range grown {
			if err := d.Write.WithContext(ctx).Exec("ANALYZE " + name).Error; err != nil && ctx.Err() == nil {
				log.Warn("analyze", "table", name, "err", err)
			}
		}
	})
}
