package consent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
)

// Two instances of Lupa on one database record for the same person at the same time: the
// person's chain stays one chain, with no gap and no fork.
func TestTwoInstancesKeepOneChain(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		instances := []*consent.Service{e.svc, e.secondInstance(t)}
		e.recordCustomer(t, "C-1", grant("marketing_email", 1))
		subject := e.subjectID(t, *customer("C-1"))

		const perInstance = 15
		var wg sync.WaitGroup
		errs := make(chan error, 2*perInstance)
		start := make(chan struct{})
		for i := range 2 * perInstance {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := grant("marketing_email", 1)
				if i%2 == 1 {
					d = deny("marketing_email")
				}
				req := e.customerRequest("C-1", consent.MethodAPI, "", d, grant("personalisation", 1))
				if i%3 == 0 {
					req = e.customerRequest("C-1", consent.MethodVerbal, fmt.Sprintf("agent-%d", i), d)
				}
				<-start
				_, err := instances[i%2].Record(ctx, req)
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent record: %v", err)
			}
		}
		var seqs []int64
		e.db.Write.Raw("SELECT seq FROM consent_events WHERE subject_id = ? ORDER BY seq", subject).Scan(&seqs)
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("sequence numbers are not contiguous: %v", seqs)
			}
		}
		want := 1 + 2*perInstance*2 - (2*perInstance+2)/3 // verbal requests carry one decision
		if len(seqs) != want {
			t.Fatalf("%d events in the chain, want %d", len(seqs), want)
		}
		var head int64
		e.db.Write.Raw("SELECT seq FROM chain_heads WHERE subject_id = ?", subject).Scan(&head)
		if head != int64(want) {
			t.Fatalf("head at seq %d, chain has %d events", head, want)
		}
		for _, svc := range instances {
			rep, err := svc.Verify(ctx, e.tenant())
			if err != nil || !rep.OK || rep.Chains != 1 || rep.Events != int64(want) {
				t.Fatalf("verify: %+v %v", rep, err)
			}
		}
	})
}

// The same new customer number arrives at two instances at once: it becomes one person.
func TestTwoInstancesCreateOneCustomer(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		instances := []*consent.Service{e.svc, e.secondInstance(t)}
		for round := range 5 {
			number := fmt.Sprintf("NEW-%d", round)
			const n = 6
			var wg sync.WaitGroup
			outs := make([]*consent.Outcome, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := e.customerRequest(number, consent.MethodAPI, "", grant("marketing_email", 1))
					<-start
					outs[i], errs[i] = instances[i%2].Record(ctx, req)
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d, request %d: %v", round, i, err)
				}
				if outs[i].Subject != outs[0].Subject {
					t.Fatalf("round %d: requests for one customer number landed on different subjects", round)
				}
			}
			subject := e.subjectID(t, *customer(number))
			if c := e.count(t, "identifiers", "kind = 'customer_number' AND subject_id = ?", subject); c != 1 {
				t.Fatalf("round %d: %d identifiers", round, c)
			}
			if c := e.count(t, "consent_events", "subject_id = ?", subject); c != n {
				t.Fatalf("round %d: %d events on the customer's chain, want %d", round, c, n)
			}
		}
		if c := e.count(t, "subjects", "kind = 'person'"); c != 5 {
			t.Fatalf("%d people, want 5", c)
		}
		e.mustVerifyOK(t)
	})
}
