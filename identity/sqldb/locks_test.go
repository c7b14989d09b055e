package sqldb_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestIsLockConflict: two transactions that lock two rows in opposite orders deadlock;
// PostgreSQL ends one of them, and IsLockConflict recognises that error (through GORM,
// as callers see it), while a unique violation is not one.
func TestIsLockConflict(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.Postgres)
	if err := db.Write.Exec("CREATE TABLE lock_probe (id int PRIMARY KEY, v int)").Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Write.Exec("INSERT INTO lock_probe VALUES (1, 0), (2, 0)").Error; err != nil {
		t.Fatal(err)
	}
	a, b := db.Write.Begin(), db.Write.Begin()
	defer a.Rollback()
	defer b.Rollback()
	if err := a.Exec("UPDATE lock_probe SET v = v + 1 WHERE id = 1").Error; err != nil {
		t.Fatal(err)
	}
	if err := b.Exec("UPDATE lock_probe SET v = v + 1 WHERE id = 2").Error; err != nil {
		t.Fatal(err)
	}
	// Each takes the other's row. PostgreSQL ends one; that one rolls back, which lets the
	// other have the row.
	second := func(tx *gorm.DB, id int) <-chan error {
		out := make(chan error, 1)
		go func() {
			err := tx.Exec("UPDATE lock_probe SET v = v + 1 WHERE id = ?", id).Error
			if err != nil {
				tx.Rollback()
			}
			out <- err
		}()
		return out
	}
	doneA := second(a, 2)
	sqldbtest.WaitForLockWait(t, db)
	doneB := second(b, 1)
	errA, errB := <-doneA, <-doneB
	victim := errors.Join(errA, errB)
	if (errA == nil) == (errB == nil) {
		t.Fatalf("want exactly one victim: a %v, b %v", errA, errB)
	}
	if !sqldb.IsLockConflict(victim) {
		t.Fatalf("IsLockConflict(%v) = false", victim)
	}
	a.Rollback()
	b.Rollback()
	dup := db.Write.Exec("INSERT INTO lock_probe VALUES (1, 0)").Error
	if dup == nil || sqldb.IsLockConflict(dup) || sqldb.IsLockConflict(context.Canceled) {
		t.Fatalf("a unique violation (%v) or a cancellation counted as a lock conflict", dup)
	}
}
