// Package integrations delivers what happens in Lupa to the systems outside it: domain
// events (written by consent's writer in the transaction of each change) become deliveries
// per subscribed endpoint, in order per (subject, purpose, endpoint), superseded when a
// newer change overtakes them, retried on a schedule and kept as a log. Sending itself is
// the Sender's (package webhook signs and POSTs).
package integrations

import (
	"encoding/json"
	"time"
)

// Event types delivered to endpoints; docs/events.md documents their schema.
const (
	TypeConsentUpdated         = "consent.updated"
	TypeSubjectMerged          = "subject.merged"
	TypeSubjectErasureApproved = "subject.erasure_approved"
	// TypeSubjectEmailChanged is written when a person's email address changes. Only
	// connectors receive it (they move the person's record at the vendor); it carries no
	// address.
	TypeSubjectEmailChanged = "subject.email_changed"
)

// EventTypes lists every type an endpoint can subscribe to.
var EventTypes = []string{TypeConsentUpdated, TypeSubjectMerged, TypeSubjectErasureApproved}

// SchemaVersion is the version of the payloads below.
const SchemaVersion = 1

// Recipient kinds of a target.
const (
	RecipientProcessor  = "processor"
	RecipientThirdParty = "third_party"
)

// Reasons of a consent.updated.
const (
	ReasonDecision = "decision"
	ReasonExpiry   = "expiry"
	ReasonOutdated = "outdated"
	ReasonMerge    = "merge"
	ReasonGPC      = "gpc"
	// ReasonAccountDeleted: the person's account was deleted (the company's CIAM sent
	// user.deleted, or the person deleted their Lupa account) and every grant was withdrawn
	// with it; the person decided nothing about the purpose itself.
	ReasonAccountDeleted = "account_deleted"
)

// Envelope is the JSON body of every webhook (the shape Standard Webhooks recommends).
type Envelope struct {
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Timestamp     time.Time       `json:"timestamp"`
	Data          json.RawMessage `json:"data"`
}

// ConsentUpdated is the data of a consent.updated event: one change of one subject's
// decision about one purpose.
type ConsentUpdated struct {
	Subject  string `json:"subject"` // the subject's pseudonym
	Purpose  string `json:"purpose"`
	Version  int    `json:"version,omitempty"`
	Decision string `json:"decision"`
	// PreviousDecision is the decision last delivered to this endpoint for the subject and
	// purpose; null when none was.
	PreviousDecision *string   `json:"previous_decision"`
	Reason           string    `json:"reason"`
	Channel          string    `json:"channel"`
	Time             time.Time `json:"time"`
	Sequence         int64     `json:"sequence"`
	EventID          string    `json:"event_id"`
}

// SubjectMerged is the data of a subject.merged event: merged_from's history now belongs to
// subject (a device's decisions joined a customer's record).
type SubjectMerged struct {
	Subject    string    `json:"subject"`
	MergedFrom string    `json:"merged_from"`
	Purposes   []string  `json:"purposes"` // purposes whose decision was carried over
	Time       time.Time `json:"time"`
	Sequence   int64     `json:"sequence"`
}

// SubjectErasureApproved is the data of a subject.erasure_approved event: the person's
// erasure request was approved; every recipient erases what it holds of them.
type SubjectErasureApproved struct {
	Subject   string    `json:"subject"`
	RequestID string    `json:"request_id,omitempty"`
	Time      time.Time `json:"time"`
	Sequence  int64     `json:"sequence"`
}

// SubjectEmailChanged is the data of a subject.email_changed delivery.
type SubjectEmailChanged struct {
	Subject  string    `json:"subject"`
	Time     time.Time `json:"time"`
	Sequence int64     `json:"sequence"`
}

// domainPayload is what the fan-out reads of a domain_events payload (consent.DomainEvent,
// schema_version 1, and subject.erasure_approved's request_id).
type domainPayload struct {
	Subject    string         `json:"subject"`
	SubjectID  string         `json:"subject_id"`
	Channel    string         `json:"channel"`
	Method     string         `json:"method"`
	At         time.Time      `json:"at"`
	Changes    []domainChange `json:"changes"`
	MergedFrom string         `json:"merged_from"`
	RequestID  string         `json:"request_id"`
}

type domainChange struct {
	EventID  string `json:"event_id"`
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	Purpose  string `json:"purpose"`
	Version  int    `json:"version"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"` // the ledger event's
}
