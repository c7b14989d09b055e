package accounts

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// Changing the account's email address. The signed-in person asks for the change with
// their current password (or, for an account an identity provider made without one, a
// sign-in of the last RecentSignIn); a one-time link goes to the new address and a notice
// to the old one. The link, confirmed with a button (mail scanners fetch links, they do not
// submit forms), replaces the subject's email identifier in one transaction with a
// subject.email_changed domain event, so that connected systems move the person's record.
//
// Nobody learns from the request whether the new address is taken: the page answers the
// same, and the new address gets either the link or a note that it is in use. The link
// itself signs nobody in: it proves the new mailbox, not the account (a mistyped address
// must not hand a stranger the account). Every session of the account but the confirming
// browser's own (when that browser is signed in to the account) ends.

// ErrEmailTaken refuses a confirmed change to an address that meanwhile names another
// person. The one following the link reads the new mailbox, so saying so reveals nothing
// they could not learn from it.
var ErrEmailTaken = &identity.Error{Code: identity.EConflict, Message: "the new email address is in use by another account"}

// ErrSignInRecently refuses a change of address in a session older than RecentSignIn, for
// an account without a password: the person proves the account by signing in again.
var ErrSignInRecently = &identity.Error{Code: identity.EUnauthorized, Message: "sign in again to change the email address"}

// SameEmailMessage is the field message of a new address that is the account's already.
const SameEmailMessage = "is the account's address already"

// emailChangeData is what an email change link's token row carries: the new address,
// encrypted (AAD: emailChangeAAD).
type emailChangeData struct {
	KID string `json:"kid"`
	CT  []byte `json:"ct"`
}

func emailChangeAAD(tenantID, accountID string) []byte {
	return []byte("email_change|" + tenantID + "|" + accountID)
}

// MaskEmail shows enough of an address for its owner to recognise it and little to anyone
// else: the first character of the local part and the domain (n***@example.com).
func MaskEmail(email string) string {
	at := strings.LastIndex(email, "@")
	if at <= 0 {
		return "***"
	}
	first := []rune(email[:at])[0]
	return string(first) + "***" + email[at:]
}

// RequestEmailChange starts changing the signed-in person's address to newEmail: it checks
// the current password (accounts without one need a recent sign-in: ErrSignInRecently),
// mails a one-time link to the new address, and tells the old one. When the new address
// names someone else, the new address gets a note instead of a link and nil is returned
// all the same, so that the form does not reveal who has an account. slug names the
// tenant's pages for the emails' links.
func (s *Service) RequestEmailChange(ctx context.Context, sess *Session, slug, newEmail, currentPassword, lang string) error {
	newEmail = identity.NormalizeEmail(newEmail)
	if !identity.ValidEmail(newEmail) {
		return identity.FieldErrors("validation failed", identity.FieldError{Field: "new_email", Message: "must be an email address"})
	}
	a, err := s.account(ctx, sess.TenantID, sess.AccountID)
	if err != nil {
		return err
	}
	if a.PasswordHash != nil {
		if err := s.checkPassword(ctx, a, currentPassword); err != nil {
			return err
		}
	} else if sess.CreatedAt.Before(s.now().Add(-s.opt.RecentSignIn)) {
		return ErrSignInRecently
	}
	olds, err := s.ids.IdentifierValues(ctx, a.TenantID, a.SubjectID, identity.IDEmail)
	if err != nil {
		return err
	}
	old := ""
	if len(olds) > 0 {
		old = olds[0].Value
	}
	if newEmail == old {
		return identity.FieldErrors("validation failed", identity.FieldError{Field: "new_email", Message: SameEmailMessage})
	}
	if lang == "" {
		lang = a.Language
	}
	owner, err := s.ids.FindSubject(ctx, a.TenantID, identity.Identifier{Kind: identity.IDEmail, Value: newEmail})
	if err != nil && !identity.IsCode(err, identity.ENotFound) {
		return err
	}
	if owner != nil && owner.ID != a.SubjectID {
		_ = s.send(ctx, newEmail, "email_taken", lang, s.link("/t/"+slug+"/signin"))
	} else {
		kid, ct, err := s.ids.Seal([]byte(newEmail), emailChangeAAD(a.TenantID, a.ID))
		if err != nil {
			return err
		}
		data, err := json.Marshal(emailChangeData{KID: kid, CT: ct})
		if err != nil {
			return err
		}
		var link string
		if err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			link, err = s.issueData(tx, a.TenantID, a.ID, LinkEmailChange, s.opt.VerifyTTL, string(data))
			return err
		}); err != nil {
			return err
		}
		_ = s.send(ctx, newEmail, "email_change", lang, s.link("/account/email/confirm?t="+url.QueryEscape(link)))
	}
	// The old address hears of every request, taken or not: its owner is the one who asked
	// (or should know someone else did), and a notice only when the new address is free
	// would tell them whether it is.
	if old != "" {
		_ = s.sendText(ctx, old, "email_changing", lang, map[string]string{
			"{link}": s.link("/t/" + slug + "/reset"), "{new}": MaskEmail(newEmail)})
	}
	return nil
}

// EmailChange is what a confirmed change did.
type EmailChange struct {
	TenantID, AccountID, SubjectID string
	// KeptSession: the confirming browser's session (the current one given to
	// ConfirmEmailChange) is the account's and still works; every other session ended.
	KeptSession bool
}

// emailChangedPayload is the payload of a subject.email_changed domain event: no address,
// old or new; recipients find the person by the pseudonym.
type emailChangedPayload struct {
	Subject   string    `json:"subject"`
	SubjectID string    `json:"subject_id"`
	Channel   string    `json:"channel"`
	At        time.Time `json:"at"`
}

// ConfirmEmailChange uses an email change link. In one transaction: the subject's email
// identifiers are replaced by the new address, the account's address counts as verified,
// every other one-time link of the account stops working (they went to the old address),
// every session of the account ends but current (the confirming browser's, which may be
// nil or another account's), and a subject.email_changed domain event is written. When the
// new address names another subject by now, nothing changes (ErrEmailTaken) and the link
// still works.
func (s *Service) ConfirmEmailChange(ctx context.Context, link string, current *Session) (*EmailChange, error) {
	var res *EmailChange
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		a, t, err := s.consumeToken(ctx, tx, link, LinkEmailChange)
		if err != nil {
			return err
		}
		var d emailChangeData
		if err := json.Unmarshal([]byte(t.Data), &d); err != nil || d.KID == "" {
			return ErrLink
		}
		plain, err := s.ids.Unseal(ctx, d.KID, d.CT, emailChangeAAD(a.TenantID, a.ID))
		if err != nil {
			return err
		}
		newEmail := identity.Identifier{Kind: identity.IDEmail, Value: string(plain)}
		subj, err := s.ids.SubjectByID(ctx, tx, a.TenantID, a.SubjectID)
		if err != nil {
			return err
		}
		if subj.Erased || subj.Pseudonym == "" {
			return ErrLink
		}
		now := s.now()
		ms := now.UnixMilli()
		// Every address of the subject goes: the account has one address, and an address a
		// provider added earlier would otherwise stay the one the account shows.
		if err := tx.Exec("DELETE FROM identifiers WHERE tenant_id = ? AND subject_id = ? AND kind = ?",
			a.TenantID, a.SubjectID, identity.IDEmail).Error; err != nil {
			return err
		}
		_, owner, err := s.ids.AttachIdentifier(ctx, tx, subj, newEmail)
		if err != nil {
			return err
		}
		if owner != subj.ID {
			return ErrEmailTaken
		}
		if err := tx.Model(&accountRow{}).Where("tenant_id = ? AND id = ?", a.TenantID, a.ID).
			Updates(map[string]any{"email_verified_at": ms, "updated_at": ms}).Error; err != nil {
			return err
		}
		if err := tx.Model(&tokenRow{}).Where("tenant_id = ? AND account_id = ? AND used_at IS NULL", a.TenantID, a.ID).
			Update("used_at", ms).Error; err != nil {
			return err
		}
		res = &EmailChange{TenantID: a.TenantID, AccountID: a.ID, SubjectID: a.SubjectID}
		end := tx.Model(&sessionRow{}).Where("tenant_id = ? AND account_id = ? AND revoked_at IS NULL", a.TenantID, a.ID)
		if current != nil && current.TenantID == a.TenantID && current.AccountID == a.ID && current.tokenHash != nil {
			end = end.Where("token_hash <> ?", current.tokenHash)
			res.KeptSession = true
		}
		if err := end.Update("revoked_at", ms).Error; err != nil {
			return err
		}
		payload, err := json.Marshal(emailChangedPayload{Subject: subj.Pseudonym, SubjectID: subj.ID, Channel: "account", At: now.UTC()})
		if err != nil {
			return err
		}
		return tx.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
			VALUES (?, ?, 'subject.email_changed', 1, ?, ?, ?, ?)`, a.TenantID, identity.NewID(), subj.ID, ms, string(payload), ms).Error
	})
	if isUnique(err) {
		// Another subject took the address between the check and the insert.
		return nil, ErrEmailTaken
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}
