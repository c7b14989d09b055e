package accounts

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// CookieName is the session cookie: __Host- so that it is Secure, host-only and for the
// whole site (no subdomain can set or read it), HttpOnly and SameSite=Lax.
const CookieName = "__Host-lupa_session"

// Session is a signed-in person's session.
type Session struct {
	TenantID  string
	AccountID string
	SubjectID string
	// Token is the cookie's value; only its hash is stored. Set when the session starts.
	Token     string
	ExpiresAt time.Time
	// CreatedAt is when the person signed in.
	CreatedAt time.Time
	tokenHash []byte
}

type sessionRow struct {
	TenantID   string `gorm:"primaryKey"`
	TokenHash  []byte `gorm:"primaryKey"`
	AccountID  string
	SubjectID  string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
	LastSeenAt int64
	ExpiresAt  int64
	RevokedAt  *int64
}

func (sessionRow) TableName() string { return "sessions" }

// startSession starts a new session for the account in tx: a new random id at every
// sign-in, so a session id planted before sign-in (fixation) is worth nothing.
func (s *Service) startSession(tx *gorm.DB, a *accountRow) (*Session, error) {
	now := s.now()
	token := newToken()
	row := sessionRow{TenantID: a.TenantID, TokenHash: hashToken(token), AccountID: a.ID, SubjectID: a.SubjectID,
		CreatedAt: now.UnixMilli(), LastSeenAt: now.UnixMilli(), ExpiresAt: now.Add(s.opt.SessionAbsolute).UnixMilli()}
	if err := tx.Create(&row).Error; err != nil {
		return nil, err
	}
	return &Session{TenantID: a.TenantID, AccountID: a.ID, SubjectID: a.SubjectID, Token: linkToken(a.TenantID, token),
		ExpiresAt: time.UnixMilli(row.ExpiresAt), CreatedAt: time.UnixMilli(row.CreatedAt), tokenHash: row.TokenHash}, nil
}

// errNoSession is what Session answers for a cookie that names no live session.
var errNoSession = &identity.Error{Code: identity.EUnauthorized, Message: "sign in first"}

// Session returns the live session a cookie names: not revoked, not past its absolute
// lifetime, and used within the idle timeout. Use keeps it alive.
func (s *Service) Session(ctx context.Context, cookie string) (*Session, error) {
	tenantID, token, ok := SplitToken(cookie)
	if !ok {
		return nil, errNoSession
	}
	now := s.now()
	var r sessionRow
	err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND token_hash = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?",
		tenantID, hashToken(token), now.UnixMilli(), now.Add(-s.opt.SessionIdle).UnixMilli()).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	// Writing last_seen_at on every request would make every page a write; a minute's
	// precision is enough for a 30-minute idle timeout.
	if now.UnixMilli()-r.LastSeenAt > time.Minute.Milliseconds() {
		if err := s.db.Write.WithContext(ctx).Model(&sessionRow{}).Where("tenant_id = ? AND token_hash = ?", r.TenantID, r.TokenHash).
			Update("last_seen_at", now.UnixMilli()).Error; err != nil {
			return nil, err
		}
	}
	return &Session{TenantID: r.TenantID, AccountID: r.AccountID, SubjectID: r.SubjectID, ExpiresAt: time.UnixMilli(r.ExpiresAt),
		CreatedAt: time.UnixMilli(r.CreatedAt), tokenHash: r.TokenHash}, nil
}

// SignOut ends one session.
func (s *Service) SignOut(ctx context.Context, sess *Session) error {
	return s.db.Write.WithContext(ctx).Model(&sessionRow{}).Where("tenant_id = ? AND token_hash = ?", sess.TenantID, sess.tokenHash).
		Update("revoked_at", s.now().UnixMilli()).Error
}

// SignOutEverywhere ends every session of the account, and the changes of address waiting
// for their links (shutOut).
func (s *Service) SignOutEverywhere(ctx context.Context, sess *Session) error {
	now := s.now().UnixMilli()
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return shutOut(tx, sess.TenantID, sess.AccountID, now)
	})
}

func revokeAll(tx *gorm.DB, tenantID, accountID string, now int64) error {
	return tx.Model(&sessionRow{}).Where("tenant_id = ? AND account_id = ? AND revoked_at IS NULL", tenantID, accountID).
		Update("revoked_at", now).Error
}

// Delete deletes the signed-in person's account: it stops signing in (every session ends,
// no link works), and an erasure request is opened for the person in the same
// transaction, for the data-subject-request work to assess against legal retention. The
// person's consents are withdrawn by the caller (consent's writer), which returns the
// address the account had (to name the person there).
func (s *Service) Delete(ctx context.Context, sess *Session) (email string, err error) {
	a, err := s.Get(ctx, sess.TenantID, sess.AccountID)
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ? AND status = ?", a.TenantID, a.ID, "active").
			Updates(map[string]any{"status": "deleted", "deleted_at": now.UnixMilli(), "updated_at": now.UnixMilli(),
				"password_hash": nil, "name_ct": nil, "name_kid": nil}).Error; err != nil {
			return err
		}
		if err := revokeAll(tx, a.TenantID, a.ID, now.UnixMilli()); err != nil {
			return err
		}
		if err := tx.Model(&tokenRow{}).Where("tenant_id = ? AND account_id = ? AND used_at IS NULL", a.TenantID, a.ID).
			Update("used_at", now.UnixMilli()).Error; err != nil {
			return err
		}
		_, _, err := s.ids.OpenErasureRequest(ctx, tx, a.TenantID, a.SubjectID, "account", now)
		return err
	})
	return a.Email, err
}
