package connector

import (
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// EraseStatements forget, in an erasure's transaction (consent's OnErase, and the data
// map's once every system confirmed an erasure request), the addresses the connectors last
// wrote for an erased subject: they are the person's email address.
func EraseStatements(tenantID, subjectID string, _ time.Time) []sqldb.Statement {
	return []sqldb.Statement{{SQL: "DELETE FROM connector_members WHERE tenant_id = ? AND subject_id = ?",
		Args: []any{tenantID, subjectID}}}
}

// mergedIntoSQL lists the subjects whose merged_into chain ends at a subject: its devices,
// and persons merged into it with their own devices.
const mergedIntoSQL = `WITH RECURSIVE merged(id) AS (
		SELECT id FROM subjects WHERE tenant_id = ? AND merged_into = ?
		UNION SELECT s.id FROM subjects s JOIN merged m ON s.merged_into = m.id WHERE s.tenant_id = ?)
	SELECT id FROM merged ORDER BY id`

// PersonSubjects is everything an erasure of the subject must reach: the person its merges
// end at (the subject itself when it was never merged) and every subject merged into that
// person since, in turn. They are one person, and a merge moves identifiers but not what
// a connector wrote under the old subject (connector_members): an erasure that looked at
// one subject only would leave the others' addresses at the vendor and in Lupa. The person
// comes first.
func PersonSubjects(db *gorm.DB, tenantID, subjectID string) ([]string, error) {
	person := subjectID
	seen := []string{person}
	for range 10 { // merges point one way; a bad row must not loop forever
		var next []struct{ MergedInto *string }
		if err := db.Raw(`SELECT merged_into FROM subjects WHERE tenant_id = ? AND id = ?`, tenantID, person).
			Scan(&next).Error; err != nil {
			return nil, err
		}
		if len(next) == 0 || next[0].MergedInto == nil || *next[0].MergedInto == "" || slices.Contains(seen, *next[0].MergedInto) {
			break
		}
		person = *next[0].MergedInto
		seen = append(seen, person)
	}
	var merged []string
	if err := db.Raw(mergedIntoSQL, tenantID, person, tenantID).Scan(&merged).Error; err != nil {
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
