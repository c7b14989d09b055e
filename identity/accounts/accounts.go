// Package accounts lets customers have an account with Lupa itself, for the privacy
// dashboard and the registration widget: registration with email and password, email
// verification, sign-in (with a password or a one-time link), password reset and change,
// a change of email address (email.go), and server-side sessions. An account belongs to a person subject, and its email address is
// one of the subject's identifiers: encrypted, found by a keyed hash.
package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Options are the service's timings; zero values take the defaults.
type Options struct {
	SessionIdle     time.Duration // default 30 minutes
	SessionAbsolute time.Duration // default 12 hours
	VerifyTTL       time.Duration // email verification link, default 48 hours
	LinkTTL         time.Duration // sign-in and reset links, default 20 minutes
	// RecentSignIn is how recent a sign-in must be to change the email address of an
	// account without a password (email.go), default 10 minutes.
	RecentSignIn time.Duration
	// LinkBase is the public URL of Lupa, for the links in emails.
	LinkBase string
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.SessionIdle, 30*time.Minute)
	def(&o.SessionAbsolute, 12*time.Hour)
	def(&o.VerifyTTL, 48*time.Hour)
	def(&o.LinkTTL, 20*time.Minute)
	def(&o.RecentSignIn, 10*time.Minute)
}

// Sender sends one email.
type Sender interface {
	Send(ctx context.Context, m mail.Message) error
}

// Service registers customers and signs them in.
type Service struct {
	db     *sqldb.DB
	ids    *identity.Service
	hasher *password.Hasher
	mail   Sender
	now    func() time.Time
	log    *slog.Logger
	opt    Options
	ips    *throttle      // failed sign-ins per client address
	mailTo *throttle      // emails per recipient (messages.go)
	bg     sync.WaitGroup // work begun after answers (later)
}

// laterTimeout bounds work done after a request was answered (mailing a link).
const laterTimeout = time.Minute

// later runs fn after the request's answer, in its own goroutine, with the request's
// values but not its end. Wait waits for it.
func (s *Service) later(ctx context.Context, fn func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), laterTimeout)
	s.bg.Go(func() {
		defer cancel()
		fn(ctx)
	})
}

// Wait waits until the work begun after answers (links being mailed) is done, or ctx ends:
// a server shutting down lets it finish before the database closes.
func (s *Service) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// New returns the accounts service.
func New(db *sqldb.DB, ids *identity.Service, hasher *password.Hasher, sender Sender, now func() time.Time,
	log *slog.Logger, opt Options) *Service {
	opt.defaults()
	return &Service{db: db, ids: ids, hasher: hasher, mail: sender, now: now, log: log, opt: opt, ips: newThrottle(now, ipRate, ipBurst),
		mailTo: newThrottle(now, mailRate, mailBurst)}
}

// Account is a customer's account.
type Account struct {
	TenantID      string    `json:"-"`
	ID            string    `json:"id"`
	SubjectID     string    `json:"-"`
	Email         string    `json:"email,omitempty"` // filled where the owner sees it
	EmailVerified bool      `json:"email_verified"`
	Language      string    `json:"language"`
	CreatedAt     time.Time `json:"created_at"`
	// Name is the name an identity provider gave at sign-in (filled where the owner sees
	// it); HasPassword says whether the account can sign in with a password.
	Name        string `json:"name,omitempty"`
	HasPassword bool   `json:"has_password"`
}

type accountRow struct {
	TenantID        string `gorm:"primaryKey"`
	ID              string `gorm:"primaryKey"`
	SubjectID       string
	PasswordHash    *string
	EmailVerifiedAt *int64
	BirthYear       *int
	Language        string
	Status          string
	FailedSignins   int
	LockedUntil     *int64
	CreatedAt       int64 `gorm:"autoCreateTime:false"`
	UpdatedAt       int64 `gorm:"autoUpdateTime:false"`
	DeletedAt       *int64
	// The name an identity provider gave, encrypted (AAD: nameAAD).
	NameCT  []byte  `gorm:"column:name_ct"`
	NameKID *string `gorm:"column:name_kid"`
}

func (accountRow) TableName() string { return "accounts" }

func (r *accountRow) domain() *Account {
	return &Account{TenantID: r.TenantID, ID: r.ID, SubjectID: r.SubjectID, EmailVerified: r.EmailVerifiedAt != nil,
		Language: r.Language, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), HasPassword: r.PasswordHash != nil}
}

// Errors that pages show as they are. Sign-in failures are one message whatever the cause,
// so that nobody learns whether an address has an account.
var (
	ErrSignIn    = &identity.Error{Code: identity.EUnauthorized, Message: "the email address or the password is not right"}
	ErrThrottled = &identity.Error{Code: identity.ERateLimited, Message: "too many attempts: wait a moment and try again"}
	ErrBusy      = &identity.Error{Code: identity.EUnavailable, Message: "too many people are signing in right now: try again in a moment"}
	ErrLink      = &identity.Error{Code: identity.EUnprocessable, Message: "the link is not valid: it was used already, it expired, or it is not whole"}
)

func busyOr(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return ErrBusy
	}
	return err
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// accountByEmail finds the live account of a normalised email address.
func (s *Service) accountByEmail(ctx context.Context, db *gorm.DB, tenantID, email string) (*accountRow, error) {
	subj, err := s.ids.FindSubject(ctx, tenantID, identity.Identifier{Kind: identity.IDEmail, Value: email})
	if identity.IsCode(err, identity.ENotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []accountRow
	if err := db.WithContext(ctx).Where("tenant_id = ? AND subject_id = ? AND status = ?", tenantID, subj.ID, "active").
		Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func (s *Service) account(ctx context.Context, tenantID, id string) (*accountRow, error) {
	var r accountRow
	err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ? AND status = ?", tenantID, id, "active").Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, identity.NotFound("account")
	}
	return &r, err
}

// Get returns an account with its email address, for its owner.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Account, error) {
	r, err := s.account(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	a := r.domain()
	emails, err := s.ids.IdentifierValues(ctx, tenantID, r.SubjectID, identity.IDEmail)
	if err != nil {
		return nil, err
	}
	if len(emails) > 0 {
		a.Email = emails[0].Value
	}
	if r.NameCT != nil && r.NameKID != nil {
		name, err := s.ids.Unseal(ctx, *r.NameKID, r.NameCT, nameAAD(r.TenantID, r.ID))
		if err != nil {
			return nil, err
		}
		a.Name = string(name)
	}
	return a, nil
}
