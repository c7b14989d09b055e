package accounts

import (
	"context"
	"net/url"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Registration is what the registration form sends.
type Registration struct {
	Email, Password, Language string
	BirthYear                 int // 0 when not asked
}

func (r *Registration) validate(now time.Time) error {
	var v identity.Validator
	v.Check(identity.ValidEmail(r.Email), "email", "must be an email address")
	if err := password.Policy(r.Password); err != nil {
		v.Check(false, "password", err.Error())
	}
	v.Check(r.BirthYear == 0 || (r.BirthYear >= now.Year()-120 && r.BirthYear <= now.Year()), "birth_year", "must be a year of birth")
	return v.Err()
}

// Register creates an account and emails a link that verifies the address. The account
// cannot sign in before that: otherwise anyone could take an address that is not theirs.
// When the address has an account already, its owner gets an email saying so and nil is
// returned, so that the form does not reveal who has an account.
func (s *Service) Register(ctx context.Context, tenantID, slug string, r Registration) (*Account, error) {
	r.Email = identity.NormalizeEmail(r.Email)
	if err := r.validate(s.now()); err != nil {
		return nil, err
	}
	existing, err := s.accountByEmail(ctx, s.db.Read, tenantID, r.Email)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		// The same hashing work as a new address, so that timing does not tell them apart.
		if err := s.hasher.Dummy(ctx, r.Password); err != nil {
			return nil, busyOr(err)
		}
		_ = s.send(ctx, r.Email, "exists", r.Language, s.link("/t/"+slug+"/signin"))
		return nil, nil
	}
	hash, err := s.hasher.Hash(ctx, r.Password)
	if err != nil {
		return nil, busyOr(err)
	}
	var acc *accountRow
	var link string
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		subj, _, err := s.ids.EnsurePerson(ctx, tx, tenantID, identity.Identifier{Kind: identity.IDEmail, Value: r.Email})
		if err != nil {
			return err
		}
		now := s.now().UnixMilli()
		acc = &accountRow{TenantID: tenantID, ID: identity.NewID(), SubjectID: subj.ID, PasswordHash: &hash,
			Language: Language(r.Language), Status: "active", CreatedAt: now, UpdatedAt: now}
		if r.BirthYear > 0 {
			acc.BirthYear = &r.BirthYear
		}
		if err := tx.Create(acc).Error; err != nil {
			return err
		}
		link, err = s.issue(tx, tenantID, acc.ID, LinkVerify, s.opt.VerifyTTL)
		return err
	})
	if isUnique(err) {
		// Two registrations of one address at once: the other one won.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_ = s.send(ctx, r.Email, "verify", r.Language, s.link("/account/verify?t="+url.QueryEscape(link)))
	return acc.domain(), nil
}

func isUnique(err error) bool { return err != nil && sqldb.IsUniqueViolation(err) }

// Verify uses a verification link: the address is confirmed and the person is signed in.
func (s *Service) Verify(ctx context.Context, link string) (*Session, error) {
	var sess *Session
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		a, err := s.consume(ctx, tx, link, LinkVerify)
		if err != nil {
			return err
		}
		now := s.now().UnixMilli()
		if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ? AND email_verified_at IS NULL", a.TenantID, a.ID).
			Updates(map[string]any{"email_verified_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		sess, err = s.startSession(tx, a)
		return err
	})
	return sess, err
}

// RequestSignInLink emails a one-time sign-in link to the address when it has a verified
// account; it answers the same either way.
func (s *Service) RequestSignInLink(ctx context.Context, tenantID, email, lang string) error {
	return s.requestLink(ctx, tenantID, email, lang, LinkSignIn, "signin", "/account/signin-link?t=")
}

// RequestReset emails a one-time password reset link when the address has an account; it
// answers the same either way.
func (s *Service) RequestReset(ctx context.Context, tenantID, email, lang string) error {
	return s.requestLink(ctx, tenantID, email, lang, LinkReset, "reset", "/account/reset?t=")
}

func (s *Service) requestLink(ctx context.Context, tenantID, email, lang, purpose, kind, path string) error {
	email = identity.NormalizeEmail(email)
	if !identity.ValidEmail(email) {
		return identity.FieldErrors("validation failed", identity.FieldError{Field: "email", Message: "must be an email address"})
	}
	// The link is made and mailed after the answer: an address with an account would
	// otherwise answer as late as the database and the mail server take, and one without at
	// once, and the time would tell who has an account however alike the pages read.
	s.later(ctx, func(ctx context.Context) {
		if err := s.sendLink(ctx, tenantID, email, lang, purpose, kind, path); err != nil {
			s.log.ErrorContext(ctx, "one-time link not sent", "kind", kind, "err", err)
		}
	})
	return nil
}

// sendLink mails a one-time link to the address when its account may have one.
func (s *Service) sendLink(ctx context.Context, tenantID, email, lang, purpose, kind, path string) error {
	a, err := s.accountByEmail(ctx, s.db.Read, tenantID, email)
	if err != nil || a == nil || (purpose == LinkSignIn && a.EmailVerifiedAt == nil) {
		return err
	}
	var link string
	if err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		link, err = s.issue(tx, tenantID, a.ID, purpose, s.opt.LinkTTL)
		return err
	}); err != nil {
		return err
	}
	if lang == "" {
		lang = a.Language
	}
	_ = s.send(ctx, email, kind, lang, s.link(path+url.QueryEscape(link)))
	return nil
}

// SignInWithLink uses a one-time sign-in link.
func (s *Service) SignInWithLink(ctx context.Context, link string) (*Session, error) {
	var sess *Session
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		a, err := s.consume(ctx, tx, link, LinkSignIn)
		if err != nil {
			return err
		}
		if err := s.clearFailures(tx, a); err != nil {
			return err
		}
		sess, err = s.startSession(tx, a)
		return err
	})
	return sess, err
}

// Reset uses a reset link to set a new password. Every session of the account ends, since
// someone else may have known the old password, and so does a change of address waiting
// for its link; the address counts as verified, since the link reached its mailbox. The
// person is signed in afresh.
func (s *Service) Reset(ctx context.Context, link, newPassword string) (*Session, error) {
	if err := password.Policy(newPassword); err != nil {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "password", Message: err.Error()})
	}
	// The link is checked before the costly hash (and used after it): the form is not
	// limited per client, so made-up links must not be able to keep the hashing pool busy.
	if err := s.CheckLink(ctx, link, LinkReset); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		return nil, busyOr(err)
	}
	var sess *Session
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		a, err := s.consume(ctx, tx, link, LinkReset)
		if err != nil {
			return err
		}
		now := s.now().UnixMilli()
		if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).Updates(map[string]any{
			"password_hash": hash, "failed_signins": 0, "locked_until": nil, "updated_at": now,
			"email_verified_at": gorm.Expr("COALESCE(email_verified_at, ?)", now)}).Error; err != nil {
			return err
		}
		// A change of address asked for in a session that may not have been the owner's
		// stops too: the email telling the old address of it points here.
		if err := shutOut(tx, a.TenantID, a.ID, now); err != nil {
			return err
		}
		sess, err = s.startSession(tx, a)
		return err
	})
	return sess, err
}

// shutOut ends every session of the account and the changes of address that wait for their
// links. Whoever does that (a reset, a password change, signing out everywhere) may be
// getting rid of an intruder, and a change the intruder asked for would otherwise still hand
// them the account when they confirm it from their own mailbox.
func shutOut(tx *gorm.DB, tenantID, accountID string, now int64) error {
	if err := revokeAll(tx, tenantID, accountID, now); err != nil {
		return err
	}
	return tx.Model(&tokenRow{}).Where("tenant_id = ? AND account_id = ? AND purpose = ? AND used_at IS NULL",
		tenantID, accountID, LinkEmailChange).Update("used_at", now).Error
}

// ChangePassword sets a new password for a signed-in person who knows the current one.
// Every session of the account ends, this one too, and so does a change of address waiting
// for its link: the person may be changing the password to shut someone out, who may hold
// a copy of this very session's cookie. The browser goes on in the new session returned.
func (s *Service) ChangePassword(ctx context.Context, sess *Session, current, next string) (*Session, error) {
	if err := password.Policy(next); err != nil {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "new_password", Message: err.Error()})
	}
	a, err := s.account(ctx, sess.TenantID, sess.AccountID)
	if err != nil {
		return nil, err
	}
	if err := s.checkPassword(ctx, a, current); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return nil, busyOr(err)
	}
	var fresh *Session
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now().UnixMilli()
		if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).
			Updates(map[string]any{"password_hash": hash, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := shutOut(tx, a.TenantID, a.ID, now); err != nil {
			return err
		}
		fresh, err = s.startSession(tx, a)
		return err
	})
	return fresh, err
}

// errCurrentPassword refuses a wrong current password on the account page's forms.
var errCurrentPassword = identity.FieldErrors("validation failed", identity.FieldError{Field: "current_password", Message: "is not right"})

// checkPassword checks the current password that a signed-in person gives to change the
// password or the address. Failures count with the failed sign-ins and the lock holds here
// too (answering as a wrong password does): whoever holds a session — a stolen cookie, a
// computer left signed in — could otherwise guess the password as fast as the server
// hashes, and then change the address and the password.
func (s *Service) checkPassword(ctx context.Context, a *accountRow, current string) error {
	if a.PasswordHash == nil || (a.LockedUntil != nil && *a.LockedUntil > s.now().UnixMilli()) {
		return errCurrentPassword
	}
	ok, _, err := s.hasher.Verify(ctx, current, *a.PasswordHash)
	if err != nil {
		return busyOr(err)
	}
	if !ok {
		if err := s.recordFailure(ctx, a); err != nil {
			return err
		}
		return errCurrentPassword
	}
	return s.clearFailures(s.db.Write.WithContext(ctx), a)
}

// Prepared is a registration checked and its password hashed, waiting to be written in
// another domain's transaction (consent records the registration form's boxes with it).
type Prepared struct {
	s                 *Service
	tenantID, email   string
	lang, hash, token string
	accountID         string
	birthYear         int
	Account           *Account
}

// PrepareRegistration checks a registration and hashes its password. When the address
// already has an account it mails the owner, as Register does, and returns nil.
func (s *Service) PrepareRegistration(ctx context.Context, tenantID, slug string, r Registration) (*Prepared, error) {
	r.Email = identity.NormalizeEmail(r.Email)
	if err := r.validate(s.now()); err != nil {
		return nil, err
	}
	existing, err := s.accountByEmail(ctx, s.db.Read, tenantID, r.Email)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		// The same hashing work as a new address, so that timing does not tell them apart.
		if err := s.hasher.Dummy(ctx, r.Password); err != nil {
			return nil, busyOr(err)
		}
		_ = s.send(ctx, r.Email, "exists", r.Language, s.link("/t/"+slug+"/signin"))
		return nil, nil
	}
	hash, err := s.hasher.Hash(ctx, r.Password)
	if err != nil {
		return nil, busyOr(err)
	}
	return &Prepared{s: s, tenantID: tenantID, email: r.Email, lang: Language(r.Language), hash: hash,
		accountID: identity.NewID(), token: newToken(), birthYear: r.BirthYear}, nil
}

// Email is the normalised address being registered.
func (p *Prepared) Email() string { return p.email }

// Statements create the account of the person subjectID, and its verification link, in
// the caller's transaction.
func (p *Prepared) Statements(subjectID string) ([]sqldb.Statement, error) {
	now := p.s.now()
	var birth any
	if p.birthYear > 0 {
		birth = p.birthYear
	}
	p.Account = &Account{TenantID: p.tenantID, ID: p.accountID, SubjectID: subjectID, Email: p.email, Language: p.lang,
		CreatedAt: now}
	return []sqldb.Statement{
		{SQL: `INSERT INTO accounts (tenant_id, id, subject_id, password_hash, birth_year, language, status, failed_signins,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', 0, ?, ?)`,
			Args: []any{p.tenantID, p.accountID, subjectID, p.hash, birth, p.lang, now.UnixMilli(), now.UnixMilli()}},
		{SQL: `INSERT INTO email_tokens (tenant_id, token_hash, purpose, account_id, data, created_at, expires_at)
			VALUES (?, ?, ?, ?, '{}', ?, ?)`,
			Args: []any{p.tenantID, hashToken(p.token), LinkVerify, p.accountID, now.UnixMilli(), now.Add(p.s.opt.VerifyTTL).UnixMilli()}},
	}, nil
}

// Done mails the verification link, once the transaction has committed.
func (p *Prepared) Done(ctx context.Context) {
	_ = p.s.send(ctx, p.email, "verify", p.lang, p.s.link("/account/verify?t="+url.QueryEscape(linkToken(p.tenantID, p.token))))
}
