package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Identifier kinds. Every API that names a subject takes a typed identifier {kind, value}
// (and a namespace for the kinds that need one).
const (
	// IDDevice is a device id issued by Lupa (128 random bits) to a widget or app.
	IDDevice = "device"
	// IDCustomerNumber is the tenant's own customer number (loyalty card, CRM id).
	IDCustomerNumber = "customer_number"
	// IDEmail is an email address, normalised (see NormalizeEmail).
	IDEmail = "email"
	// IDIdP is an identity at an OpenID Connect provider or the company's CIAM: the
	// namespace is the issuer, the value the subject (sub) the issuer gave.
	IDIdP = "idp"
	// IDExternal is an id in a connected system: the namespace names the system ("crm",
	// "loyalty"), the value is the id there.
	IDExternal = "external"
)

// IdentifierKinds lists the identifier kinds accepted today.
var IdentifierKinds = []string{IDDevice, IDCustomerNumber, IDEmail, IDIdP, IDExternal}

// Subject kinds: an anonymous device, or a known person.
const (
	SubjectDevice = "device"
	SubjectPerson = "person"
)

// Identifier names a subject: {kind, value}, and for idp and external identifiers the
// namespace the value lives in.
type Identifier struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Value     string `json:"value"`
}

// SubjectKind is the kind of subject an identifier of this kind names.
func (i Identifier) SubjectKind() string {
	if i.Kind == IDDevice {
		return SubjectDevice
	}
	return SubjectPerson
}

// Normalized returns the identifier in the form it is hashed and stored in: an email
// address normalised, an issuer without a trailing slash.
func (i Identifier) Normalized() Identifier {
	switch i.Kind {
	case IDEmail:
		i.Value = NormalizeEmail(i.Value)
	case IDIdP:
		i.Namespace = strings.TrimSuffix(strings.TrimSpace(i.Namespace), "/")
	}
	return i
}

// NormalizeEmail trims an address, brings it to Unicode NFC and lower-cases all of it. It
// removes no dots and no plus tags: those may be different mailboxes.
func NormalizeEmail(s string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
}

var externalNamespaceRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Validate checks the identifier's form; field is the JSON path used in error messages.
// Normalize first: a non-normalised email is refused.
func (i Identifier) Validate(field string) error {
	var v Validator
	noNamespace := func() {
		v.Check(i.Namespace == "", field+".namespace", "only idp and external identifiers have a namespace")
	}
	switch i.Kind {
	case IDDevice:
		v.Check(ValidDeviceID(i.Value), field+".value", "a device id is the 22-character id Lupa issued")
		noNamespace()
	case IDCustomerNumber:
		v.Check(printableID(i.Value, 64), field+".value", "a customer number is 1–64 printable characters")
		noNamespace()
	case IDEmail:
		v.Check(ValidEmail(i.Value) && NormalizeEmail(i.Value) == i.Value, field+".value", "must be an email address")
		noNamespace()
	case IDIdP:
		v.Check(ValidHTTPURL(i.Namespace) && strings.HasPrefix(i.Namespace, "https://") && len(i.Namespace) <= 255 ||
			strings.HasPrefix(i.Namespace, "http://localhost") || strings.HasPrefix(i.Namespace, "http://127.0.0.1"),
			field+".namespace", "the issuer: an https URL of at most 255 characters")
		v.Check(printableID(i.Value, 255), field+".value", "the subject (sub) the issuer gave: 1–255 printable characters")
	case IDExternal:
		v.Check(externalNamespaceRe.MatchString(i.Namespace), field+".namespace", "names the system: 1–32 lower-case letters, digits, _ or -, such as crm")
		v.Check(printableID(i.Value, 128), field+".value", "an id in that system: 1–128 printable characters")
	default:
		v.Check(false, field+".kind", "must be one of "+strings.Join(IdentifierKinds, ", "))
	}
	return v.Err()
}

// ValidEmail reports whether s is a plain email address (no display name), at most 254
// bytes.
func ValidEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " <>") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndex(s, "@")+1:], ".")
}

func printableID(s string, max int) bool {
	if s == "" || len(s) > max || strings.TrimSpace(s) != s || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// NewDeviceID returns a new device id: 128 random bits, base64url.
func NewDeviceID() string { return randomToken(16) }

// ValidDeviceID reports whether s has the form of a device id.
func ValidDeviceID(s string) bool {
	if len(s) != 22 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 16
}

// Subject is one person or one anonymous device in one tenant.
type Subject struct {
	TenantID   string
	ID         string
	Kind       string
	Pseudonym  string // empty once erased
	MergedInto string
	Erased     bool
	CreatedAt  time.Time
}

// NewSubject is a subject made in memory, inserted later in the writer's transaction.
type NewSubject struct {
	Subject
	secret    []byte
	secretKID string
}

// PrepareSubject makes a new subject with its own random key; the pseudonym written to the
// ledger is derived from that key, so destroying the key unlinks the ledger from the person.
func (s *Service) PrepareSubject(tenantID, kind string, now time.Time) (*NewSubject, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	id := NewID()
	kid, ct, err := s.keys.Encrypt(key, subjectAAD(tenantID, id))
	if err != nil {
		return nil, err
	}
	return &NewSubject{
		Subject: Subject{TenantID: tenantID, ID: id, Kind: kind, Pseudonym: Pseudonym(key), CreatedAt: now},
		secret:  ct, secretKID: kid,
	}, nil
}

func subjectAAD(tenantID, id string) []byte { return []byte("subject|" + tenantID + "|" + id) }

// Pseudonym derives the ledger pseudonym from a subject key.
func Pseudonym(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lupa pseudonym v1"))
	return "ps_" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// SubjectColumns are the subjects columns that Row fills.
var SubjectColumns = sqldb.Cols(
	"tenant_id:text", "id:text", "kind:text", "pseudonym:text", "secret:bytea",
	"secret_kid:text", "created_at:int8",
)

// Row returns the new subject's values in SubjectColumns order, for a multi-row insert in
// the caller's transaction.
func (s *NewSubject) Row() []any {
	return []any{s.TenantID, s.ID, s.Kind, s.Pseudonym, s.secret, s.secretKID, s.CreatedAt.UnixMilli()}
}

// NewIdentifier is an identifier made in memory, inserted later in a transaction.
type NewIdentifier struct {
	TenantID, Kind, Namespace string
	ValueHash                 []byte
	HashKID                   string
	SubjectID                 string
	SubjectKind               string
	Pseudonym                 string
	ValueCT                   []byte
	ValueKID                  string
	CreatedAt                 int64
}

func lookupInput(tenantID string, id Identifier) []byte {
	return []byte(tenantID + "\x00" + id.Kind + "\x00" + id.Namespace + "\x00" + id.Value)
}

// LookupHashes returns the identifier's keyed hashes, the active lookup key's first. The
// tenant is part of the input, so one customer number in two tenants gives two hashes.
func (s *Service) LookupHashes(tenantID string, id Identifier) [][]byte {
	hs := s.keys.Lookup(lookupInput(tenantID, id))
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h.Sum
	}
	return out
}

// BulkLookup hashes many identifiers of one tenant (see LookupHashes) with reused HMACs.
// Not safe for concurrent use.
type BulkLookup struct {
	tenantID string
	l        *keyring.Lookuper
	buf      []byte
}

// BulkLookup returns a BulkLookup for the tenant.
func (s *Service) BulkLookup(tenantID string) *BulkLookup {
	return &BulkLookup{tenantID: tenantID, l: s.keys.Lookuper()}
}

// Hashes returns the identifier's keyed hashes, the active key's first.
func (b *BulkLookup) Hashes(id Identifier) [][]byte {
	b.buf = append(append(append(append(append(append(append(b.buf[:0], b.tenantID...), 0), id.Kind...), 0),
		id.Namespace...), 0), id.Value...)
	return b.l.Sums(b.buf)
}

// PrepareIdentifier makes the row for a new identifier of a subject: hashed for lookup,
// and encrypted so it can be shown to the person and re-hashed after a key rotation.
func (s *Service) PrepareIdentifier(tenantID string, subj *Subject, id Identifier, now time.Time) (*NewIdentifier, error) {
	h := s.keys.Lookup(lookupInput(tenantID, id))[0]
	kid, ct, err := s.keys.Encrypt([]byte(id.Value), identifierAAD(tenantID, id))
	if err != nil {
		return nil, err
	}
	return &NewIdentifier{TenantID: tenantID, Kind: id.Kind, Namespace: id.Namespace, ValueHash: h.Sum,
		HashKID: h.KeyID, SubjectID: subj.ID, SubjectKind: subj.Kind, Pseudonym: subj.Pseudonym, ValueCT: ct,
		ValueKID: kid, CreatedAt: now.UnixMilli()}, nil
}

func identifierAAD(tenantID string, id Identifier) []byte {
	return []byte("identifier|" + tenantID + "|" + id.Kind + "|" + id.Namespace)
}

// IdentifierColumns are the identifiers columns that Row fills.
var IdentifierColumns = sqldb.Cols(
	"tenant_id:text", "kind:text", "namespace:text", "value_hash:bytea", "hash_kid:text",
	"subject_id:text", "subject_kind:text", "pseudonym:text", "value_ct:bytea", "value_kid:text",
	"created_at:int8",
)

// Row returns the new identifier's values in IdentifierColumns order.
func (n *NewIdentifier) Row() []any {
	return []any{n.TenantID, n.Kind, n.Namespace, n.ValueHash, n.HashKID, n.SubjectID, n.SubjectKind, n.Pseudonym,
		n.ValueCT, n.ValueKID, n.CreatedAt}
}

type subjectLookupRow struct {
	ID         string
	Kind       string
	Pseudonym  *string
	MergedInto *string
	ErasedAt   *int64
	CreatedAt  int64
}

// FindSubject returns the subject an identifier names, following merges, or ENotFound.
func (s *Service) FindSubject(ctx context.Context, tenantID string, id Identifier) (*Subject, error) {
	var rows []subjectLookupRow
	err := s.db.Read.WithContext(ctx).Raw(`SELECT s.id, s.kind, s.pseudonym, s.merged_into, s.erased_at, s.created_at
		FROM identifiers i JOIN subjects s ON s.tenant_id = i.tenant_id AND s.id = i.subject_id
		WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN ?`,
		tenantID, id.Kind, id.Namespace, s.LookupHashes(tenantID, id)).Scan(&rows).Error
	if err != nil {
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

// DestroySubjectKeySQL deletes a subject's key, pseudonym and identifiers, for the caller's
// transaction: its ledger chain still verifies, but points to no one.
func DestroySubjectKeySQL(tenantID, subjectID string, at time.Time) []sqldb.Statement {
	return []sqldb.Statement{
		{SQL: "DELETE FROM identifiers WHERE tenant_id = ? AND subject_id = ?", Args: []any{tenantID, subjectID}},
		{SQL: `UPDATE subjects SET secret = NULL, secret_kid = NULL, pseudonym = NULL, erased_at = ?
			WHERE tenant_id = ? AND id = ?`, Args: []any{at.UnixMilli(), tenantID, subjectID}},
	}
}

// RehashIdentifiers re-computes every identifier's lookup hash under the active lookup key
// and re-encrypts its value under the active encryption key, in batches. Run after a key
// rotation, it leaves no identifier under an old key. It returns how many rows it changed.
func (s *Service) RehashIdentifiers(ctx context.Context) (int, error) {
	active := s.keys.ActiveID("lookup")
	type row struct {
		TenantID, Kind, Namespace string
		ValueHash                 []byte
		ValueCT                   []byte
		ValueKID                  string `gorm:"column:value_kid"` // gorm would read value_k_id
	}
	total := 0
	for {
		var rows []row
		if err := s.db.Read.WithContext(ctx).Raw(`SELECT tenant_id, kind, namespace, value_hash, value_ct, value_kid
			FROM identifiers WHERE hash_kid <> ? AND value_ct IS NOT NULL LIMIT 500`, active).Scan(&rows).Error; err != nil {
			return total, err
		}
		if len(rows) == 0 {
			return total, nil
		}
		err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range rows {
				id := Identifier{Kind: r.Kind, Namespace: r.Namespace}
				plain, err := s.keys.Decrypt(ctx, r.ValueKID, r.ValueCT, identifierAAD(r.TenantID, id))
				if err != nil {
					return err
				}
				id.Value = string(plain)
				h := s.keys.Lookup(lookupInput(r.TenantID, id))[0]
				kid, ct, err := s.keys.Encrypt(plain, identifierAAD(r.TenantID, id))
				if err != nil {
					return err
				}
				if err := tx.Exec(`UPDATE identifiers SET value_hash = ?, hash_kid = ?, value_ct = ?, value_kid = ?
					WHERE tenant_id = ? AND kind = ? AND namespace = ? AND value_hash = ?`,
					h.Sum, h.KeyID, ct, kid, r.TenantID, r.Kind, r.Namespace, r.ValueHash).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(rows)
	}
}

// EnsurePerson returns the person an identifier names, creating one (a subject with its own
// key, and the identifier) when there is none, in tx. A concurrent creation of the same
// identifier makes one of the two fail on the identifier's primary key; the caller's
// transaction then rolls back and a retry finds the other's person.
func (s *Service) EnsurePerson(ctx context.Context, tx *gorm.DB, tenantID string, id Identifier) (subj *Subject, created bool, err error) {
	if err := id.Validate("identifier"); err != nil {
		return nil, false, err
	}
	var rows []subjectLookupRow
	err = tx.WithContext(ctx).Raw(`SELECT s.id, s.kind, s.pseudonym, s.merged_into, s.erased_at, s.created_at
		FROM identifiers i JOIN subjects s ON s.tenant_id = i.tenant_id AND s.id = i.subject_id
		WHERE i.tenant_id = ? AND i.kind = ? AND i.namespace = ? AND i.value_hash IN ?`,
		tenantID, id.Kind, id.Namespace, s.LookupHashes(tenantID, id)).Scan(&rows).Error
	if err != nil {
		return nil, false, err
	}
	if len(rows) > 0 {
		r := rows[0]
		subj = &Subject{TenantID: tenantID, ID: r.ID, Kind: r.Kind, Erased: r.ErasedAt != nil, CreatedAt: ms(r.CreatedAt)}
		if r.Pseudonym != nil {
			subj.Pseudonym = *r.Pseudonym
		}
		return subj, false, nil
	}
	now := s.now()
	ns, err := s.PrepareSubject(tenantID, SubjectPerson, now)
	if err != nil {
		return nil, false, err
	}
	ni, err := s.PrepareIdentifier(tenantID, &ns.Subject, id, now)
	if err != nil {
		return nil, false, err
	}
	if err := tx.Exec("INSERT INTO subjects ("+strings.Join(sqldb.Names(SubjectColumns), ", ")+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		ns.Row()...).Error; err != nil {
		return nil, false, err
	}
	if err := tx.Exec("INSERT INTO identifiers ("+strings.Join(sqldb.Names(IdentifierColumns), ", ")+
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ni.Row()...).Error; err != nil {
		return nil, false, err
	}
	return &ns.Subject, true, nil
}

// IdentifierValues returns a subject's identifiers of one kind, decrypted: for showing a
// person their own addresses, or sending them mail.
func (s *Service) IdentifierValues(ctx context.Context, tenantID, subjectID, kind string) ([]Identifier, error) {
	var rows []struct {
		Namespace string
		ValueCT   []byte
		ValueKID  string `gorm:"column:value_kid"`
	}
	if err := s.db.Read.WithContext(ctx).Raw(`SELECT namespace, value_ct, value_kid FROM identifiers
		WHERE tenant_id = ? AND subject_id = ? AND kind = ? AND value_ct IS NOT NULL ORDER BY created_at`,
		tenantID, subjectID, kind).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]Identifier, 0, len(rows))
	for _, r := range rows {
		id := Identifier{Kind: kind, Namespace: r.Namespace}
		v, err := s.keys.Decrypt(ctx, r.ValueKID, r.ValueCT, identifierAAD(tenantID, id))
		if err != nil {
			return nil, err
		}
		id.Value = string(v)
		out = append(out, id)
	}
	return out, nil
}
