package identity

import (
	"context"

	"gorm.io/gorm"
)

// SubjectByID returns one of the tenant's subjects by its id, read in tx (a transaction, or
// a plain connection), or ENotFound.
func (s *Service) SubjectByID(ctx context.Context, tx *gorm.DB, tenantID, id string) (*Subject, error) {
	var rows []subjectLookupRow
	if err := tx.WithContext(ctx).Raw(`SELECT id, kind, pseudonym, merged_into, erased_at, created_at FROM subjects
		WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, NotFound("subject")
	}
	r := rows[0]
	subj := &Subject{TenantID: tenantID, ID: r.ID, Kind: r.Kind, Erased: r.ErasedAt != nil, CreatedAt: ms(r.CreatedAt)}
	if r.Pseudonym != nil {
		subj.Pseudonym = *r.Pseudonym
	}
	if r.MergedInto != nil {
		subj.MergedInto = *r.MergedInto
	}
	return subj, nil
}

// Seal encrypts a small piece of personal data that is not an identifier (a person's name
// as an identity provider gave it) with the active data key; aad binds it to its row.
func (s *Service) Seal(plaintext, aad []byte) (kid string, ciphertext []byte, err error) {
	return s.keys.Encrypt(plaintext, aad)
}

// Unseal decrypts what Seal encrypted.
func (s *Service) Unseal(ctx context.Context, kid string, ciphertext, aad []byte) ([]byte, error) {
	return s.keys.Decrypt(ctx, kid, ciphertext, aad)
}
