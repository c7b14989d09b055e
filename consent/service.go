// Package consent holds Lupa's purposes and their versioned texts, the decisions people make,
// the append-only ledger that proves them, the current state derived from it, and the
// receipts people keep. service.go holds the legal rules; writer.go the group-commit writer
// that alone appends to the ledger.
package consent

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Service is consent's entry point.
type Service struct {
	db      *sqldb.DB
	reads   *sqldb.Statements // prepared hot-path queries on the read pool
	lookups *lookupGroup      // grouped subject lookups (PostgreSQL), started with the writer
	ids     *identity.Service
	keys    *keyring.Keyring
	now     func() time.Time
	log     *slog.Logger
	writer  *Writer

	catalogs   catalogCache
	configs    configCache
	mailer     Mailer // confirmations of verbal consent (confirm.go); nil sends none
	publicURL  string
	onMaterial func()      // wakes the outdated sweep after a material version is published
	eraseHooks []EraseHook // other domains' part of an erasure (erase.go)
}

// NewService returns the consent service. Start the writer with StartWriter before recording.
func NewService(db *sqldb.DB, ids *identity.Service, keys *keyring.Keyring, now func() time.Time, log *slog.Logger) *Service {
	s := &Service{db: db, ids: ids, keys: keys, now: now, log: log, reads: sqldb.NewStatements(db.ReadSQL(), db.Dialect),
		catalogs: catalogCache{byTenant: map[string]*Catalog{}, generation: map[string]uint64{}},
		configs:  configCache{entries: map[configKey]*configEntry{}, shown: map[string]bool{}, builds: map[string]bool{}, unknown: map[string]time.Time{}}}
	ids.OnTenantChange(s.invalidate)
	return s
}

// DecisionInput is one decision of an interaction as a client sends it.
type DecisionInput struct {
	Purpose  string
	Version  int // 0: the latest published version (refusals only)
	Decision string
	TextHash string // optional: the hash of the text shown, checked against the version
}

// IdempotencyKey identifies a request that may be retried.
type IdempotencyKey struct {
	Route       string
	Key         string
	RequestHash string
}

// RecordRequest is one interaction: one request, one subject, many decisions.
type RecordRequest struct {
	TenantID   string
	Property   *identity.Property   // the channel; required on the collection API
	Identifier *identity.Identifier // nil on the collection API means a new device
	// Public is true for the collection API (widgets and apps): device-level purposes and
	// device identifiers only — unless Person is set.
	Public bool
	// Person is the identified person a collection request acts for, proved by a credential
	// (a verified CIAM access token) rather than named by an identifier: the decisions are
	// the person's, person-level purposes included. Identifier must then be nil. A device id
	// alone never stands for a person.
	Person      *AuthenticatedPerson
	Method      string
	Agent       string
	Language    string
	UIHash      string
	ClientTime  time.Time
	Actor       identity.Actor
	Decisions   []DecisionInput
	ClientIP    string
	UserAgent   string
	Idempotency *IdempotencyKey
	// Channel, when set, names the channel instead of the property's kind (registration).
	Channel string
	// OnlyUndecided makes each decision apply only where the subject has not decided the
	// purpose: a registration not yet verified must not override what the owner of the
	// address decided before.
	OnlyUndecided bool
	// GPC is true when the browser sent Global Privacy Control (Sec-GPC: 1). A grant of a
	// purpose marked gpc_opt_out then needs GPCConfirmed: the person confirmed it in an
	// extra step after being told the signal refuses it.
	GPC          bool
	GPCConfirmed bool
}

// AuthenticatedPerson is a person a credential proved.
type AuthenticatedPerson struct {
	// Identifier names the person: an idp identifier (issuer, sub) for a CIAM token.
	Identifier identity.Identifier
	// Via says what proved it: "ciam_token".
	Via string
	// Device is the device id an app sent with the token, if any: its anonymous history joins
	// the person (LinkTokenDevice) when the request records.
	Device *identity.Identifier
}

// anonymous says whether the request comes from an anonymous device: the collection API
// without an authenticated person.
func (r *RecordRequest) anonymous() bool { return r.Public && r.Person == nil }

// subjectIdentifier is the identifier the request's subject is found by: the authenticated
// person's, else the one the request names.
func (r *RecordRequest) subjectIdentifier() *identity.Identifier {
	if r.Person != nil {
		return &r.Person.Identifier
	}
	return r.Identifier
}

// EventRef names one event written for an interaction.
type EventRef struct {
	ID       string `json:"id"`
	Purpose  string `json:"purpose,omitempty"`
	Version  int    `json:"version,omitempty"`
	Decision string `json:"decision,omitempty"`
	Kind     string `json:"kind"`
	Seq      int64  `json:"seq"`
	Hash     string `json:"hash"`
}

// Outcome is what recording an interaction returns, and what a retry with the same
// Idempotency-Key returns again.
type Outcome struct {
	InteractionID string         `json:"interaction_id"`
	DeviceID      string         `json:"device_id,omitempty"`
	Subject       string         `json:"subject"`
	RecordedAt    time.Time      `json:"recorded_at"`
	Events        []EventRef     `json:"events"`
	State         []PurposeState `json:"state"`
	Receipt       string         `json:"receipt,omitempty"`
	Replayed      bool           `json:"-"`
	// JSON is the outcome encoded once by the writer; a retry with the same
	// Idempotency-Key gets exactly these bytes again.
	JSON []byte `json:"-"`
	// merge is what a merge did (merge.go).
	merge *MergeOutcome
}

const (
	maxDecisions   = 50
	contextMaxDays = 90
)

func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// validate checks the form of a request (400 with fields).
func (r *RecordRequest) validate() error {
	var v identity.Validator
	methods := ServerMethods
	if r.Public {
		methods = PublicMethods
	}
	v.Check(slices.Contains(methods, r.Method), "method", "must be one of "+strings.Join(methods, ", "))
	v.Check(len(r.Decisions) >= 1 && len(r.Decisions) <= maxDecisions, "decisions", "between 1 and "+strconv.Itoa(maxDecisions)+" decisions")
	v.Check(r.Language == "" || identity.ValidLanguage(r.Language), "language", "must be a language tag such as fi")
	v.Check(r.UIHash == "" || validHash(r.UIHash), "ui_hash", "must be a lower-case hex SHA-256")
	v.Check(r.Agent == "" || validCode(strings.TrimSpace(r.Agent), maxAgent), "agent",
		"the agent's id: 1–100 letters, digits and . _ : - (no name or address: it is kept in the ledger for good)")
	v.Check(r.Method != MethodVerbal || strings.TrimSpace(r.Agent) != "", "agent", "a verbal consent names the agent who took it")
	v.Check(!r.Public || r.Agent == "", "agent", "only back-office systems name an agent")
	seen := map[string]bool{}
	for i, d := range r.Decisions {
		f := "decisions[" + strconv.Itoa(i) + "]"
		v.Check(d.Purpose != "", f+".purpose", "is required")
		v.Check(slices.Contains(Decisions, d.Decision), f+".decision", "must be granted, denied, withdrawn or objected")
		v.Check(d.Version >= 0, f+".version", "must be a version number")
		v.Check(d.TextHash == "" || validHash(d.TextHash), f+".text_hash", "must be a lower-case hex SHA-256")
		v.Check(!seen[d.Purpose], f+".purpose", "decides the same purpose twice")
		seen[d.Purpose] = true
	}
	if r.Identifier != nil {
		if err := r.Identifier.Validate("identifier"); err != nil {
			return err
		}
	}
	return v.Err()
}

// resolved is a decision checked against the catalog.
type resolved struct {
	purpose   *CatalogPurpose
	version   *Version
	requested string
	textHash  string
	// textLang is the language of the text whose hash is textHash (the text shown, which
	// may be a fallback's): the receipt names that text's title. Empty when no text is
	// recorded (system decisions).
	textLang string
	// onlyIf, when set, makes the decision apply only while the purpose is in this state
	// (a double opt-in confirmation applies to a pending grant only).
	onlyIf string
	// onlyIfSeq, when set, makes the decision apply only while the purpose's state is still
	// the one its ledger event of this sequence number wrote: a double opt-in link confirms
	// the pending grant it was checked against, not one recorded after it (optin.go).
	onlyIfSeq int64
	// decidedBefore, when set (Unix ms), makes the decision apply only if the current one
	// was made before it: what a person did at a vendor never overrides a newer decision
	// made in Lupa.
	decidedBefore int64
	// decidedAt, when set (Unix ms), is when the person decided, if not when Lupa records
	// it: an import's original time, from which its re-ask interval counts.
	decidedAt int64
}

// importClockSkew is how far an import's client_time may lie ahead of Lupa's clock.
const importClockSkew = 5 * time.Minute

// importedAt dates imported decisions to when the person made them at the source
// (client_time): the re-ask interval counts from then, as it would have had Lupa recorded
// them at the time, and a decision recorded in Lupa since stands. Importing old decisions
// must neither make them fresh nor undo what the person decided later.
func importedAt(decisions []resolved, at int64) {
	for i := range decisions {
		decisions[i].decidedAt, decisions[i].decidedBefore = at, at
	}
}

// maxAgent is how long a verbal consent's agent may be. The agent is an id (validCode), such
// as the call-centre system's "agent-17": it goes into the event's hashed form, which is
// never changed or deleted, so a name or an address there would outlive every erasure.
const maxAgent = 100

// validCode says whether s is a code of at most max characters: an ASCII letter or digit,
// then letters, digits and _ . : -. What goes into an event's hashed form from outside (an
// agent, an erasure's reason) is such a code, never free text that could hold a name or an
// address.
func validCode(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// textFallback is the language whose text is shown when a version has none in the
// request's, after which English, then any: what the banner's configuration shows
// (Version.TextFor). It is the property's default language, else the tenant's.
func (r *RecordRequest) textFallback(c *Catalog) string {
	if r.Property != nil && r.Property.DefaultLanguage != "" {
		return r.Property.DefaultLanguage
	}
	return c.Tenant.DefaultLanguage
}

// resolve checks every decision against the legal rules (422 with fields; 409 for a grant
// of a version that a material version has replaced).
func (r *RecordRequest) resolve(c *Catalog, subjectKind string) ([]resolved, string, error) {
	fallback := r.textFallback(c)
	lang := r.Language
	if lang == "" {
		lang = fallback
	}
	out := make([]resolved, 0, len(r.Decisions))
	var fields []identity.FieldError
	conflict := false
	fail := func(f, msg string) { fields = append(fields, identity.FieldError{Field: f, Message: msg}) }
	for i, d := range r.Decisions {
		f := "decisions[" + strconv.Itoa(i) + "]"
		cp, ok := c.Purpose(d.Purpose)
		switch {
		case !ok:
			fail(f+".purpose", "unknown purpose "+strconv.Quote(d.Purpose))
			continue
		case cp.LegalBasis == BasisNecessary:
			fail(f+".purpose", "strictly necessary storage is information only: it is never asked or recorded as a consent")
			continue
		case cp.Latest == nil:
			fail(f+".purpose", "the purpose has no published version")
			continue
		case cp.Level == LevelPerson && (r.anonymous() || subjectKind == identity.SubjectDevice):
			fail(f+".purpose", "a person-level purpose needs an identified person, not an anonymous device")
			continue
		case r.Property != nil && !cp.InScope(r.Property.ID, r.Property.BrandID):
			fail(f+".purpose", "the purpose is not offered on this property")
			continue
		case d.Decision == Objected && cp.LegalBasis != BasisLegitimateInterest:
			fail(f+".decision", "objection applies to legitimate-interest purposes; use withdrawn or denied")
			continue
		case d.Decision == Granted && r.GPC && cp.GPCOptOut && !r.GPCConfirmed:
			fail(f+".decision", "the browser sends Global Privacy Control, which refuses this purpose: "+
				"a grant needs the person's explicit confirmation (gpc_confirmed)")
			continue
		case r.Method == MethodGPCSignal && (d.Decision == Granted || !cp.GPCOptOut):
			fail(f+".decision", "the Global Privacy Control signal only refuses purposes marked gpc_opt_out")
			continue
		case d.Decision == Granted && d.Version == 0:
			fail(f+".version", "a grant names the published version whose text the person saw")
			continue
		}
		ver := cp.Latest
		if d.Version != 0 {
			ver = cp.Versions[d.Version]
			if ver == nil {
				fail(f+".version", "version "+strconv.Itoa(d.Version)+" of "+cp.Key+" is not published")
				continue
			}
		}
		if d.Decision == Granted && cp.LegalBasis == BasisConsent && ver.Number < cp.MaterialVersion {
			conflict = true
			fail(f+".version", "version "+strconv.Itoa(ver.Number)+" has been replaced by material version "+
				strconv.Itoa(cp.MaterialVersion)+": show its text and ask again")
			continue
		}
		// The text shown: the version's in the language, else the one shown instead of it.
		_, shown := ver.TextFor(lang, fallback)
		want, ok := ver.TextHashes[shown]
		if !ok {
			fail(f+".version", "version "+strconv.Itoa(ver.Number)+" has no text")
			continue
		}
		if d.TextHash != "" && d.TextHash != want {
			fail(f+".text_hash", "is not the hash of version "+strconv.Itoa(ver.Number)+"'s text shown in "+lang+
				" (its text in "+shown+")")
			continue
		}
		out = append(out, resolved{purpose: cp, version: ver, requested: d.Decision, textHash: want, textLang: shown})
	}
	if len(fields) > 0 {
		code := identity.EUnprocessable
		if conflict && len(fields) == 1 {
			code = identity.EConflict
		}
		return nil, "", &identity.Error{Code: code, Message: "the decisions cannot be recorded", Fields: fields}
	}
	return out, lang, nil
}

// Record records one interaction and returns the new state and the signed receipt. The
// call returns only after the ledger entries are committed.
func (s *Service) Record(ctx context.Context, req *RecordRequest) (*Outcome, error) {
	in, err := s.interactionFor(ctx, req)
	if err != nil {
		return nil, err
	}
	if p := req.Person; p != nil && p.Device != nil {
		// The device joins the person only once the request is known to record: a merge is
		// in the ledger for good, and a refused request must leave nothing behind. The link
		// moves the person's chain (and may make the person), so the interaction is prepared
		// again on top of it. A key used before is answered as the writer would, without
		// a link: the retry's device joined at the first try, another request's joins no one.
		if k := req.Idempotency; k != nil {
			a, err := s.storedAnswer(ctx, s.db.Read, req.TenantID, k)
			if err == nil {
				return s.answer(ctx, s.db.Read, req.TenantID, a, k)
			}
			if !identity.IsCode(err, identity.ENotFound) {
				return nil, err
			}
		}
		if err := s.LinkTokenDevice(ctx, req.Property, *p.Device, p.Identifier, req.Actor); err != nil {
			return nil, err
		}
		if in, err = s.interactionFor(ctx, req); err != nil {
			return nil, err
		}
	}
	return s.writer.Submit(ctx, in)
}

// interactionFor checks a request and prepares the interaction the writer records.
func (s *Service) interactionFor(ctx context.Context, req *RecordRequest) (*interaction, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	if req.Public && req.Property == nil {
		return nil, identity.Errorf(identity.EUnauthorized, "a property key is required")
	}
	if req.Public && req.Identifier != nil && req.Identifier.Kind != identity.IDDevice {
		return nil, identity.Unprocessable("identifier.kind", "the collection API takes device identifiers only")
	}
	if !req.Public && req.Identifier == nil {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "identifier", Message: "is required"})
	}
	if req.Person != nil {
		if !req.Public || req.Person.Identifier.SubjectKind() != identity.SubjectPerson {
			return nil, identity.Errorf(identity.EInternal, "an authenticated person is a person's identifier on the collection API")
		}
		if req.Identifier != nil {
			return nil, identity.Unprocessable("identifier", "with a bearer token the subject is the token's person: leave identifier out")
		}
		if err := req.Person.Identifier.Validate("person"); err != nil {
			return nil, err
		}
	}
	// A retry with a known Idempotency-Key is found by the writer, inside the transaction
	// that would write it: one place decides, and first requests pay no extra query.
	c, err := s.Catalog(ctx, req.TenantID)
	if err != nil {
		return nil, err
	}
	return s.prepare(ctx, req, c)
}

// prepare resolves the subject and the decisions into the writer's input.
func (s *Service) prepare(ctx context.Context, req *RecordRequest, c *Catalog) (*interaction, error) {
	now := s.now()
	in := &interaction{tenantID: req.TenantID, id: identity.NewID(), catalog: c, property: req.Property,
		method: req.Method, agent: strings.TrimSpace(req.Agent), uiHash: req.UIHash, actor: string(req.Actor),
		idem: req.Idempotency, receipt: true, identifier: req.subjectIdentifier()}
	if !req.ClientTime.IsZero() {
		in.clientTime = req.ClientTime.UnixMilli()
	}
	if req.Method == MethodImport && in.clientTime > now.Add(importClockSkew).UnixMilli() {
		return nil, identity.Unprocessable("client_time", "an import's client_time is when the person decided: it cannot lie in the future")
	}
	if req.Property != nil {
		in.channel = req.Property.Channel()
	} else {
		in.channel = "api"
	}
	subj, err := s.resolveSubject(ctx, req, in, now)
	if err != nil {
		return nil, err
	}
	decisions, lang, err := req.resolve(c, subj.kind)
	if err != nil {
		return nil, err
	}
	in.decisions, in.language = decisions, lang
	if req.Method == MethodImport && in.clientTime > 0 {
		importedAt(in.decisions, in.clientTime)
	}
	if req.OnlyUndecided {
		for i := range in.decisions {
			in.decisions[i].onlyIf = StateNotAsked
		}
	}
	if req.Channel != "" {
		in.channel = req.Channel
	}
	level := ""
	if subj.kind == identity.SubjectDevice {
		level = LevelDevice
	}
	in.view = c.Asked(req.Property, level)
	if c.Tenant.KeepClientContext && (req.ClientIP != "" || req.UserAgent != "") {
		// A header may hold any byte from 0x80 on; PostgreSQL takes text in UTF-8 only.
		ua := strings.ToValidUTF8(req.UserAgent, "\uFFFD")
		in.context = &clientContext{ipPrefix: truncateIP(req.ClientIP), userAgent: truncate(ua, 512),
			expiresAt: now.AddDate(0, 0, contextMaxDays).UnixMilli()}
	}
	// Plan here, in the request's goroutine, on top of the head just read; the writer
	// keeps this plan when the head has not moved since.
	sign, err := s.keys.SignFunc(ReceiptType)
	if err != nil {
		return nil, err
	}
	in.basis = subj.head
	if in.pre, err = s.planOne(in, subj.head, subj.states, now, sign); err != nil {
		return nil, err
	}
	return in, nil
}

// resolveSubject finds the subject the request names, with its chain head and states, or
// prepares a new one: a new device on the collection API, a new person for an unknown
// customer number.
func (s *Service) resolveSubject(ctx context.Context, req *RecordRequest, in *interaction, now time.Time) (*subjectState, error) {
	named := req.subjectIdentifier()
	if named != nil {
		subj, err := s.lookup(ctx, req.TenantID, *named, true)
		switch {
		case err == nil:
			in.subjectID, in.pseudonym = subj.id, subj.pseudonym
			if req.anonymous() {
				in.deviceID = named.Value
			}
			return subj, nil
		case !identity.IsCode(err, identity.ENotFound):
			return nil, err
		case !req.anonymous() && named.Kind == identity.IDDevice:
			return nil, identity.NotFound("subject")
		}
	}
	id := identity.Identifier{Kind: identity.IDDevice, Value: identity.NewDeviceID()}
	if !req.anonymous() {
		id = *named
	}
	subj, err := s.prepareNewSubject(in, id, now)
	if err != nil {
		return nil, err
	}
	return &subjectState{id: subj.ID, pseudonym: subj.Pseudonym, kind: subj.Kind, states: map[string]*Stored{}}, nil
}

// prepareNewSubject points in at a new subject known by id — a device for a device id, else
// a person — made in memory and inserted with its identifier by the writer.
func (s *Service) prepareNewSubject(in *interaction, id identity.Identifier, now time.Time) (*identity.NewSubject, error) {
	subj, err := s.ids.PrepareSubject(in.tenantID, id.SubjectKind(), now)
	if err != nil {
		return nil, err
	}
	ident, err := s.ids.PrepareIdentifier(in.tenantID, &subj.Subject, id, now)
	if err != nil {
		return nil, err
	}
	in.newSubject, in.newIdentifiers, in.identifier = subj, []*identity.NewIdentifier{ident}, &id
	in.subjectID, in.pseudonym = subj.ID, subj.Pseudonym
	if id.Kind == identity.IDDevice {
		in.deviceID = id.Value
	}
	return subj, nil
}

// truncateIP keeps the network part only: /24 of IPv4, /48 of IPv6.
func truncateIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	bits := 48
	if a.Is4() || a.Is4In6() {
		a, bits = a.Unmap(), 24
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func itoa(n int) string { return strconv.Itoa(n) }

func isUnique(err error) bool { return sqldb.IsUniqueViolation(err) }

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func placeholders(n int) string {
	if n == 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
