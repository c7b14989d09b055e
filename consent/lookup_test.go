package consent_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// Many state reads at once — on PostgreSQL they travel to the database together, in one
// statement per group — each get their own subject's state: never a neighbour's, never
// another tenant's, and an unknown device is not found.
func TestConcurrentReadsGetTheirOwnSubject(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		other, _, err := e.ids.CreateTenant(ctx, identity.TenantInput{Name: "Toinen Oy"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		const devices = 24
		type want struct{ id, subject, analytics, social string }
		wants := make([]want, devices)
		for i := range wants {
			a, s := grant("analytics", 1), deny("social_advertising")
			if i%2 == 1 {
				a = deny("analytics")
			}
			if i%3 == 0 {
				s = grant("social_advertising", 1)
			}
			out := e.record(t, "", consent.MethodBannerCustom, a, s)
			wants[i] = want{out.DeviceID, out.Subject, stateOf(out.State, "analytics").State, stateOf(out.State, "social_advertising").State}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 20 {
					w := wants[(g*7+round)%devices]
					switch round % 4 {
					case 1: // an unknown device
						_, err := e.svc.DeviceState(ctx, e.demo.WebShop, identity.NewDeviceID())
						if !isNotFound(err) {
							errs <- errors.New("an unknown device was found")
							return
						}
					case 3: // a known device, asked for by another tenant
						_, err := e.svc.SubjectState(ctx, other.ID, identity.Identifier{Kind: identity.IDDevice, Value: w.id}, nil)
						if !isNotFound(err) {
							errs <- errors.New("another tenant's device was found")
							return
						}
					default:
						v, err := e.svc.DeviceState(ctx, e.demo.WebShop, w.id)
						if err != nil {
							errs <- err
							return
						}
						if v.Subject != w.subject || v.DeviceID != w.id || stateOf(v.State, "analytics").State != w.analytics ||
							stateOf(v.State, "social_advertising").State != w.social {
							errs <- errors.New("a read answered with another subject's state")
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

func isNotFound(err error) bool {
	var e *identity.Error
	return errors.As(err, &e) && e.Code == identity.ENotFound
}
