package accounts

import (
	"time"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// EraseStatements erase, in an erasure's transaction (consent's OnErase), what the account
// of an erased subject keeps about the person: its password hash, the name an identity
// provider gave, the birth year, its sessions and its one-time links (an email change's
// carries the new address). The account row stays, closed, so that what refers to it
// still does; its email address and identities were the subject's identifiers, destroyed
// with them. The evidence sweep never erases a subject whose account is live; an erasure
// that was asked for closes the account with the rest.
func EraseStatements(tenantID, subjectID string, at time.Time) []sqldb.Statement {
	ms := at.UnixMilli()
	ofSubject := "SELECT id FROM accounts WHERE tenant_id = ? AND subject_id = ?"
	return []sqldb.Statement{
		{SQL: "DELETE FROM sessions WHERE tenant_id = ? AND account_id IN (" + ofSubject + ")",
			Args: []any{tenantID, tenantID, subjectID}},
		{SQL: "DELETE FROM email_tokens WHERE tenant_id = ? AND account_id IN (" + ofSubject + ")",
			Args: []any{tenantID, tenantID, subjectID}},
		{SQL: `UPDATE accounts SET status = CASE WHEN status = 'active' THEN 'deleted' ELSE status END,
			deleted_at = COALESCE(deleted_at, ?), password_hash = NULL, name_ct = NULL, name_kid = NULL, birth_year = NULL,
			updated_at = ? WHERE tenant_id = ? AND subject_id = ?`,
			Args: []any{ms, ms, tenantID, subjectID}},
	}
}
