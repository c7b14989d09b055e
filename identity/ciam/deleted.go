package ciam

import (
	"context"
	"encoding/binary"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Deleted users. After a user.deleted, Lupa remembers for a while that the CIAM deleted the
// user, and when: the CIAM's tokens for the user issued at or before then are refused, and
// the CIAM's events about the user sent at or before then (late, retried, out of order) do
// not bring the person back. What is kept is only that: a keyed hash of the tenant, the
// issuer and the user's sub (under a lookup key of the keyring, so the table alone names no
// one) and the deletion's time, for deletedUserRetention.

// DeletedUserRetention is how long a deletion is remembered: far longer than a token lives
// (MaxTokenLifetime) and than webhook senders retry (Standard Webhooks senders retry for
// days), and short enough that the hash is not kept for nothing.
const DeletedUserRetention = 30 * 24 * time.Hour

// deletedUserInput is what a deleted user's hash is made of: the idp identifier in its
// tenant, with a label of its own so that it never equals the identifier's lookup hash.
func deletedUserInput(tenantID string, id identity.Identifier) []byte {
	return []byte("ciam_deleted_user\x00" + tenantID + "\x00" + id.Namespace + "\x00" + id.Value)
}

// deletedAt returns when the CIAM deleted the user id names, if Lupa still remembers it.
func (s *Service) deletedAt(ctx context.Context, db *gorm.DB, tenantID string, id identity.Identifier) (time.Time, bool, error) {
	hs := s.keys.Lookup(deletedUserInput(tenantID, id))
	sums := make([][]byte, len(hs))
	for i, h := range hs {
		sums[i] = h.Sum
	}
	var at []int64
	if err := db.WithContext(ctx).Raw(`SELECT deleted_at FROM ciam_deleted_users
		WHERE tenant_id = ? AND user_hash IN ? AND expires_at > ?`, tenantID, sums, s.now().UnixMilli()).
		Scan(&at).Error; err != nil {
		return time.Time{}, false, err
	}
	if len(at) == 0 {
		return time.Time{}, false, nil
	}
	latest := at[0]
	for _, t := range at[1:] {
		latest = max(latest, t)
	}
	return time.UnixMilli(latest).UTC(), true, nil
}

// markDeleted remembers, in tx, that the CIAM deleted the user at (a later deletion of the
// same user moves the time on, never back).
func (s *Service) markDeleted(tx *gorm.DB, tenantID string, id identity.Identifier, at time.Time) error {
	h := s.keys.Lookup(deletedUserInput(tenantID, id))[0]
	now := s.now()
	return tx.Exec(`INSERT INTO ciam_deleted_users (tenant_id, user_hash, hash_kid, deleted_at, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, user_hash) DO UPDATE SET
			deleted_at = CASE WHEN excluded.deleted_at > ciam_deleted_users.deleted_at THEN excluded.deleted_at ELSE ciam_deleted_users.deleted_at END,
			expires_at = excluded.expires_at`,
		tenantID, h.Sum, h.KeyID, at.UnixMilli(), now.Add(DeletedUserRetention).UnixMilli()).Error
}

// lockUser serialises, on PostgreSQL, the transactions of tx's kind about one CIAM user: a
// user.created that checks for a deletion and creates the person, and the user.deleted
// that records the deletion, so that one sees the other's work. (SQLite has one writer.)
func (s *Service) lockUser(tx *gorm.DB, tenantID string, id identity.Identifier) error {
	if s.db.Dialect != sqldb.Postgres {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", s.userLockKey(tenantID, id)).Error
}

// userLockKey is the advisory lock key of one CIAM user: the first 8 bytes of its keyed hash.
func (s *Service) userLockKey(tenantID string, id identity.Identifier) int64 {
	h := s.keys.Lookup(deletedUserInput(tenantID, id))[0]
	return int64(binary.BigEndian.Uint64(h.Sum[:8]))
}

// lockUsers takes lockUser on both users, in the order of their lock keys, so that
// transactions locking the same pair cannot deadlock.
func (s *Service) lockUsers(tx *gorm.DB, tenantID string, a, b identity.Identifier) error {
	if s.db.Dialect != sqldb.Postgres {
		return nil
	}
	ka, kb := s.userLockKey(tenantID, a), s.userLockKey(tenantID, b)
	if kb < ka {
		ka, kb = kb, ka
	}
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", ka).Error; err != nil || ka == kb {
		return err
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", kb).Error
}

// staleForDeleted says whether an event sent at sentAt (nil: the event has no timestamp)
// about a user is older than (or as old as) the user's deletion: then it must not bring the
// person back. An event without a timestamp cannot be shown to be newer, so it is taken as
// older.
func (s *Service) staleForDeleted(ctx context.Context, db *gorm.DB, tenantID string, id identity.Identifier, sentAt *time.Time) (bool, error) {
	deleted, ok, err := s.deletedAt(ctx, db, tenantID, id)
	if err != nil || !ok {
		return false, err
	}
	return sentAt == nil || sentAt.UnixMilli() <= deleted.UnixMilli(), nil
}
