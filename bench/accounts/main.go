// Command accounts creates verified customer accounts for the sign-in benchmark
// (bench/run.sh) through Lupa's own accounts service, next to a running `lupa serve` on the
// same database: registration with a password hashed with OWASP's argon2id parameters
// (the server checks the same hashes), and verification with the link the service mails.
// The mail stays in this process. It is set-up, not a measurement.
//
// Environment: LUPA_DATABASE_URL and LUPA_MASTER_KEY, the server's.
//
//	accounts -n 200 -password "…" -out emails.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// inbox keeps the verification links the service mails, by address.
type inbox struct {
	mu    sync.Mutex
	links map[string]string
}

var linkRe = regexp.MustCompile(`/account/verify\?t=([^\s&]+)`)

func (b *inbox) Send(_ context.Context, m mail.Message) error {
	found := linkRe.FindStringSubmatch(m.Text)
	if found == nil {
		return fmt.Errorf("no verification link in the mail to %s", m.To)
	}
	token, err := url.QueryUnescape(found[1])
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.links[m.To] = token
	b.mu.Unlock()
	return nil
}

func main() {
	n := flag.Int("n", 200, "accounts")
	pw := flag.String("password", "a long and honest benchmark password", "every account's password")
	out := flag.String("out", "accounts.txt", "write the addresses here, one a line")
	prefix := flag.String("prefix", "bench", "the local part's prefix")
	flag.Parse()
	if err := run(*n, *pw, *out, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "accounts:", err)
		os.Exit(1)
	}
}

func run(n int, pw, out, prefix string) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqldb.Open(ctx, os.Getenv("LUPA_DATABASE_URL"), os.TempDir(), sqldb.Options{MaxConns: 4})
	if err != nil {
		return err
	}
	defer db.Close()
	master, err := keyring.LoadMasterKey(os.Getenv("LUPA_MASTER_KEY"), "", "", false)
	if err != nil {
		return err
	}
	now := func() time.Time { return time.Now().UTC() }
	keys, err := keyring.Open(ctx, db, master, now)
	if err != nil {
		return err
	}
	ids := identity.New(db, keys, now)
	tenant, err := ids.TenantBySlug(ctx, consent.DemoSlug)
	if err != nil {
		return err
	}
	box := &inbox{links: map[string]string{}}
	svc := accounts.New(db, ids, password.NewHasher(password.OWASP, 0, 0), box, now, log, accounts.Options{LinkBase: "http://bench"})
	var emails []string
	for i := 0; i < n; i++ {
		email := fmt.Sprintf("%s-%d@bench.example", prefix, i)
		a, err := svc.Register(ctx, tenant.ID, tenant.Slug, accounts.Registration{Email: email, Password: pw, Language: "fi"})
		if err != nil || a == nil {
			return fmt.Errorf("register %s: %v", email, err)
		}
		if _, err := svc.Verify(ctx, box.links[email]); err != nil {
			return fmt.Errorf("verify %s: %w", email, err)
		}
		emails = append(emails, email)
	}
	fmt.Printf("accounts_created=%d\n", len(emails))
	return os.WriteFile(out, []byte(strings.Join(emails, "\n")+"\n"), 0o600)
}
