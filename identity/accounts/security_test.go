package accounts_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/password"
)

type noMail struct{}

func (noMail) Send(context.Context, mail.Message) error { return nil }

// TestResetChecksTheLinkBeforeHashing: a reset with a link that does not work costs no
// password hashing. The form's POST is not limited per client (its link is the proof), yet
// Reset hashed the new password before it looked at the link: anyone could keep the
// bounded hashing pool full with made-up links, and every sign-in and registration was
// then answered "busy". Here the pool is full, as such a flood would keep it: a made-up
// link must be refused as a bad link, not as an overload.
func TestResetChecksTheLinkBeforeHashing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		// One worker and one place in the queue, both taken by slow hashes.
		slow := password.Params{Memory: 64 * 1024, Time: 8, Threads: 1, SaltLen: 16, KeyLen: 32}
		h := password.NewHasher(slow, 1, 1)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _, _ = h.Hash(context.Background(), "hidas salasana") })
		}
		defer wg.Wait()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if running, waiting := h.Stats(); running == 1 && waiting == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the pool did not fill")
			}
		}
		svc := accounts.New(e.db, e.ids, h, noMail{}, e.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)),
			accounts.Options{LinkBase: "https://lupa.example"})
		for _, link := range []string{e.tenant.ID + "." + strings.Repeat("A", 43), "other-tenant." + strings.Repeat("B", 43)} {
			if _, err := svc.Reset(context.Background(), link, "uusi pitkä salasana"); err != accounts.ErrLink {
				t.Fatalf("a made-up reset link: %v, want ErrLink without hashing", err)
			}
		}
	})
}
