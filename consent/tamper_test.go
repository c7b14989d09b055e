package consent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// The tamper tests play someone with write access to the database who edits the ledger
// behind Lupa's back. The database refuses that first (append-only triggers); the attacker
// then turns the triggers off, as a table owner can, and `lupa ledger verify` must find
// every edit and name the first broken link.

// ledgerFixture is a small ledger: three subjects with chains of 3, 2 and 1 events, and a
// signed root over their heads.
type ledgerFixture struct {
	s1, s2, s3 string // subject ids
	// target is the middle event of s1's chain, whose columns the attacker edits.
	target int64
}

func (e *env) ledgerFixture(t *testing.T) ledgerFixture {
	t.Helper()
	ctx := context.Background()
	uiHash := strings.Repeat("ab", 32)
	req := e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))
	req.UIHash, req.ClientTime = uiHash, e.clock.Now().Add(-time.Second)
	first, err := e.svc.Record(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	e.record(t, first.DeviceID, consent.MethodBannerRejectAll, deny("analytics"))

	verbal := e.customerRequest("C-100", consent.MethodVerbal, "agent-7", grant("marketing_email", 1))
	if _, err := e.svc.Record(ctx, verbal); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	e.recordCustomer(t, "C-100", deny("personalisation"))
	third := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))

	if _, made, err := e.svc.SignRoot(ctx, e.tenant(), "test"); err != nil || !made {
		t.Fatalf("sign root: made=%v err=%v", made, err)
	}
	return ledgerFixture{
		s1: e.subjectID(t, device(first.DeviceID)), s2: e.subjectID(t, *customer("C-100")),
		s3: e.subjectID(t, device(third.DeviceID)), target: 2,
	}
}

var ledgerTables = []string{"consent_events", "chain_heads", "ledger_roots", "ledger_root_leaves"}

// snapshot copies the ledger tables so each tamper case can be undone.
func (e *env) snapshot(t *testing.T) {
	t.Helper()
	for _, tbl := range ledgerTables {
		e.exec(t, "CREATE TABLE backup_"+tbl+" AS SELECT * FROM "+tbl)
	}
}

func (e *env) restore(t *testing.T) {
	t.Helper()
	for _, tbl := range ledgerTables {
		e.exec(t, "DELETE FROM "+tbl)
		e.exec(t, "INSERT INTO "+tbl+" SELECT * FROM backup_"+tbl)
	}
}

// bypassAppendOnly turns the append-only triggers off, as the owner of the tables can.
func (e *env) bypassAppendOnly(t *testing.T) {
	t.Helper()
	if e.db.Dialect == sqldb.Postgres {
		for _, tbl := range []string{"consent_events", "ledger_roots", "ledger_root_leaves"} {
			e.exec(t, "ALTER TABLE "+tbl+" DISABLE TRIGGER USER")
		}
		return
	}
	for _, tbl := range []string{"consent_events", "ledger_roots", "ledger_root_leaves"} {
		e.exec(t, "DROP TRIGGER "+tbl+"_no_update")
		e.exec(t, "DROP TRIGGER "+tbl+"_no_delete")
	}
}

func TestLedgerRefusesUpdateAndDelete(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		for _, q := range []string{
			"UPDATE consent_events SET decision = 'granted' WHERE subject_id = ? AND seq = 2",
			"DELETE FROM consent_events WHERE subject_id = ? AND seq = 3",
			"UPDATE ledger_root_leaves SET seq = 1 WHERE subject_id = ?",
			"DELETE FROM ledger_root_leaves WHERE subject_id = ?",
			"UPDATE ledger_roots SET root = 'x' WHERE tenant_id <> ?",
			"DELETE FROM ledger_roots WHERE tenant_id <> ?",
		} {
			err := e.db.Write.Exec(q, f.s1).Error
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: want the append-only refusal, got %v", q, err)
			}
		}
		if e.db.Dialect == sqldb.Postgres {
			for _, table := range []string{"consent_events", "ledger_roots", "ledger_root_leaves"} {
				if err := e.db.Write.Exec("TRUNCATE " + table).Error; err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("TRUNCATE %s: want the append-only refusal, got %v", table, err)
				}
			}
		}
		if n := e.count(t, "consent_events", "decision = 'denied' AND subject_id = ? AND seq = 2", f.s1); n != 1 {
			t.Fatalf("the refused UPDATE changed the row")
		}
		rep := e.mustVerifyOK(t)
		if rep.Chains != 3 || rep.Events != 6 || rep.Roots != 1 {
			t.Fatalf("clean ledger: want 3 chains, 6 events, 1 root, got %+v", rep)
		}
	})
}

func TestVerifyFindsEveryEdit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.ledgerFixture(t)
		e.bypassAppendOnly(t)
		e.snapshot(t)
		zero := strings.Repeat("0", 64)

		type want struct {
			kind, subject string
			seq           int64 // 0: any
		}
		check := func(t *testing.T, w want) {
			t.Helper()
			rep := e.verify(t)
			if rep.OK || rep.FirstBroken == nil {
				t.Fatalf("tampering was not found: %+v", rep)
			}
			fb := rep.FirstBroken
			if fb.Kind != w.kind || fb.SubjectID != w.subject || (w.seq != 0 && fb.Seq != w.seq) {
				t.Fatalf("first broken link: want %s at subject %s seq %d, got %+v (all: %+v)", w.kind, w.subject, w.seq, fb, rep.Problems)
			}
			if fb.Message == "" {
				t.Fatal("the problem has no message")
			}
		}
		run := func(name string, tamper func(t *testing.T), w want) {
			t.Run(name, func(t *testing.T) {
				e.mustVerifyOK(t)
				defer func() {
					e.restore(t)
					e.mustVerifyOK(t) // the restore undid it: each case is about its own edit alone
				}()
				tamper(t)
				check(t, w)
			})
		}

		// Every column of the hashed form, changed on the middle event of s1's chain.
		columns := []struct {
			column, value string
			want          want
		}{
			{"id", "'00000000-0000-7000-8000-000000000000'", want{"hash_mismatch", f.s1, 2}},
			{"kind", "'objection'", want{"hash_mismatch", f.s1, 2}},
			{"pseudonym", "'ps_someone_else'", want{"hash_mismatch", f.s1, 2}},
			{"seq", "102", want{"sequence_gap", f.s1, 3}},
			{"prev_hash", "'" + zero + "'", want{"broken_link", f.s1, 2}},
			{"purpose_key", "'analytics'", want{"hash_mismatch", f.s1, 2}},
			{"purpose_version", "7", want{"hash_mismatch", f.s1, 2}},
			{"version_hash", "'" + zero + "'", want{"hash_mismatch", f.s1, 2}},
			{"text_hash", "'" + zero + "'", want{"hash_mismatch", f.s1, 2}},
			{"decision", "'granted'", want{"hash_mismatch", f.s1, 2}},
			{"decision", "''", want{"hash_mismatch", f.s1, 2}},
			{"property_id", "'another-property'", want{"hash_mismatch", f.s1, 2}},
			{"property_id", "''", want{"hash_mismatch", f.s1, 2}},
			{"channel", "'store'", want{"hash_mismatch", f.s1, 2}},
			{"method", "'banner_accept_all'", want{"hash_mismatch", f.s1, 2}},
			{"agent", "'agent-9'", want{"hash_mismatch", f.s1, 2}},
			{"language", "'sv'", want{"hash_mismatch", f.s1, 2}},
			{"language", "''", want{"hash_mismatch", f.s1, 2}},
			{"ui_hash", "'" + zero + "'", want{"hash_mismatch", f.s1, 2}},
			{"ui_hash", "''", want{"hash_mismatch", f.s1, 2}},
			{"actor", "'system'", want{"hash_mismatch", f.s1, 2}},
			{"interaction_id", "'another-interaction'", want{"hash_mismatch", f.s1, 2}},
			{"reason", "'reask_interval'", want{"hash_mismatch", f.s1, 2}},
			{"ref", "'" + zero + "'", want{"hash_mismatch", f.s1, 2}},
			{"server_time", "server_time - 86400000", want{"hash_mismatch", f.s1, 2}},
			{"client_time", "client_time + 1", want{"hash_mismatch", f.s1, 2}},
			{"client_time", "0", want{"hash_mismatch", f.s1, 2}},
			{"hash", "'" + zero + "'", want{"hash_mismatch", f.s1, 2}},
			// The tenant is hashed too: moving an event to another tenant leaves a gap.
			{"tenant_id", "'another-tenant'", want{"sequence_gap", f.s1, 3}},
		}
		for _, c := range columns {
			run("column "+c.column+"="+c.value, func(t *testing.T) {
				e.exec(t, "UPDATE consent_events SET "+c.column+" = "+c.value+" WHERE subject_id = ? AND seq = ?", f.s1, f.target)
				var changed int64
				e.db.Write.Raw("SELECT count(*) FROM (SELECT * FROM consent_events EXCEPT SELECT * FROM backup_consent_events) x").Scan(&changed)
				if changed != 1 {
					t.Fatalf("the edit changed %d rows, want exactly one", changed)
				}
			}, c.want)
		}

		// A value of another type, which no Event can hold. SQLite keeps what it is given (text
		// or a real in an integer column); a PostgreSQL owner retypes the column to text first,
		// and the numbers the other events keep there still verify.
		retyped := []struct {
			column, value string
			sqliteOnly    bool
			want          want
		}{
			{"client_time", "'x'", false, want{"hash_mismatch", f.s1, 2}},
			{"client_time", "'1.5'", false, want{"hash_mismatch", f.s1, 2}},
			{"server_time", "'yesterday'", false, want{"hash_mismatch", f.s1, 2}},
			{"purpose_version", "'one'", false, want{"hash_mismatch", f.s1, 2}},
			{"purpose_version", "x'01'", true, want{"hash_mismatch", f.s1, 2}},
			// A text seq sorts after every number in SQLite: seq 3 now follows seq 1.
			{"seq", "'two'", true, want{"sequence_gap", f.s1, 3}},
		}
		for _, c := range retyped {
			if c.sqliteOnly && e.db.Dialect != sqldb.SQLite {
				continue
			}
			run("column "+c.column+"="+c.value+" of another type", func(t *testing.T) {
				if e.db.Dialect == sqldb.Postgres {
					var typ string // the migration's type (purpose_version is an integer, the times bigint)
					if err := e.db.Write.Raw(`SELECT format_type(atttypid, atttypmod) FROM pg_attribute
						WHERE attrelid = 'consent_events'::regclass AND attname = ?`, c.column).Scan(&typ).Error; err != nil || typ == "" {
						t.Fatalf("type of %s: %q %v", c.column, typ, err)
					}
					e.exec(t, "ALTER TABLE consent_events ALTER COLUMN "+c.column+" TYPE text")
					e.reconnect(t)
					t.Cleanup(func() { // after the restore has put the numbers back
						e.exec(t, "ALTER TABLE consent_events ALTER COLUMN "+c.column+" TYPE "+typ+" USING "+c.column+"::"+typ)
						e.reconnect(t)
					})
				}
				e.exec(t, "UPDATE consent_events SET "+c.column+" = "+c.value+" WHERE subject_id = ? AND seq = ?", f.s1, f.target)
			}, c.want)
		}

		run("middle event deleted", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ? AND seq = 2", f.s1)
		}, want{"sequence_gap", f.s1, 3})

		run("first event deleted", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ? AND seq = 1", f.s1)
		}, want{"sequence_gap", f.s1, 2})

		run("newest event deleted", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ? AND seq = 3", f.s1)
		}, want{"head_mismatch", f.s1, 2})

		rewind := func(t *testing.T, subject string, seq int64) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ? AND seq > ?", subject, seq)
			e.exec(t, `UPDATE chain_heads SET seq = ?, hash = (SELECT hash FROM consent_events WHERE subject_id = ? AND seq = ?)
				WHERE subject_id = ?`, seq, subject, seq, subject)
		}
		run("newest event deleted and the head moved back", func(t *testing.T) {
			rewind(t, f.s1, 2)
		}, want{"events_deleted", f.s1, 3})

		run("newest event deleted, head moved back, then a new root signed", func(t *testing.T) {
			rewind(t, f.s1, 2)
			// Lupa's next root covers the rewound head; the earlier root still holds seq 3.
			e.signNewRoot(t)
		}, want{"events_deleted", f.s1, 3})

		run("newest event replaced by a forged one", func(t *testing.T) {
			// The attacker rewrites s3's only event and recomputes its hash and the head,
			// so the chain itself is consistent; only the signed root knows better.
			var ev consent.Event
			if err := e.db.Write.Raw(`SELECT tenant_id, subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version,
				version_hash, text_hash, decision, property_id, channel, method, agent, language, ui_hash, actor,
				interaction_id, reason, ref, server_time, client_time, prev_hash, hash
				FROM consent_events WHERE subject_id = ?`, f.s3).Scan(&ev).Error; err != nil {
				t.Fatal(err)
			}
			ev.Decision = consent.Denied
			ev.Hash = ev.ComputeHash()
			e.exec(t, "UPDATE consent_events SET decision = ?, hash = ? WHERE subject_id = ?", ev.Decision, ev.Hash, f.s3)
			e.exec(t, "UPDATE chain_heads SET hash = ? WHERE subject_id = ?", ev.Hash, f.s3)
		}, want{"chain_rewritten", f.s3, 1})

		run("events reordered", func(t *testing.T) {
			e.exec(t, "UPDATE consent_events SET seq = -2 WHERE subject_id = ? AND seq = 2", f.s1)
			e.exec(t, "UPDATE consent_events SET seq = 2 WHERE subject_id = ? AND seq = 3", f.s1)
			e.exec(t, "UPDATE consent_events SET seq = 3 WHERE subject_id = ? AND seq = -2", f.s1)
		}, want{"broken_link", f.s1, 2})

		run("whole chain dropped", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ?", f.s2)
			e.exec(t, "DELETE FROM chain_heads WHERE subject_id = ?", f.s2)
		}, want{"chain_deleted", f.s2, 2})

		run("whole chain dropped, then a new root signed", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ?", f.s2)
			e.exec(t, "DELETE FROM chain_heads WHERE subject_id = ?", f.s2)
			e.signNewRoot(t)
		}, want{"chain_deleted", f.s2, 2})

		run("chain's events deleted, head left", func(t *testing.T) {
			e.exec(t, "DELETE FROM consent_events WHERE subject_id = ?", f.s2)
		}, want{"chain_missing", f.s2, 2})

		run("root leaf changed", func(t *testing.T) {
			e.exec(t, "UPDATE ledger_root_leaves SET hash = ? WHERE subject_id = ?", zero, f.s3)
		}, want{"chain_rewritten", f.s3, 1})

		run("root leaf moved to an older event", func(t *testing.T) {
			e.exec(t, `UPDATE ledger_root_leaves SET seq = 2, hash = (SELECT hash FROM consent_events WHERE subject_id = ? AND seq = 2)
				WHERE subject_id = ?`, f.s1, f.s1)
		}, want{"root_mismatch", "", 0})

		run("root leaf deleted", func(t *testing.T) {
			e.exec(t, "DELETE FROM ledger_root_leaves WHERE subject_id = ?", f.s3)
		}, want{"root_mismatch", "", 0})

		run("signed root's hash changed", func(t *testing.T) {
			e.exec(t, "UPDATE ledger_roots SET root = ?", zero)
		}, want{"root_signature", "", 0})

		run("signed root deleted", func(t *testing.T) {
			e.exec(t, "DELETE FROM ledger_roots")
		}, want{"root_missing", "", 0})
	})
}

// reconnect replaces the pools' connections, as `lupa ledger verify` starts with its own:
// PostgreSQL refuses to run a statement prepared before a column was retyped.
func (e *env) reconnect(t *testing.T) {
	t.Helper()
	for _, g := range []*gorm.DB{e.db.Write, e.db.Read} {
		d, err := g.DB()
		if err != nil {
			t.Fatal(err)
		}
		d.SetMaxIdleConns(0) // closes the idle connections: all of them, between statements
		d.SetMaxIdleConns(4)
	}
}

// signNewRoot has Lupa sign its next root an hour later, after another subject's decision.
func (e *env) signNewRoot(t *testing.T) {
	t.Helper()
	e.clock.Add(time.Hour)
	e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
	if _, made, err := e.svc.SignRoot(context.Background(), e.tenant(), "test"); err != nil || !made {
		t.Fatalf("sign root: made=%v err=%v", made, err)
	}
}
