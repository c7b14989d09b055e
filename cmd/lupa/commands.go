package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/migrations"
)

func migrate(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	a, err := open(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer a.db.Close()
	ok, err := migrations.Current(ctx, a.db.SQL(), a.db.Dialect)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema is current: %v (%s)\n", ok, a.db.Location)
	return nil
}

func tenantCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "create" {
		return errors.New("usage: lupa tenant create NAME")
	}
	a, err := open(ctx, cfg, log, cfg.AutoMigrate)
	if err != nil {
		return err
	}
	defer a.db.Close()
	name := strings.Join(args[1:], " ")
	t, key, err := a.ids.CreateTenant(ctx, identity.TenantInput{Name: name, LegalName: name}, "cli")
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "tenant %s (%s)\nadmin API key (shown once): %s\n", t.Slug, t.ID, key)
	return nil
}

// describe spells out a validation error for the terminal.
func describe(err error) error {
	var e *identity.Error
	if errors.As(err, &e) && len(e.Fields) > 0 {
		parts := make([]string, len(e.Fields))
		for i, f := range e.Fields {
			parts[i] = f.Field + " " + f.Message
		}
		return fmt.Errorf("%s: %s", e.Message, strings.Join(parts, "; "))
	}
	return err
}

func ledgerCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "verify" {
		return errors.New("usage: lupa ledger verify")
	}
	a, err := open(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer a.db.Close()
	reports, err := a.consent.VerifyAll(ctx)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	for _, r := range reports {
		if encErr := enc.Encode(r); encErr != nil {
			return encErr
		}
	}
	if errors.Is(err, consent.ErrVerifyFailed) {
		for _, r := range reports {
			if r.FirstBroken != nil {
				return fmt.Errorf("tenant %s: first broken link: %s: %s (%s)", r.Tenant, r.FirstBroken.Kind,
					r.FirstBroken.Message, problemPlace(r.FirstBroken))
			}
		}
	}
	return err
}

// problemPlace names the place of a problem: a chain's event, or a signed root for the problems
// of the roots themselves, which belong to no subject.
func problemPlace(p *consent.Problem) string {
	switch {
	case p.SubjectID == "":
		return fmt.Sprintf("root %d", p.Root)
	case p.Root != 0:
		return fmt.Sprintf("subject %s, seq %d, root %d", p.SubjectID, p.Seq, p.Root)
	}
	return fmt.Sprintf("subject %s, seq %d", p.SubjectID, p.Seq)
}

func keysCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return errors.New("usage: lupa keys rotate")
	}
	a, err := open(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer a.db.Close()
	ids, err := a.keys.Rotate(ctx)
	if err != nil {
		return err
	}
	n, err := a.ids.RehashIdentifiers(ctx)
	if err != nil {
		return fmt.Errorf("re-hash identifiers under the new lookup key: %w", err)
	}
	fmt.Fprintf(stdout, "new keys: %s\nidentifiers re-hashed and re-encrypted: %d\nold keys are kept for verifying and decrypting; running instances load the new keys within a minute\n",
		strings.Join(ids, ", "), n)
	return nil
}
