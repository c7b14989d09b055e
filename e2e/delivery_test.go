// Package e2e holds process-level tests: they build the real `lupa` binary, run `lupa serve`
// processes on the test PostgreSQL server (LUPA_TEST_POSTGRES_URL), use Lupa only through its
// HTTP API, kill it with SIGKILL, and read the database only for the final checks.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/e2e/receiver"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
)

// TestDeliveryCrash: under a load of consent writes (the collection API for devices and the
// server API for customers, each subject changing many times) with a webhook endpoint
// subscribed, `lupa serve` is killed with SIGKILL six times at random moments and started
// again, and the receiver is out of service (503, then no answer) for 4 s. At the end every event the load was answered 201 for has been delivered, or was
// superseded by a delivered later change of the same subject and purpose; what the receiver
// holds equals what Lupa answers; and no sequence went backwards at the receiver.
func TestDeliveryCrash(t *testing.T) {
	runDeliveries(t, scenario{instances: 1, kills: 6, workers: 6, devices: 30, customers: 30, extra: 3 * time.Second,
		outage: true})
}

// TestDeliveryTwoInstances: two `lupa serve` on one PostgreSQL, the load spread over both,
// deliver every event once: the receiver never sees a webhook-id twice.
func TestDeliveryTwoInstances(t *testing.T) {
	runDeliveries(t, scenario{instances: 2, workers: 6, devices: 30, customers: 30, extra: 8 * time.Second})
}

type scenario struct {
	instances int
	kills     int           // SIGKILLs of the first instance, each after 1.5–4 s of life
	workers   int           // clients, each owning its share of the subjects
	devices   int           // subjects written through the collection API
	customers int           // subjects written through the server API
	extra     time.Duration // load after the last kill (or in all, without kills)
	outage    bool          // the receiver fails for 4 s after the second kill
}

var (
	devicePurposes = []string{"analytics", "social_advertising"}
	personPurposes = []string{"marketing_email", "personalisation", "brand_sharing", "partner_sharing"}
)

// loadSubject is one subject of the load; only its worker touches it.
type loadSubject struct {
	customer  string // customer number; empty for a device
	device    string // the device id Lupa issued; empty until the first answer
	pseudonym string
}

// ackedEvent is a ledger event an answer 201 named.
type ackedEvent struct {
	Subject, Purpose, Decision string
	Seq                        int64
}

type consentLoad struct {
	t         *testing.T
	admin     string
	app       string
	urls      []string
	mu        sync.Mutex
	acked     map[string]ackedEvent // event id → event
	requests  int
	retries   int
	failures  []string
	nextIdemp int64
}

// answer is the part of a consent answer the load reads.
type answer struct {
	DeviceID string `json:"device_id"`
	Subject  string `json:"subject"`
	Events   []struct {
		ID       string `json:"id"`
		Purpose  string `json:"purpose"`
		Decision string `json:"decision"`
		Seq      int64  `json:"seq"`
	} `json:"events"`
}

// change records one interaction for s, retrying with the same Idempotency-Key until it is
// answered 201 (the server may be dead or restarting) or the deadline passes.
func (l *consentLoad) change(rng *rand.Rand, s *loadSubject, client *http.Client, deadline time.Time) {
	purposes := devicePurposes
	if s.customer != "" {
		purposes = personPurposes
	}
	n := 1 + rng.IntN(2)
	var decisions []map[string]any
	for _, i := range rng.Perm(len(purposes))[:n] {
		d := "granted"
		if rng.IntN(2) == 0 {
			d = "denied"
		}
		decisions = append(decisions, map[string]any{"purpose": purposes[i], "version": 1, "decision": d})
	}
	l.mu.Lock()
	l.nextIdemp++
	key := "crash-" + strconv.FormatInt(l.nextIdemp, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	l.mu.Unlock()
	for try := 0; ; try++ {
		base := l.urls[rng.IntN(len(l.urls))]
		var status int
		var body []byte
		var err error
		if s.customer != "" {
			status, body, err = call(context.Background(), client, http.MethodPost, base+"/v1/subjects/consents", map[string]any{
				"identifier": map[string]string{"kind": "customer_number", "value": s.customer},
				"method":     "api", "language": "fi", "decisions": decisions},
				"Authorization", "Bearer "+l.admin, "Idempotency-Key", key)
		} else {
			b := map[string]any{"method": "banner_custom", "language": "fi", "decisions": decisions}
			if s.device != "" {
				b["identifier"] = map[string]string{"kind": "device", "value": s.device}
			}
			status, body, err = call(context.Background(), client, http.MethodPost, base+"/v1/consents?property="+l.app, b,
				"Idempotency-Key", key)
		}
		if err == nil && status == http.StatusCreated {
			var a answer
			if err := json.Unmarshal(body, &a); err != nil {
				l.fail("unreadable answer: %v: %s", err, body)
				return
			}
			if s.customer == "" && s.device == "" {
				s.device = a.DeviceID
			}
			if s.pseudonym == "" {
				s.pseudonym = a.Subject
			} else if s.pseudonym != a.Subject {
				l.fail("subject %s answered as %s", s.pseudonym, a.Subject)
			}
			l.mu.Lock()
			l.requests++
			l.retries += try
			for _, e := range a.Events {
				l.acked[e.ID] = ackedEvent{Subject: a.Subject, Purpose: e.Purpose, Decision: e.Decision, Seq: e.Seq}
			}
			l.mu.Unlock()
			return
		}
		retryable := err != nil || status >= 500 || status == http.StatusConflict || status == http.StatusTooManyRequests
		if !retryable {
			l.fail("answered %d: %s", status, body)
			return
		}
		if time.Now().After(deadline) {
			l.fail("not answered 201 by the deadline (last: %d %v %s)", status, err, body)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *consentLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
}

func runDeliveries(t *testing.T, sc scenario) {
	dbURL := sqldbtest.URL(t, sqldb.Postgres) // a fresh, migrated database; fails in CI without PostgreSQL
	rcv, err := receiver.New("")
	if err != nil {
		t.Fatal(err)
	}
	hookURL, err := rcv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()

	env := map[string]string{"LUPA_DATABASE_URL": dbURL, "LUPA_MASTER_KEY": newMasterKey(), "LUPA_DATA_DIR": t.TempDir(),
		"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true", "LUPA_RATE_LIMIT": "100000", "LUPA_RATE_BURST": "100000",
		"LUPA_SHUTDOWN_TIMEOUT": "5s"}
	procs := []*lupaProc{startLupaOnFreePort(t, env)}
	addrs := []string{procs[0].Addr}
	admin, app := demoKeys(t, procs[0])
	for i := 1; i < sc.instances; i++ {
		procs = append(procs, startLupaOnFreePort(t, env))
		addrs = append(addrs, procs[i].Addr)
	}
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	b := mustCall(t, http.MethodPost, procs[0].URL+"/v1/admin/webhooks", map[string]any{"url": hookURL,
		"description": "e2e receiver", "event_types": []string{"consent.updated"}, "recipient_kind": "processor"},
		http.StatusCreated, "Authorization", "Bearer "+admin)
	if err := json.Unmarshal(b, &created); err != nil || created.Secret == "" {
		t.Fatalf("create webhook: %v %s", err, b)
	}
	if err := rcv.SetSecret(created.Secret); err != nil {
		t.Fatal(err)
	}

	l := &consentLoad{t: t, admin: admin, app: app, acked: map[string]ackedEvent{}}
	for _, p := range procs {
		l.urls = append(l.urls, p.URL)
	}
	var subjects []*loadSubject
	for range sc.devices {
		subjects = append(subjects, &loadSubject{})
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range sc.customers {
		subjects = append(subjects, &loadSubject{customer: fmt.Sprintf("E2E-%s-%d", suffix, i)})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range sc.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			client := &http.Client{Timeout: 10 * time.Second}
			var mine []*loadSubject
			for i := w; i < len(subjects); i += sc.workers {
				mine = append(mine, subjects[i])
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.change(rng, mine[rng.IntN(len(mine))], client, time.Now().Add(90*time.Second))
			}
		}()
	}

	// Kill the first instance at random moments and start it again on the same address.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 99))
	var lastKill time.Time
	for i := range sc.kills {
		time.Sleep(1500*time.Millisecond + time.Duration(rng.IntN(2500))*time.Millisecond)
		l.mu.Lock()
		n := len(l.acked)
		l.mu.Unlock()
		procs[0].kill()
		lastKill = time.Now()
		t.Logf("kill -9 #%d after %d acknowledged events, %d received", i+1, n, rcv.Stats().Unique)
		procs[0] = startLupa(t, addrs[0], env)
		if i == 1 && sc.outage {
			// The receiver fails for a while too: 503s, then connections closed unanswered.
			t.Logf("receiver: 503 for 2 s, then down for 2 s")
			rcv.SetMode(receiver.Fail)
			time.Sleep(2 * time.Second)
			rcv.SetMode(receiver.Down)
			time.Sleep(2 * time.Second)
			rcv.SetMode(receiver.Up)
		}
	}
	time.Sleep(sc.extra)
	close(stop)
	wg.Wait()
	loadEnd := time.Now()
	l.mu.Lock()
	t.Logf("load: %d interactions answered 201 (%d retried requests), %d events acknowledged", l.requests, l.retries, len(l.acked))
	for _, f := range l.failures {
		t.Errorf("load: %s", f)
	}
	l.mu.Unlock()
	if l.requests == 0 {
		t.Fatal("no interaction was acknowledged")
	}

	// Wait for the backlog to drain. A killed instance's claims are taken over when their
	// lease runs out (a minute; docs/webhooks.md), so allow for that after the last kill.
	db := openDB(t, dbURL)
	wait := 60 * time.Second
	if !lastKill.IsZero() {
		wait = time.Until(lastKill.Add(2 * time.Minute))
	}
	deadline := time.Now().Add(wait)
	var pending, outbox int64
	for {
		if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'),
			(SELECT COUNT(*) FROM delivery_outbox)`).Scan(&pending, &outbox); err != nil {
			t.Fatal(err)
		}
		if pending == 0 && outbox == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s, %d deliveries are still pending and %d events not fanned out", time.Since(loadEnd).Round(time.Second),
				pending, outbox)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("drained %s after the load ended", time.Since(loadEnd).Round(100*time.Millisecond))

	// Every acknowledged event: delivered, or superseded by a delivered later one of its key.
	type row struct {
		id, subject, purpose, status, eventID string
		seq                                   int64
	}
	rows, err := db.Query(`SELECT id, subject_id, purpose, seq, status, payload FROM deliveries WHERE endpoint_id = $1`, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]row{}
	maxDelivered := map[[2]string]int64{} // (subject id, purpose) → the highest delivered seq
	statuses := map[string]int{}
	for rows.Next() {
		var r row
		var payload string
		if err := rows.Scan(&r.id, &r.subject, &r.purpose, &r.seq, &r.status, &payload); err != nil {
			t.Fatal(err)
		}
		var p struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal([]byte(payload), &p)
		r.eventID = p.EventID
		byEvent[r.eventID] = r
		statuses[r.status]++
		if r.status == "delivered" {
			k := [2]string{r.subject, r.purpose}
			maxDelivered[k] = max(maxDelivered[k], r.seq)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("deliveries by status: %v; receiver: %+v", statuses, rcv.Stats())
	missing := 0
	for id, e := range l.acked {
		r, ok := byEvent[id]
		switch {
		case !ok:
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged event %s (%s %s seq %d %s) has no delivery", id, e.Subject, e.Purpose, e.Seq, e.Decision)
			}
		case r.status == "delivered":
			if !rcv.Delivered(id) {
				t.Errorf("event %s is marked delivered but the receiver never got it", id)
			}
		case r.status == "superseded":
			if maxDelivered[[2]string{r.subject, r.purpose}] <= r.seq {
				t.Errorf("event %s (%s %s seq %d) is superseded but no later change of its key was delivered", id, e.Subject,
					e.Purpose, e.Seq)
			}
		default:
			t.Errorf("acknowledged event %s (%s %s seq %d) ended %s", id, e.Subject, e.Purpose, e.Seq, r.status)
		}
	}
	if missing > 10 {
		t.Errorf("%d acknowledged events in all have no delivery", missing)
	}
	for s, n := range statuses {
		if s != "delivered" && s != "superseded" {
			t.Errorf("%d deliveries ended %s", n, s)
		}
	}

	// No sequence went backwards, nothing failed verification, and (without crashes) every
	// message came once.
	st := rcv.Stats()
	for _, p := range rcv.Problems() {
		t.Errorf("receiver: %s", p)
	}
	if st.BadSig > 0 {
		t.Errorf("%d messages did not verify with the Standard Webhooks library", st.BadSig)
	}
	if sc.kills == 0 && st.Duplicates > 0 {
		t.Errorf("%d messages arrived twice (same webhook-id) without any crash", st.Duplicates)
	}

	// The receiver's final state equals Lupa's, subject by subject, read through the API.
	states := rcv.States()
	known := map[string]bool{}
	client := &http.Client{Timeout: 30 * time.Second}
	base := procs[0].URL
	for _, s := range subjects {
		if s.pseudonym == "" {
			continue // never acknowledged
		}
		known[s.pseudonym] = true
		var status int
		var body []byte
		var err error
		if s.customer != "" {
			status, body, err = call(context.Background(), client, http.MethodPost, base+"/v1/subjects/state",
				map[string]any{"identifier": map[string]string{"kind": "customer_number", "value": s.customer}},
				"Authorization", "Bearer "+admin)
		} else {
			status, body, err = call(context.Background(), client, http.MethodGet, base+"/v1/consents?property="+app, nil,
				"Lupa-Device-Id", s.device)
		}
		if err != nil || status != http.StatusOK {
			t.Fatalf("state of %s: %d %v %s", s.pseudonym, status, err, body)
		}
		var view struct {
			Subject string `json:"subject"`
			State   []struct {
				Purpose string `json:"purpose"`
				State   string `json:"state"`
			} `json:"state"`
		}
		if err := json.Unmarshal(body, &view); err != nil {
			t.Fatal(err)
		}
		if view.Subject != s.pseudonym {
			t.Errorf("state of %s answered for %s", s.pseudonym, view.Subject)
		}
		for _, e := range view.State {
			got, ok := states[receiver.Key{Subject: s.pseudonym, Purpose: e.Purpose}]
			switch {
			case e.State == "not_asked":
				if ok {
					t.Errorf("%s %s: the receiver holds %s, Lupa has not asked", s.pseudonym, e.Purpose, got.Decision)
				}
			case !ok:
				t.Errorf("%s %s: Lupa holds %s, the receiver nothing", s.pseudonym, e.Purpose, e.State)
			case got.Decision != e.State:
				t.Errorf("%s %s: Lupa holds %s, the receiver %s (seq %d)", s.pseudonym, e.Purpose, e.State, got.Decision, got.Sequence)
			}
		}
	}
	var strangers []string
	for k := range states {
		if !known[k.Subject] {
			strangers = append(strangers, k.Subject+" "+k.Purpose)
		}
	}
	sort.Strings(strangers)
	if len(strangers) > 0 {
		t.Errorf("the receiver got messages about %d keys of subjects no answer named: %s", len(strangers),
			strings.Join(strangers[:min(5, len(strangers))], ", "))
	}
	for _, p := range procs {
		p.stop()
	}
}
