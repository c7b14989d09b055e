// Package receiver is a Standard Webhooks receiver for Lupa's process-level tests and its
// delivery benchmark: what a marketing or CRM system does with Lupa's webhooks, plus the
// bookkeeping a test needs to judge them.
//
// It verifies every message's signature with the official Go library (timestamp included),
// answers 2xx only after it has recorded the message, ignores a webhook-id it has seen (as
// docs/webhooks.md asks receivers to), and keeps per (subject, purpose) the last sequence
// and decision it received, flagging any sequence that does not grow. It measures each new
// message's lag from the change's time in Lupa (the envelope's timestamp, docs/events.md)
// to its receipt, and it can be switched to answer 503 or to drop connections, for outages.
package receiver

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Mode is how the receiver answers.
type Mode int

// The modes.
const (
	Up   Mode = iota // verify, record, answer 204
	Fail             // answer 503 without reading the message
	Down             // close the connection without an answer
)

// Key is a (subject, purpose) pair: the unit of ordering for one endpoint. Subject-level
// messages (subject.merged, subject.erasure_approved) use "#" + the type as the purpose.
type Key struct {
	Subject string
	Purpose string
}

// State is what the receiver knows of a key.
type State struct {
	Sequence         int64
	Decision         string
	PreviousDecision *string
	EventID          string
}

// Message is one verified consent.updated (or subject-level) message, as received first.
type Message struct {
	WebhookID string
	Type      string
	Key       Key
	State
	At  time.Time // when it arrived
	Lag time.Duration
}

// Receiver is an HTTP handler; Start serves it on a loopback port.
type Receiver struct {
	mu        sync.Mutex
	wh        *standardwebhooks.Webhook
	mode      Mode
	seen      map[string]bool // webhook-ids
	keys      map[Key]*State
	events    map[string]string // event_id → webhook-id of its first delivery
	log       []Message
	received  int // verified POSTs, duplicates included
	dups      int // verified POSTs whose webhook-id was seen before
	badSig    int
	problems  []string // sequences that went backwards, unreadable bodies: the first 50
	nProblems int
	lagFrom   time.Time // lags of changes made before this are not kept
	lags      []time.Duration
	srv       *http.Server
	ln        net.Listener
	now       func() time.Time
}

// New returns a receiver that verifies with secret (whsec_…); it may be set later with
// SetSecret, before the endpoint exists.
func New(secret string) (*Receiver, error) {
	r := &Receiver{seen: map[string]bool{}, keys: map[Key]*State{}, events: map[string]string{}, now: time.Now}
	if secret != "" {
		if err := r.SetSecret(secret); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// SetSecret sets the signing secret the messages must verify with.
func (r *Receiver) SetSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("receiver: secret: %w", err)
	}
	r.mu.Lock()
	r.wh = wh
	r.mu.Unlock()
	return nil
}

// Start serves the receiver on 127.0.0.1 and returns its URL.
func (r *Receiver) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	r.ln = ln
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/hooks/lupa", nil
}

// Close stops serving.
func (r *Receiver) Close() error {
	if r.srv == nil {
		return nil
	}
	return r.srv.Close()
}

// SetMode switches how the receiver answers from now on.
func (r *Receiver) SetMode(m Mode) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

// envelope is a message's body (docs/events.md).
type envelope struct {
	Type          string    `json:"type"`
	SchemaVersion int       `json:"schema_version"`
	Timestamp     time.Time `json:"timestamp"`
	Data          struct {
		Subject          string  `json:"subject"`
		Purpose          string  `json:"purpose"`
		Decision         string  `json:"decision"`
		PreviousDecision *string `json:"previous_decision"`
		Sequence         int64   `json:"sequence"`
		EventID          string  `json:"event_id"`
	} `json:"data"`
}

// ServeHTTP receives one message.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	mode, wh := r.mode, r.wh
	r.mu.Unlock()
	switch mode {
	case Fail:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case Down:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if req.Method != http.MethodPost || wh == nil || wh.Verify(body, req.Header) != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	at := r.now()
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		r.mu.Lock()
		r.problem("unreadable body: %v", err)
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received++
	if r.seen[id] {
		r.dups++
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.seen[id] = true
	purpose := env.Data.Purpose
	if env.Type != "consent.updated" {
		purpose = "#" + env.Type
	}
	k := Key{Subject: env.Data.Subject, Purpose: purpose}
	st := State{Sequence: env.Data.Sequence, Decision: env.Data.Decision, PreviousDecision: env.Data.PreviousDecision,
		EventID: env.Data.EventID}
	if old := r.keys[k]; old != nil && st.Sequence <= old.Sequence {
		r.problem("%s %s: sequence %d (%s, webhook-id %s) arrived after %d", k.Subject, k.Purpose, st.Sequence, st.Decision,
			id, old.Sequence)
	} else {
		r.keys[k] = &st
	}
	if env.Data.EventID != "" {
		if _, ok := r.events[env.Data.EventID]; ok {
			r.problem("event %s arrived again under another webhook-id %s", env.Data.EventID, id)
		} else {
			r.events[env.Data.EventID] = id
		}
	}
	lag := at.Sub(env.Timestamp)
	if !env.Timestamp.Before(r.lagFrom) {
		r.lags = append(r.lags, lag)
	}
	r.log = append(r.log, Message{WebhookID: id, Type: env.Type, Key: k, State: st, At: at, Lag: lag})
	w.WriteHeader(http.StatusNoContent)
}

func (r *Receiver) problem(format string, args ...any) {
	r.nProblems++
	if len(r.problems) < 50 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// Stats are the receiver's counters.
type Stats struct {
	Received   int // verified POSTs, duplicates included
	Unique     int // distinct webhook-ids
	Duplicates int // POSTs whose webhook-id had been seen
	BadSig     int // POSTs refused: no or a wrong signature, or a stale timestamp
	Problems   int // sequences that did not grow, an event under two webhook-ids, unreadable bodies
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Received: r.received, Unique: len(r.seen), Duplicates: r.dups, BadSig: r.badSig, Problems: r.nProblems}
}

// Problems returns the first problems found, as text.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// States returns the last state received per key.
func (r *Receiver) States() map[Key]State {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Key]State, len(r.keys))
	for k, v := range r.keys {
		out[k] = *v
	}
	return out
}

// Delivered reports whether the ledger event was received (under any webhook-id).
func (r *Receiver) Delivered(eventID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.events[eventID]
	return ok
}

// Messages returns every new message in the order received.
func (r *Receiver) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.log...)
}

// LastAt returns when the newest new message arrived (zero when none did).
func (r *Receiver) LastAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.log) == 0 {
		return time.Time{}
	}
	return r.log[len(r.log)-1].At
}

// KeepLagsFrom drops the lags measured so far and keeps those of changes Lupa made from t on
// (the envelope's timestamp).
func (r *Receiver) KeepLagsFrom(t time.Time) {
	r.mu.Lock()
	r.lagFrom, r.lags = t, nil
	r.mu.Unlock()
}

// Lags returns the kept lags, in the order the messages arrived.
func (r *Receiver) Lags() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.lags...)
}

// LagQuantile returns the q-quantile (0..1) of the kept lags, and how many there are.
func (r *Receiver) LagQuantile(q float64) (time.Duration, int) {
	r.mu.Lock()
	l := append([]time.Duration(nil), r.lags...)
	r.mu.Unlock()
	if len(l) == 0 {
		return 0, 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))], len(l)
}
