package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Statements prepares each SQL text once per pool and keeps it, so hot paths skip parsing
// and planning. Multi-row inserts come in a few fixed shapes (insertShapes rows), so a
// batch of any size uses at most a handful of prepared statements. Placeholders are
// written as ? and become $1, $2 … on PostgreSQL.
type Statements struct {
	db      *sql.DB
	dialect string
	mu      sync.Mutex
	cache   map[string]*sql.Stmt
}

// NewStatements returns a statement cache for one pool.
func NewStatements(db *sql.DB, dialect string) *Statements {
	return &Statements{db: db, dialect: dialect, cache: map[string]*sql.Stmt{}}
}

// insertShapes are the row counts of the prepared multi-row inserts, largest first.
var insertShapes = []int{64, 16, 4, 1}

// stmt returns the prepared statement for query, bound to tx when tx is not nil, and a
// function to call when done with it. Preparing on the pool needs a free connection, which
// a transaction on SQLite's one write connection does not have: a statement missing from
// the cache is then prepared on the transaction alone (Prepare the hot ones beforehand).
func (s *Statements) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, func(), error) {
	s.mu.Lock()
	st := s.cache[query]
	s.mu.Unlock()
	switch {
	case st != nil && tx != nil:
		return tx.StmtContext(ctx, st), func() {}, nil
	case st != nil:
		return st, func() {}, nil
	case tx != nil:
		ts, err := tx.PrepareContext(ctx, s.rebind(query))
		if err != nil {
			return nil, nil, err
		}
		return ts, func() { ts.Close() }, nil
	}
	st, err := s.prepare(ctx, query)
	return st, func() {}, err
}

// Prepare prepares queries on the pool and keeps them.
func (s *Statements) Prepare(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		if _, err := s.prepare(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// prepareInsert prepares every shape of SQLite's multi-row insert (see insert).
func (s *Statements) prepareInsert(ctx context.Context, table string, columns []string, suffix string) error {
	for _, n := range insertShapes {
		if _, err := s.prepare(ctx, insertSQL(table, columns, n, suffix)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Statements) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	st := s.cache[query]
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.rebind(query))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if old := s.cache[query]; old != nil {
		s.mu.Unlock()
		st.Close()
		return old, nil
	}
	s.cache[query] = st
	s.mu.Unlock()
	return st, nil
}

// rebind turns ? placeholders into PostgreSQL's numbered ones. Lupa's SQL has no ? inside
// string literals.
func (s *Statements) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	return rebindPostgres(q)
}

// Rebind writes ? placeholders the way the dialect wants them.
func Rebind(dialect, q string) string {
	if dialect != Postgres {
		return q
	}
	return rebindPostgres(q)
}

func rebindPostgres(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Exec runs a prepared statement inside tx.
func (s *Statements) Exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, done, err := s.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	defer done()
	return st.ExecContext(ctx, args...)
}

// Query runs a prepared query inside tx, or on the pool when tx is nil; scan reads each row.
func (s *Statements) Query(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	st, done, err := s.stmt(ctx, tx, query)
	if err != nil {
		return err
	}
	defer done()
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// insert writes rows into table on SQLite with the fewest prepared multi-row statements of
// the fixed shapes; suffix (an ON CONFLICT clause) ends each statement, and scan, when not
// nil, reads the rows its RETURNING clause returns.
func (s *Statements) insert(ctx context.Context, tx *sql.Tx, table string, columns []string, rows [][]any, suffix string, scan func(*sql.Rows) error) error {
	for len(rows) > 0 {
		n := 1
		for _, shape := range insertShapes {
			if shape <= len(rows) {
				n = shape
				break
			}
		}
		args := make([]any, 0, n*len(columns))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		q := insertSQL(table, columns, n, suffix)
		if scan == nil {
			if _, err := s.Exec(ctx, tx, q, args...); err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
		} else if err := s.Query(ctx, tx, q, args, scan); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// insertSQL is SQLite's multi-row INSERT. It says OR FAIL: a constraint that fails stops
// the statement and leaves the rows it already inserted, where SQLite's default (ABORT)
// undoes them. To undo them, SQLite copies every page the statement changes into a
// statement journal first, which under load spills to a temporary file: a quarter of all
// the bytes the write path wrote (BenchmarkWriterSQLiteBanner). Its only caller, the
// consent writer, rolls the whole transaction back on any error, so it never needs a
// statement undone alone. (An immediate foreign key still needs the journal: identifiers.)
func insertSQL(table string, columns []string, rows int, suffix string) string {
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	var b strings.Builder
	b.WriteString("INSERT OR FAIL INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(columns, ", "))
	b.WriteString(") VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	b.WriteString(suffix)
	return b.String()
}

// Close releases every prepared statement.
func (s *Statements) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.cache {
		st.Close()
	}
	s.cache = map[string]*sql.Stmt{}
}

// Column is a column of a multi-row insert and its PostgreSQL type: text, int8 (every
// integer column; the insert casts), bytea or bool.
type Column struct {
	Name   string
	PGType string
}

// Names returns the column names.
func Names(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// InsertColumns inserts rows (values in the order of cols) into table inside tx; suffix
// (an ON CONFLICT or RETURNING clause) ends the statement and scan, when not nil, reads
// what RETURNING returns. On PostgreSQL the rows travel as one array per column (cols
// name the types) and one statement inserts any number of them (INSERT … SELECT FROM
// unnest), so a batch costs one round trip per table; SQLite uses insert's fixed shapes.
func (s *Statements) InsertColumns(ctx context.Context, tx *sql.Tx, table string, cols []Column, rows [][]any, suffix string, scan func(*sql.Rows) error) error {
	if len(rows) == 0 {
		return nil
	}
	if s.dialect != Postgres {
		return s.insert(ctx, tx, table, Names(cols), rows, suffix, scan)
	}
	q := unnestSQL(table, cols, suffix)
	args, err := ColumnArrays(cols, rows)
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	if scan != nil {
		if err := s.Query(ctx, tx, q, args, scan); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		return nil
	}
	if _, err := s.Exec(ctx, tx, q, args...); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// PrepareColumns prepares what InsertColumns will run.
func (s *Statements) PrepareColumns(ctx context.Context, table string, cols []Column, suffix string) error {
	if s.dialect != Postgres {
		return s.prepareInsert(ctx, table, Names(cols), suffix)
	}
	_, err := s.prepare(ctx, unnestSQL(table, cols, suffix))
	return err
}

// UnnestSQL is the INSERT … SELECT FROM unnest statement of InsertColumns on PostgreSQL,
// with numbered placeholders, one array per column.
func UnnestSQL(table string, cols []Column, suffix string) string {
	return rebindPostgres(unnestSQL(table, cols, suffix))
}

// ColumnArrays turns rows into one typed slice per column, the arguments of UnnestSQL.
func ColumnArrays(cols []Column, rows [][]any) ([]any, error) {
	args := make([]any, len(cols))
	for i, c := range cols {
		a, err := column(rows, i, c.PGType)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		args[i] = a
	}
	return args, nil
}

func unnestSQL(table string, cols []Column, suffix string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(Names(cols), ", "))
	b.WriteString(") SELECT * FROM unnest(")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?::")
		b.WriteString(c.PGType)
		b.WriteString("[]")
	}
	b.WriteString(")")
	b.WriteString(suffix)
	return b.String()
}

// column gathers the i-th value of every row into a typed slice pgx sends as an array.
func column(rows [][]any, i int, pgType string) (any, error) {
	switch pgType {
	case "text":
		out := make([]string, len(rows))
		for r, row := range rows {
			v, ok := row[i].(string)
			if !ok {
				return nil, fmt.Errorf("want a string, have %T", row[i])
			}
			out[r] = v
		}
		return out, nil
	case "int8":
		out := make([]*int64, len(rows))
		for r, row := range rows {
			switch v := row[i].(type) {
			case int64:
				out[r] = &v
			case int:
				n := int64(v)
				out[r] = &n
			case *int64:
				out[r] = v
			case nil:
			default:
				return nil, fmt.Errorf("want an integer, have %T", row[i])
			}
		}
		return out, nil
	case "bytea":
		out := make([][]byte, len(rows))
		for r, row := range rows {
			switch v := row[i].(type) {
			case []byte:
				out[r] = v
			case nil:
			default:
				return nil, fmt.Errorf("want bytes, have %T", row[i])
			}
		}
		return out, nil
	case "bool":
		out := make([]bool, len(rows))
		for r, row := range rows {
			v, ok := row[i].(bool)
			if !ok {
				return nil, fmt.Errorf("want a bool, have %T", row[i])
			}
			out[r] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown column type %q", pgType)
}

// Cols builds columns from "name:type" specs, e.g. Cols("tenant_id:text", "seq:int8").
func Cols(specs ...string) []Column {
	out := make([]Column, len(specs))
	for i, s := range specs {
		name, typ, ok := strings.Cut(s, ":")
		if !ok {
			panic("sqldb: column spec without a type: " + s)
		}
		out[i] = Column{Name: name, PGType: typ}
	}
	return out
}

// Statement is one SQL statement with ? placeholders and its arguments.
type Statement struct {
	SQL  string
	Args []any
}
