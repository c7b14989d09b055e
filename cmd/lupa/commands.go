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
	"github.com/lupa-cmp/lupa/identity/keyring"
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

const tenantUsage = "usage: lupa tenant create [--slug SLUG] NAME"

func tenantCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) < 1 || args[0] != "create" {
		return errors.New(tenantUsage)
	}
	var words []string
	slug := ""
	for i := 1; i < len(args); i++ {
		switch arg := args[i]; {
		case arg == "--slug":
			if i++; i == len(args) {
				return fmt.Errorf("--slug needs a value; %s", tenantUsage)
			}
			slug = args[i]
		case strings.HasPrefix(arg, "--slug="):
			slug = strings.TrimPrefix(arg, "--slug=")
		case strings.HasPrefix(arg, "-"):
			return fmt.Errorf("unknown flag %s; %s", arg, tenantUsage)
		default:
			words = append(words, arg)
		}
	}
	name := strings.Join(words, " ")
	if name == "" {
		return errors.New(tenantUsage)
	}
	if slug == "" && identity.SlugFrom(name) == "" {
		return fmt.Errorf("no slug can be made from the name %q: give one with --slug SLUG (lower-case letters, digits and hyphens)", name)
	}
	a, err := open(ctx, cfg, log, cfg.AutoMigrate)
	if err != nil {
		return err
	}
	defer a.db.Close()
	t, key, err := a.ids.CreateTenant(ctx, identity.TenantInput{Slug: slug, Name: name, LegalName: name}, "cli")
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
	// The identifiers are not re-hashed here: running instances that have not loaded the
	// new lookup key would no longer find them (keyring.LookupKeyDelay).
	fmt.Fprintf(stdout, "new keys: %s\n"+
		"old keys are kept for verifying, decrypting and searching; running instances load the new keys within a minute\n"+
		"the new signing key is published at once and signs after %s, when every cached copy of the key set has it\n"+
		"new identifiers are hashed with the new lookup key after %s; running instances then move the existing ones to the new keys (or the next start does)\n",
		strings.Join(ids, ", "), keyring.SigningKeyDelay, keyring.LookupKeyDelay)
	return nil
}
