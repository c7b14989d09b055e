package identity

import (
	"context"
	"slices"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/sqldb"
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

// maxMergeHops bounds a walk along merged_into: merges point one way, but a bad row must
// not loop forever.
const maxMergeHops = 10

// walkMerges follows the subject's merged_into chain in tx. It returns the subject the
// chain ends at, whether the chain ended (it did not when it loops or is longer than
// maxMergeHops: the walk then stops at the last subject not seen before), and whether
// every subject on the way exists.
func walkMerges(ctx context.Context, tx *gorm.DB, tenantID, subjectID string) (person string, ended, found bool, err error) {
	person = subjectID
	seen := []string{person}
	for range maxMergeHops {
		var next []struct{ MergedInto *string }
		if err := tx.WithContext(ctx).Raw(`SELECT merged_into FROM subjects WHERE tenant_id = ? AND id = ?`, tenantID, person).
			Scan(&next).Error; err != nil {
			return "", false, false, err
		}
		if len(next) == 0 {
			return person, true, false, nil
		}
		if next[0].MergedInto == nil || *next[0].MergedInto == "" {
			return person, true, true, nil
		}
		if slices.Contains(seen, *next[0].MergedInto) {
			return person, false, true, nil
		}
		person = *next[0].MergedInto
		seen = append(seen, person)
	}
	return person, false, true, nil
}

// PersonOf returns, in tx, the id of the person the subject's merges end at: the subject
// itself when it was never merged. A subject that does not exist is ENotFound; a chain
// that does not end (a bad row) is EConflict.
func PersonOf(ctx context.Context, tx *gorm.DB, tenantID, subjectID string) (string, error) {
	person, ended, found, err := walkMerges(ctx, tx, tenantID, subjectID)
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", NotFound("subject")
	case !ended:
		return "", Errorf(EConflict, "the subject's merges do not end")
	}
	return person, nil
}

// MergedInto lists the subjects whose merged_into chain ends at the subject, ordered by
// id: its devices, and persons merged into it with their own devices.
func MergedInto(tenantID, subjectID string) sqldb.Statement {
	return sqldb.Statement{SQL: `WITH RECURSIVE merged(id) AS (
		SELECT id FROM subjects WHERE tenant_id = ? AND merged_into = ?
		UNION SELECT s.id FROM subjects s JOIN merged m ON s.merged_into = m.id WHERE s.tenant_id = ?)
	SELECT id FROM merged ORDER BY id`, Args: []any{tenantID, subjectID, tenantID}}
}

// PersonSubjects returns, in tx, every subject that is the same person as the subject: the
// person its merges end at (the subject itself when it was never merged), first, and every
// subject merged into that person since, in turn (MergedInto). An erasure must reach them
// all: a merge moves identifiers, not what other systems wrote under the old subject. It
// never fails on a bad chain: a subject that does not exist is its own person, and a chain
// that does not end stops at its last new subject, so that an erasure still reaches what
// it can.
func PersonSubjects(ctx context.Context, tx *gorm.DB, tenantID, subjectID string) ([]string, error) {
	person, _, _, err := walkMerges(ctx, tx, tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	var merged []string
	st := MergedInto(tenantID, person)
	if err := tx.WithContext(ctx).Raw(st.SQL, st.Args...).Scan(&merged).Error; err != nil {
		return nil, err
	}
	out := []string{person}
	for _, id := range merged {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}
