package datamap_test

import (
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/integrations/datamap"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func preset(t *testing.T, key, fyEnd string) datamap.Retention {
	t.Helper()
	r, err := datamap.Retention{Preset: key, FinancialYearEnd: fyEnd}.ExpandPreset("retention")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("preset %s does not validate: %v", key, err)
	}
	return r
}

// TestKeepUntilAccountingAct: the Finnish Accounting Act (kirjanpitolaki 1336/1997) 2:10
// counts its two periods from different moments: vouchers six years from the end of the
// calendar year in which the financial year ended, the books ten years from the end of the
// financial year itself.
func TestKeepUntilAccountingAct(t *testing.T) {
	for _, c := range []struct {
		name, preset, fyEnd, on, want string
	}{
		// A calendar financial year 2025.
		{"voucher, calendar year, a March sale", "fi_accounting_vouchers", "", "2025-03-15", "2031-12-31"},
		{"voucher, calendar year, the year's last day", "fi_accounting_vouchers", "12-31", "2025-12-31", "2031-12-31"},
		{"voucher, calendar year, new year's day", "fi_accounting_vouchers", "12-31", "2026-01-01", "2032-12-31"},
		{"books, calendar year", "fi_accounting_books", "12-31", "2025-06-30", "2035-12-31"},
		// A financial year from May to April: the year 2025/26 ends on 30 April 2026.
		{"voucher, May–April year, a June sale", "fi_accounting_vouchers", "04-30", "2025-06-01", "2032-12-31"},
		{"voucher, May–April year, the year's last day", "fi_accounting_vouchers", "04-30", "2026-04-30", "2032-12-31"},
		{"voucher, May–April year, the next year's first day", "fi_accounting_vouchers", "04-30", "2026-05-01", "2033-12-31"},
		{"books, May–April year", "fi_accounting_books", "04-30", "2025-06-01", "2036-04-30"},
		{"books, May–April year, given the year's end", "fi_accounting_books", "04-30", "2026-04-30", "2036-04-30"},
		// A financial year ending with February: 29 February in leap years.
		{"books, year ending in February, leap year", "fi_accounting_books", "02-29", "2027-06-01", "2038-02-28"},
		{"books, year ending in February, to a leap year", "fi_accounting_books", "02-28", "2025-12-01", "2036-02-28"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := preset(t, c.preset, c.fyEnd)
			got, err := r.KeepUntil(day(c.on))
			if err != nil {
				t.Fatal(err)
			}
			if got.Format("2006-01-02") != c.want {
				t.Fatalf("%s on %s with the financial year ending %q: keep until %s, want %s",
					c.preset, c.on, r.FinancialYearEnd, got.Format("2006-01-02"), c.want)
			}
		})
	}
}

func TestKeepUntilEvents(t *testing.T) {
	for _, c := range []struct {
		name string
		rule datamap.Retention
		on   string
		want string
	}{
		{"30 days after a withdrawal", datamap.Retention{Days: 30, Anchor: datamap.AnchorWithdrawal}, "2026-11-26", "2026-12-26"},
		{"2 years after the contract ended", datamap.Retention{Years: 2, Anchor: datamap.AnchorContractEnd}, "2024-02-29", "2026-02-28"},
		{"a month from 31 January is 28 February", datamap.Retention{Months: 1, Anchor: datamap.AnchorCollection}, "2026-01-31", "2026-02-28"},
		{"a month from 31 January in a leap year", datamap.Retention{Months: 1, Anchor: datamap.AnchorCollection}, "2028-01-31", "2028-02-29"},
		{"14 months from last activity", datamap.Retention{Months: 14, Anchor: datamap.AnchorLastActivity}, "2025-11-30", "2027-01-30"},
		{"years, months and days", datamap.Retention{Years: 1, Months: 2, Days: 3, Anchor: datamap.AnchorCollection}, "2025-12-31", "2027-03-03"},
		{"nothing: erase at the anchor", datamap.Retention{Anchor: datamap.AnchorWithdrawal}, "2026-11-26", "2026-11-26"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.rule.KeepUntil(day(c.on))
			if err != nil {
				t.Fatal(err)
			}
			if got.Format("2006-01-02") != c.want {
				t.Fatalf("keep until %s, want %s", got.Format("2006-01-02"), c.want)
			}
		})
	}
	// The calendar date counts, whatever the time of day.
	late := time.Date(2025, 12, 31, 23, 59, 0, 0, time.FixedZone("EET", 2*3600))
	r := preset(t, "fi_accounting_vouchers", "")
	if got, _ := r.KeepUntil(late); got.Format("2006-01-02") != "2031-12-31" {
		t.Fatalf("late on the year's last day: %s", got)
	}
	if _, err := (datamap.Retention{Years: 1, Anchor: "whenever"}).KeepUntil(day("2026-01-01")); err == nil {
		t.Fatal("an unknown anchor gave a date")
	}
	if _, err := (datamap.Retention{Years: 1, Anchor: datamap.AnchorEndOfFinancialYear, FinancialYearEnd: "13-01"}).KeepUntil(day("2026-01-01")); err == nil {
		t.Fatal("a malformed financial year end gave a date")
	}
}

func TestPresets(t *testing.T) {
	for _, p := range datamap.Presets {
		if p.Rule.Preset != p.Key || p.Rule.LegalReference == "" || p.Title == "" || p.Description == "" {
			t.Errorf("preset %s is not complete: %+v", p.Key, p)
		}
	}
	// A preset decides its period: a rule may add its financial year's end and notes only.
	if _, err := (datamap.Retention{Preset: "fi_accounting_books", Years: 3}).ExpandPreset("retention"); err == nil {
		t.Fatal("a preset with its own years expanded")
	}
	if _, err := (datamap.Retention{Preset: "fi_ledger"}).ExpandPreset("retention"); err == nil {
		t.Fatal("an unknown preset expanded")
	}
	r, err := datamap.Retention{Preset: "fi_accounting_books", FinancialYearEnd: "06-30", Notes: "n"}.ExpandPreset("retention")
	if err != nil || r.Years != 10 || r.Anchor != datamap.AnchorEndOfFinancialYear || r.FinancialYearEnd != "06-30" || r.Notes != "n" {
		t.Fatalf("expanded %+v, %v", r, err)
	}
}
