package accounts

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Sign-in through an external identity provider (OpenID Connect, Facebook). The provider
// vouches for an identity (issuer, subject); the identity is an identifier of a person
// (kind idp), and that person's account is signed in to.
//
// The one rule that matters: an account is never joined to an identity because the two
// share an email address, unless the provider is trusted for email by the tenant and says
// the address is verified. Anyone can put any address in an account at many providers; if
// a matching address were enough, whoever did so would get into the account that owns it.
// When the address belongs to an account and the rule does not allow joining, nothing
// happens (Collision): the person signs in to that account in another way, and then
// connects the identity (ConnectExternal).

// External is a person as an identity provider vouched for them.
type External struct {
	// Issuer and Subject name the identity: the identifier {idp, Issuer, Subject}.
	Issuer, Subject string
	// Email is the address the provider gave, or "".
	Email string
	// EmailVerified is true only when the tenant trusts the provider for email AND the
	// provider said the address is verified. Only then is the address added to a person,
	// or an account that has it joined.
	EmailVerified bool
	// Name is the person's name as the provider gave it, or "".
	Name     string
	Language string
}

// ExternalResult is what an external sign-in did: signed someone in (Session), or found
// that the address belongs to another account (Collision) and did nothing.
type ExternalResult struct {
	Session *Session
	// Created: a new person and account were made for the identity.
	Created bool
	// Linked: the identity joined the existing account of its (trusted, verified) address.
	Linked bool
	// Collision: the address is an existing account's, which this sign-in may not enter.
	// SubjectID is that account's person.
	Collision bool
	SubjectID string
}

// ErrExternal is every refusal of an external sign-in: it says nothing about why.
var ErrExternal = &identity.Error{Code: identity.EUnauthorized, Message: "the sign-in could not be completed"}

// ErrSignInAgain refuses to connect an identity in a session that began before the
// identity was offered: whoever connects must have proven the account just now.
var ErrSignInAgain = &identity.Error{Code: identity.EUnauthorized, Message: "sign in again to connect this service"}

func nameAAD(tenantID, accountID string) []byte {
	return []byte("account_name|" + tenantID + "|" + accountID)
}

// cleanName keeps a provider's name when it is printable and at most 200 characters.
func cleanName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len([]rune(s)) > 200 {
		return ""
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return s
}

// SignInExternal signs in the person an identity provider vouched for: the person who has
// the identity; else, when the provider is trusted for email and the address is verified,
// the account of that address (which the identity then joins); else a new person with a
// new account without a password. An address that belongs to an account the rule does not
// let this sign-in enter is a Collision, and nothing is written.
func (s *Service) SignInExternal(ctx context.Context, tenantID string, ext External) (*ExternalResult, error) {
	idp := identity.Identifier{Kind: identity.IDIdP, Namespace: ext.Issuer, Value: ext.Subject}.Normalized()
	if err := idp.Validate("identity"); err != nil {
		return nil, ErrExternal
	}
	ext.Email = identity.NormalizeEmail(ext.Email)
	if !identity.ValidEmail(ext.Email) {
		ext.Email, ext.EmailVerified = "", false
	}
	ext.Name = cleanName(ext.Name)
	ext.Language = Language(ext.Language)
	var res *ExternalResult
	var err error
	// Two sign-ins of one new identity at once: one creates the person, the other loses
	// on the identifier's key and finds that person when it tries again. A person erased
	// while this sign-in was under way is no one now: tried again, it makes a new person.
	for range 3 {
		res, err = s.signInExternal(ctx, tenantID, idp, ext)
		if !isUnique(err) && !errors.Is(err, identity.ErrSubjectGone) {
			break
		}
	}
	return res, err
}

func (s *Service) signInExternal(ctx context.Context, tenantID string, idp identity.Identifier, ext External) (*ExternalResult, error) {
	subj, err := s.ids.FindSubject(ctx, tenantID, idp)
	if err == nil {
		return s.externalKnown(ctx, tenantID, subj, ext)
	}
	if !identity.IsCode(err, identity.ENotFound) {
		return nil, err
	}
	if ext.Email != "" {
		owner, err := s.ids.FindSubject(ctx, tenantID, identity.Identifier{Kind: identity.IDEmail, Value: ext.Email})
		if err != nil && !identity.IsCode(err, identity.ENotFound) {
			return nil, err
		}
		var a *accountRow
		if owner != nil && !owner.Erased {
			if a, err = s.accountOf(s.db.Read.WithContext(ctx), tenantID, owner.ID); errors.Is(err, ErrExternal) {
				owner.Erased = true // its account was deleted: treated as gone
			} else if err != nil {
				return nil, err
			}
		}
		if owner != nil && !owner.Erased {
			if ext.EmailVerified {
				// A second identity of the same issuer with the same address is not the
				// same person as surely: the address may have moved at the provider.
				same, err := s.hasIssuer(ctx, tenantID, owner.ID, idp.Namespace)
				if err != nil {
					return nil, err
				}
				if !same {
					return s.externalLink(ctx, owner, a, idp, ext)
				}
			}
			if a != nil {
				return &ExternalResult{Collision: true, SubjectID: owner.ID}, nil
			}
		}
		if owner != nil {
			// The address names someone without an account (or erased, or whose account
			// was deleted): never taken from them. The new person goes without it.
			ext.Email, ext.EmailVerified = "", false
		}
	}
	return s.externalNew(ctx, tenantID, idp, ext)
}

// hasIssuer reports whether the subject has an identity at the issuer already.
func (s *Service) hasIssuer(ctx context.Context, tenantID, subjectID, issuer string) (bool, error) {
	ids, err := s.ids.IdentifierValues(ctx, tenantID, subjectID, identity.IDIdP)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if id.Namespace == issuer {
			return true, nil
		}
	}
	return false, nil
}

// accountOf is the live account of a subject, or nil. A person whose account was deleted
// does not get a new one by signing in: that is ErrExternal.
func (s *Service) accountOf(db *gorm.DB, tenantID, subjectID string) (*accountRow, error) {
	var rows []accountRow
	if err := db.Where("tenant_id = ? AND subject_id = ?", tenantID, subjectID).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	if rows[0].Status != "active" {
		return nil, ErrExternal
	}
	return &rows[0], nil
}

// externalKnown signs in the person who has the identity; a person known only through the
// company's CIAM gets an account now.
func (s *Service) externalKnown(ctx context.Context, tenantID string, subj *identity.Subject, ext External) (*ExternalResult, error) {
	if subj.Erased || subj.Kind != identity.SubjectPerson {
		return nil, ErrExternal
	}
	res := &ExternalResult{}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.ids.LockLive(ctx, tx, subj); err != nil {
			return err
		}
		verified, err := s.attachVerifiedEmail(ctx, tx, subj, ext)
		if err != nil {
			return err
		}
		a, err := s.accountOf(tx, tenantID, subj.ID)
		if err != nil {
			return err
		}
		if a == nil {
			if a, err = s.createExternalAccount(tx, tenantID, subj.ID, ext, verified); err != nil {
				return err
			}
			res.Created = true
		} else if err := s.refreshExternal(tx, a, ext, verified); err != nil {
			return err
		}
		res.Session, err = s.startSession(tx, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// externalLink joins the identity to the person its trusted, verified address names, and
// signs in to that person's account (made now when there is none).
func (s *Service) externalLink(ctx context.Context, owner *identity.Subject, a *accountRow, idp identity.Identifier,
	ext External) (*ExternalResult, error) {
	res := &ExternalResult{Linked: true}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, who, err := s.ids.AttachIdentifier(ctx, tx, owner, idp); err != nil {
			return err
		} else if who != owner.ID {
			return ErrExternal // another person took the identity meanwhile
		}
		var err error
		if a == nil {
			a, err = s.createExternalAccount(tx, owner.TenantID, owner.ID, ext, true)
		} else {
			err = s.refreshExternal(tx, a, ext, true)
		}
		if err != nil {
			return err
		}
		res.Session, err = s.startSession(tx, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// externalNew makes a person with the identity (and its address, when trusted and
// verified) and an account without a password.
func (s *Service) externalNew(ctx context.Context, tenantID string, idp identity.Identifier, ext External) (*ExternalResult, error) {
	res := &ExternalResult{Created: true}
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		subj, created, err := s.ids.EnsurePerson(ctx, tx, tenantID, idp)
		if err != nil {
			return err
		}
		if !created {
			return errRaced
		}
		verified, err := s.attachVerifiedEmail(ctx, tx, subj, ext)
		if err != nil {
			return err
		}
		a, err := s.createExternalAccount(tx, tenantID, subj.ID, ext, verified)
		if err != nil {
			return err
		}
		res.Session, err = s.startSession(tx, a)
		return err
	})
	if err == errRaced {
		return s.signInExternal(ctx, tenantID, idp, ext)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

var errRaced = &identity.Error{Code: identity.EConflict, Message: "created meanwhile"}

// attachVerifiedEmail adds a trusted, verified address to the person, and reports whether
// the person has it now. An address another subject has stays theirs.
func (s *Service) attachVerifiedEmail(ctx context.Context, tx *gorm.DB, subj *identity.Subject, ext External) (bool, error) {
	if !ext.EmailVerified || ext.Email == "" {
		return false, nil
	}
	_, owner, err := s.ids.AttachIdentifier(ctx, tx, subj, identity.Identifier{Kind: identity.IDEmail, Value: ext.Email})
	if err != nil {
		return false, err
	}
	return owner == subj.ID, nil
}

func (s *Service) createExternalAccount(tx *gorm.DB, tenantID, subjectID string, ext External, verified bool) (*accountRow, error) {
	now := s.now().UnixMilli()
	a := &accountRow{TenantID: tenantID, ID: identity.NewID(), SubjectID: subjectID, Language: ext.Language, Status: "active",
		CreatedAt: now, UpdatedAt: now}
	if verified {
		a.EmailVerifiedAt = &now
	}
	if ext.Name != "" {
		kid, ct, err := s.ids.Seal([]byte(ext.Name), nameAAD(tenantID, a.ID))
		if err != nil {
			return nil, err
		}
		a.NameCT, a.NameKID = ct, &kid
	}
	return a, tx.Create(a).Error
}

// refreshExternal keeps an account up to date with its provider: the name, and an address
// the trusted provider now vouches for. An address confirmed this way was not confirmed
// before, so whoever chose the account's password then may not have been its owner: the
// password and every session end (someone who registers an address that is not theirs
// must not keep a way into the account its owner later uses).
func (s *Service) refreshExternal(tx *gorm.DB, a *accountRow, ext External, verified bool) error {
	now := s.now().UnixMilli()
	updates := map[string]any{}
	if ext.Name != "" {
		kid, ct, err := s.ids.Seal([]byte(ext.Name), nameAAD(a.TenantID, a.ID))
		if err != nil {
			return err
		}
		updates["name_ct"], updates["name_kid"] = ct, kid
	}
	if verified && a.EmailVerifiedAt == nil {
		updates["email_verified_at"], updates["password_hash"] = now, nil
		updates["failed_signins"], updates["locked_until"] = 0, nil
		if err := revokeAll(tx, a.TenantID, a.ID, now); err != nil {
			return err
		}
		a.EmailVerifiedAt, a.PasswordHash = &now, nil
	}
	if len(updates) == 0 {
		return nil
	}
	updates["updated_at"] = now
	return tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).Updates(updates).Error
}

// ConnectExternal joins an identity to the signed-in person's account, after a sign-in
// found the identity's address on this account (a Collision). The session must have begun
// at or after offeredAt, when the identity was offered: the person proved the account
// after the provider proved the identity, in this browser. claim runs first in the same
// transaction and must fail unless the offer is still open (it uses the offer up).
func (s *Service) ConnectExternal(ctx context.Context, sess *Session, issuer, subject string, offeredAt time.Time,
	claim func(tx *gorm.DB) error) error {
	if sess.CreatedAt.Before(offeredAt) {
		return ErrSignInAgain
	}
	idp := identity.Identifier{Kind: identity.IDIdP, Namespace: issuer, Value: subject}.Normalized()
	if err := idp.Validate("identity"); err != nil {
		return ErrExternal
	}
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := claim(tx); err != nil {
			return err
		}
		subj, err := s.ids.SubjectByID(ctx, tx, sess.TenantID, sess.SubjectID)
		if err != nil {
			return err
		}
		_, owner, err := s.ids.AttachIdentifier(ctx, tx, subj, idp)
		if err != nil {
			return err
		}
		if owner != subj.ID {
			return ErrExternal // the identity became someone else's meanwhile
		}
		return nil
	})
}

// ErrLastWayIn: the identity is the only way the person signs in; disconnecting it would
// lock them out of their own account.
var ErrLastWayIn = &identity.Error{Code: identity.EConflict, Message: "this service is the only way to sign in to the account"}

// ErrCompanyIdentity: the identity comes from the company's own CIAM (a configured issuer of
// customer tokens), which names the person in its apps: it is not the person's to disconnect.
var ErrCompanyIdentity = &identity.Error{Code: identity.EConflict, Message: "the company's own sign-in cannot be disconnected"}

// DisconnectExternal removes the signed-in person's identity from an issuer, so that signing
// in with it no longer opens this account (a later sign-in with it is a new person, unless
// the linking rule joins it again). The decisions made meanwhile stay the person's. It
// refuses to remove the last way in, and the company's CIAM identities.
func (s *Service) DisconnectExternal(ctx context.Context, sess *Session, issuer string) error {
	issuer = strings.TrimSuffix(issuer, "/")
	return s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ciam int64
		if err := tx.Raw("SELECT count(*) FROM ciam_issuers WHERE tenant_id = ? AND rtrim(issuer, '/') = ?", sess.TenantID, issuer).
			Scan(&ciam).Error; err != nil {
			return err
		}
		if ciam > 0 {
			return ErrCompanyIdentity
		}
		a, err := s.accountOf(tx, sess.TenantID, sess.SubjectID)
		if err != nil {
			return err
		}
		if a == nil {
			return identity.NotFound("account")
		}
		var others int64
		if err := tx.Raw("SELECT count(*) FROM identifiers WHERE tenant_id = ? AND subject_id = ? AND kind = ? AND namespace <> ?",
			sess.TenantID, sess.SubjectID, identity.IDIdP, issuer).Scan(&others).Error; err != nil {
			return err
		}
		// A verified address signs in by an emailed link (and by its password, if any).
		if a.EmailVerifiedAt == nil && others == 0 {
			return ErrLastWayIn
		}
		res := tx.Exec("DELETE FROM identifiers WHERE tenant_id = ? AND subject_id = ? AND kind = ? AND namespace = ?",
			sess.TenantID, sess.SubjectID, identity.IDIdP, issuer)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return identity.NotFound("connected sign-in service")
		}
		return nil
	})
}
