package connector

import (
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// EraseStatements forget, in an erasure's transaction (consent's OnErase, and the data
// map's once every system confirmed an erasure request), the addresses the connectors last
// wrote for an erased subject: they are the person's email address.
func EraseStatements(tenantID, subjectID string, _ time.Time) []sqldb.Statement {
	return []sqldb.Statement{{SQL: "DELETE FROM connector_members WHERE tenant_id = ? AND subject_id = ?",
		Args: []any{tenantID, subjectID}}}
}
