package identity

import (
	"time"

	"gorm.io/gorm"
)

// A company's CIAM may merge one of its users into another (user.merged) and then delete the
// merged user, as many do. The merge moves the merged user's identifier to the remaining
// person, so a deletion that only looked the identifier up would withdraw and erase the
// person who stays. The identifier is therefore marked merged away when the merge is
// applied, and its deletion ends that alias only.

// MarkMergedAway marks, in tx, the identifier of a user that its CIAM merged into another.
// A mark already there keeps its time.
func (s *Service) MarkMergedAway(tx *gorm.DB, tenantID string, id Identifier, at time.Time) error {
	return tx.Exec(`UPDATE identifiers SET merged_away_at = ?
		WHERE tenant_id = ? AND kind = ? AND namespace = ? AND value_hash IN ? AND merged_away_at IS NULL`,
		at.UnixMilli(), tenantID, id.Kind, id.Namespace, s.LookupHashes(tenantID, id)).Error
}

// DropMergedAway deletes, in tx, the identifier if it is marked merged away, and says whether
// it was: the user it named is gone, and the person it pointed to stays as they are.
func (s *Service) DropMergedAway(tx *gorm.DB, tenantID string, id Identifier) (bool, error) {
	res := tx.Exec(`DELETE FROM identifiers
		WHERE tenant_id = ? AND kind = ? AND namespace = ? AND value_hash IN ? AND merged_away_at IS NOT NULL`,
		tenantID, id.Kind, id.Namespace, s.LookupHashes(tenantID, id))
	return res.RowsAffected > 0, res.Error
}
