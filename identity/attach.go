package identity

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// AttachIdentifier adds an identifier to an existing subject, in tx. It never moves an
// identifier: when the identifier already names another subject, nothing changes and that
// subject is returned as owner (linking two subjects is a merge, decided elsewhere). It
// reports whether the identifier was added; an identifier the subject already has is not an
// error.
func (s *Service) AttachIdentifier(ctx context.Context, tx *gorm.DB, subj *Subject, id Identifier) (added bool, owner string, err error) {
	if err := id.Validate("identifier"); err != nil {
		return false, "", err
	}
	if err := s.LockLive(ctx, tx, subj); err != nil {
		return false, "", err
	}
	var owners []string
	if err := tx.WithContext(ctx).Raw(`SELECT subject_id FROM identifiers
		WHERE tenant_id = ? AND kind = ? AND namespace = ? AND value_hash IN ?`,
		subj.TenantID, id.Kind, id.Namespace, s.LookupHashes(subj.TenantID, id)).Scan(&owners).Error; err != nil {
		return false, "", err
	}
	if len(owners) > 0 {
		return false, owners[0], nil
	}
	ni, err := s.PrepareIdentifier(subj.TenantID, subj, id, s.now())
	if err != nil {
		return false, "", err
	}
	// A concurrent attach of the same identifier loses on the primary key; the caller's
	// transaction rolls back and a retry finds the owner.
	if err := tx.WithContext(ctx).Exec("INSERT INTO identifiers ("+strings.Join(sqldb.Names(IdentifierColumns), ", ")+
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ni.Row()...).Error; err != nil {
		return false, "", err
	}
	return true, subj.ID, nil
}

// ErrSubjectGone answers a change to a person who was erased after the caller had read
// them: nothing was written. Looked up again, the identifier names no one.
var ErrSubjectGone = Errorf(EConflict, "the person was erased meanwhile: nothing was written")

// LockLive locks the subject's row for the rest of tx (on PostgreSQL; SQLite's one writer
// already excludes every other write) and fails with ErrSubjectGone when the subject was
// erased since the caller read it. Whatever tx then adds to the subject (an identifier, an
// account) commits before an erasure reads the subject, or waits for it and is refused:
// the erasure locks the same row before it looks for a live account (consent/erase.go).
func (s *Service) LockLive(ctx context.Context, tx *gorm.DB, subj *Subject) error {
	var rows []struct{ ErasedAt *int64 }
	st := LockSubject(s.db, subj.TenantID, subj.ID)
	if err := tx.WithContext(ctx).Raw(st.SQL, st.Args...).Scan(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 || rows[0].ErasedAt != nil {
		return ErrSubjectGone
	}
	return nil
}

// LockSubject is the statement that locks a subject's row until the transaction ends (on
// PostgreSQL) and reads whether it was erased: where an erasure and an addition to the same
// person meet (LockLive; consent's erasure runs it in the writer's transaction).
func LockSubject(db *sqldb.DB, tenantID, subjectID string) sqldb.Statement {
	return sqldb.Statement{SQL: "SELECT erased_at FROM subjects WHERE tenant_id = ? AND id = ?" + db.ForUpdate(),
		Args: []any{tenantID, subjectID}}
}
