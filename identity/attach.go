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
