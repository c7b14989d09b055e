package consent

import (
	"strconv"
	"time"
)

// Event kinds.
const (
	KindDecision  = "decision"  // a person granted, refused or withdrew consent
	KindObjection = "objection" // a person objected to a legitimate-interest purpose (Art. 21)
	KindExpiry    = "expiry"    // the re-ask interval passed
	KindOutdated  = "outdated"  // a material new version made an earlier grant stop counting
	KindMerge     = "merge"     // another subject's chain joined this one
	KindErasure   = "erasure"   // the subject's key and identifiers were destroyed
)

// Decisions.
const (
	Granted   = "granted"
	Denied    = "denied"
	Withdrawn = "withdrawn"
	Objected  = "objected"
)

// PendingConfirmation is the decision recorded for a grant of a double opt-in purpose
// until the person confirms it by email; it is not a grant. Lupa records it itself: no
// request may send it.
const PendingConfirmation = "pending_confirmation"

// Decisions lists the decisions a request may carry.
var Decisions = []string{Granted, Denied, Withdrawn, Objected}

// Methods: how a decision was collected.
const (
	MethodBannerAcceptAll = "banner_accept_all"
	MethodBannerRejectAll = "banner_reject_all"
	MethodBannerCustom    = "banner_custom"
	MethodCheckbox        = "checkbox"
	MethodDashboard       = "dashboard"
	MethodAPI             = "api"
	MethodImport          = "import"
	MethodVerbal          = "verbal"
	MethodGPCSignal       = "gpc_signal"
	MethodSystem          = "system"
	// MethodDoubleOptIn is the confirmation of a pending grant from the link of an email.
	MethodDoubleOptIn = "double_opt_in"
)

// Methods lists every method; PublicMethods those a widget or app may use.
var (
	Methods       = []string{MethodBannerAcceptAll, MethodBannerRejectAll, MethodBannerCustom, MethodCheckbox, MethodDashboard, MethodAPI, MethodImport, MethodVerbal, MethodGPCSignal, MethodSystem, MethodDoubleOptIn}
	PublicMethods = []string{MethodBannerAcceptAll, MethodBannerRejectAll, MethodBannerCustom, MethodCheckbox, MethodDashboard, MethodAPI, MethodGPCSignal}
	ServerMethods = []string{MethodCheckbox, MethodDashboard, MethodAPI, MethodImport, MethodVerbal}
)

// LedgerFormat is the version of the hashed form, field "v".
const LedgerFormat = 1

// Event is one immutable entry of a subject's chain. Only the fields listed in Canonical
// are hashed; docs/ledger.md documents them so anyone can verify a chain.
type Event struct {
	TenantID       string `json:"-"`
	SubjectID      string `json:"-"`
	Seq            int64  `json:"seq"`
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Pseudonym      string `json:"subject"`
	PurposeKey     string `json:"purpose,omitempty"`
	PurposeVersion int    `json:"purpose_version,omitempty"`
	VersionHash    string `json:"version_hash,omitempty"`
	TextHash       string `json:"text_hash,omitempty"`
	Decision       string `json:"decision,omitempty"`
	PropertyID     string `json:"property,omitempty"`
	Channel        string `json:"channel,omitempty"`
	Method         string `json:"method,omitempty"`
	Agent          string `json:"agent,omitempty"`
	Language       string `json:"language,omitempty"`
	UIHash         string `json:"ui_hash,omitempty"`
	Actor          string `json:"actor,omitempty"`
	InteractionID  string `json:"interaction,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Ref            string `json:"ref,omitempty"`
	ServerTime     int64  `json:"server_time"`
	ClientTime     int64  `json:"client_time,omitempty"`
	PrevHash       string `json:"prev"`
	Hash           string `json:"hash"`
}

// Canonical returns the hashed form of the event: RFC 8785 JSON of the documented fields.
// Empty strings and zero numbers are left out, except the fields every event has. The
// fields are written directly in JCS key order (all keys are ASCII, so byte order is UTF-16
// order); canonicalMap, the general form, must give the same bytes — a test holds them
// together.
func (e *Event) Canonical() []byte {
	w := jcsWriter{b: make([]byte, 0, 768)}
	w.b = append(w.b, '{')
	w.str("actor", e.Actor, false)
	w.str("agent", e.Agent, false)
	w.str("channel", e.Channel, false)
	w.num("client_time", e.ClientTime, false)
	w.str("decision", e.Decision, false)
	w.str("id", e.ID, true)
	w.str("interaction", e.InteractionID, false)
	w.str("kind", e.Kind, true)
	w.str("language", e.Language, false)
	w.str("method", e.Method, false)
	w.str("prev", e.PrevHash, true)
	w.str("property", e.PropertyID, false)
	w.str("purpose", e.PurposeKey, false)
	w.num("purpose_version", int64(e.PurposeVersion), false)
	w.str("reason", e.Reason, false)
	w.str("ref", e.Ref, false)
	w.num("seq", e.Seq, true)
	w.num("server_time", e.ServerTime, true)
	w.str("subject", e.Pseudonym, true)
	w.str("tenant", e.TenantID, true)
	w.str("text_hash", e.TextHash, false)
	w.str("ui_hash", e.UIHash, false)
	w.num("v", LedgerFormat, true)
	w.str("version_hash", e.VersionHash, false)
	return append(w.b, '}')
}

type jcsWriter struct {
	b    []byte
	more bool
}

func (w *jcsWriter) key(k string) {
	if w.more {
		w.b = append(w.b, ',')
	}
	w.more = true
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jcsWriter) str(k, v string, always bool) {
	if v == "" && !always {
		return
	}
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *jcsWriter) num(k string, v int64, always bool) {
	if v == 0 && !always {
		return
	}
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// ComputeHash returns the event's hash: SHA-256 of its canonical form, hex.
func (e *Event) ComputeHash() string { return sha256Hex(e.Canonical()) }

// Time returns the server time of the event.
func (e *Event) Time() time.Time { return time.UnixMilli(e.ServerTime).UTC() }
