package datamap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// Retention is how long a system keeps data: a period counted from an anchor, with the
// law or policy that sets it.
type Retention struct {
	// Preset names the preset the rule came from ("" for a rule of the tenant's own).
	Preset string `json:"preset"`
	Years  int    `json:"years"`
	Months int    `json:"months"`
	Days   int    `json:"days"`
	Anchor string `json:"anchor"`
	// FinancialYearEnd is the last day of the tenant's financial year, "MM-DD" (12-31 for a
	// calendar year); only with the financial-year anchors.
	FinancialYearEnd string `json:"financial_year_end"`
	LegalReference   string `json:"legal_reference"`
	Notes            string `json:"notes"`
}

// Anchors: the moment a retention period is counted from.
const (
	// AnchorEndOfFinancialYear: the end of the financial year the record belongs to.
	AnchorEndOfFinancialYear = "end_of_financial_year"
	// AnchorEndOfCalendarYearAfterFYEnd: the end of the calendar year in which that financial
	// year ended (Finnish Accounting Act 2:10(2), vouchers).
	AnchorEndOfCalendarYearAfterFYEnd = "end_of_calendar_year_after_financial_year_end"
	AnchorCollection                  = "collection"    // when the data was collected
	AnchorLastActivity                = "last_activity" // the customer's last purchase, sign-in or contact
	AnchorContractEnd                 = "contract_end"  // the end of the customer relationship or contract
	AnchorWithdrawal                  = "withdrawal"    // consent withdrawn or an objection made
)

// Anchor is one entry of the anchors' vocabulary.
type Anchor struct {
	Key         string `json:"key"`
	Description string `json:"description"`
}

// Anchors lists the anchors a retention period may be counted from.
var Anchors = []Anchor{
	{AnchorEndOfCalendarYearAfterFYEnd, "the end of the calendar year in which the financial year of the record ended"},
	{AnchorEndOfFinancialYear, "the end of the financial year of the record"},
	{AnchorCollection, "when the data was collected"},
	{AnchorLastActivity, "the customer's last activity: a purchase, a sign-in, a contact"},
	{AnchorContractEnd, "the end of the customer relationship or contract"},
	{AnchorWithdrawal, "the person withdrew consent or objected"},
}

// AnchorKeys lists the keys of Anchors.
var AnchorKeys = func() []string {
	out := make([]string, len(Anchors))
	for i, a := range Anchors {
		out[i] = a.Key
	}
	return out
}()

func financialAnchor(a string) bool {
	return a == AnchorEndOfFinancialYear || a == AnchorEndOfCalendarYearAfterFYEnd
}

// Limits of a period.
const (
	MaxYears  = 100
	MaxMonths = 1200
	MaxDays   = 36500
)

// Preset is a retention rule Lupa ships, with its legal reference.
type Preset struct {
	Key         string    `json:"key"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Rule        Retention `json:"rule"`
}

// Presets are the retention rules Lupa ships; docs/data-map.md explains them.
var Presets = []Preset{
	{Key: "fi_accounting_vouchers", Title: "Finnish Accounting Act: vouchers and business correspondence",
		Description: "Vouchers (invoices, receipts, till rolls), correspondence on business transactions and other " +
			"accounting material: at least six years from the end of the calendar year in which the financial year ended.",
		Rule: Retention{Preset: "fi_accounting_vouchers", Years: 6, Anchor: AnchorEndOfCalendarYearAfterFYEnd,
			FinancialYearEnd: "12-31",
			LegalReference: "Kirjanpitolaki (Accounting Act) 1336/1997, chapter 2, section 10(2): vouchers, business " +
				"correspondence and other accounting material at least six years from the end of the year in which the financial year ended"}},
	{Key: "fi_accounting_books", Title: "Finnish Accounting Act: financial statements and books",
		Description: "Financial statements, the annual report, the books (journal and general ledger), the list of books " +
			"and voucher types, and the chart of accounts: at least ten years from the end of the financial year.",
		Rule: Retention{Preset: "fi_accounting_books", Years: 10, Anchor: AnchorEndOfFinancialYear,
			FinancialYearEnd: "12-31",
			LegalReference: "Kirjanpitolaki (Accounting Act) 1336/1997, chapter 2, section 10(1): financial statements, " +
				"annual report, books, list of books and voucher types, and chart of accounts at least ten years from the end of the financial year"}},
}

// PresetByKey returns the preset with the key.
func PresetByKey(key string) (Preset, bool) {
	for _, p := range Presets {
		if p.Key == key {
			return p, true
		}
	}
	return Preset{}, false
}

// ExpandPreset fills a rule that names a preset with the preset's period, anchor and legal
// reference. The rule may add only its financial year's end and notes: anything else it
// sets is an error, as the preset decides it.
func (r Retention) ExpandPreset(field string) (Retention, error) {
	if r.Preset == "" {
		return r, nil
	}
	p, ok := PresetByKey(r.Preset)
	if !ok {
		keys := make([]string, len(Presets))
		for i, p := range Presets {
			keys[i] = p.Key
		}
		return r, identity.FieldErrors("validation failed", identity.FieldError{Field: field + ".preset", Message: oneOf(keys)})
	}
	var v identity.Validator
	const msg = "comes from the preset: leave it out"
	v.Check(r.Years == 0, field+".years", msg)
	v.Check(r.Months == 0, field+".months", msg)
	v.Check(r.Days == 0, field+".days", msg)
	v.Check(r.Anchor == "" || r.Anchor == p.Rule.Anchor, field+".anchor", msg)
	v.Check(r.LegalReference == "" || r.LegalReference == p.Rule.LegalReference, field+".legal_reference", msg)
	if err := v.Err(); err != nil {
		return r, err
	}
	out := p.Rule
	if r.FinancialYearEnd != "" {
		out.FinancialYearEnd = r.FinancialYearEnd
	}
	out.Notes = r.Notes
	return out, nil
}

func (r *Retention) normalize() {
	r.Preset = strings.TrimSpace(r.Preset)
	r.Anchor = strings.TrimSpace(r.Anchor)
	r.FinancialYearEnd = strings.TrimSpace(r.FinancialYearEnd)
	r.LegalReference = strings.TrimSpace(r.LegalReference)
	r.Notes = strings.TrimSpace(r.Notes)
	if financialAnchor(r.Anchor) && r.FinancialYearEnd == "" {
		r.FinancialYearEnd = "12-31"
	}
}

func (r *Retention) check(v *identity.Validator, field string) {
	if r.Preset != "" {
		_, ok := PresetByKey(r.Preset)
		v.Check(ok, field+".preset", "is not a preset")
	}
	v.Check(r.Years >= 0 && r.Years <= MaxYears, field+".years", "must be from 0 to "+strconv.Itoa(MaxYears))
	v.Check(r.Months >= 0 && r.Months <= MaxMonths, field+".months", "must be from 0 to "+strconv.Itoa(MaxMonths))
	v.Check(r.Days >= 0 && r.Days <= MaxDays, field+".days", "must be from 0 to "+strconv.Itoa(MaxDays))
	v.Check(slices.Contains(AnchorKeys, r.Anchor), field+".anchor", oneOf(AnchorKeys))
	if financialAnchor(r.Anchor) {
		_, _, ok := parseMonthDay(r.FinancialYearEnd)
		v.Check(ok, field+".financial_year_end", "the last day of the financial year as MM-DD, such as 12-31 or 04-30")
	} else {
		v.Check(r.FinancialYearEnd == "", field+".financial_year_end", "only with the anchors "+AnchorEndOfFinancialYear+
			" and "+AnchorEndOfCalendarYearAfterFYEnd)
	}
	v.Check(runes(r.LegalReference) <= MaxReferenceLen, field+".legal_reference", "at most 500 characters")
	v.Check(runes(r.Notes) <= MaxNotesLen, field+".notes", "at most 1000 characters")
}

// Validate checks the rule on its own.
func (r Retention) Validate() error {
	var v identity.Validator
	r.check(&v, "retention")
	return v.Err()
}

// parseMonthDay parses "MM-DD"; 02-29 is allowed (it means the last day of February).
func parseMonthDay(s string) (time.Month, int, bool) {
	if len(s) != 5 || s[2] != '-' {
		return 0, 0, false
	}
	m, err1 := strconv.Atoi(s[:2])
	d, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || m < 1 || m > 12 || d < 1 || d > daysIn(2024, time.Month(m)) {
		return 0, 0, false
	}
	return time.Month(m), d, true
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// date returns the civil date y-m-d, with a day past the month's end as its last day.
func date(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, min(d, daysIn(y, m)), 0, 0, 0, 0, time.UTC)
}

// addPeriod adds years, months and days to a date the way periods are counted in law (the
// Finnish Act on the Computation of Time Limits 150/1930, like most): a period of months or
// years ends on the day with the same number, or on the month's last day when it has no
// such day (31 January + 1 month = 28 or 29 February, never 3 March).
func addPeriod(t time.Time, years, months, days int) time.Time {
	total := int(t.Month()) - 1 + months
	y := t.Year() + years + total/12
	m := time.Month(total%12 + 1)
	return date(y, m, t.Day()).AddDate(0, 0, days)
}

// FinancialYearEnd returns the last day of the financial year that a date falls in, for
// a financial year ending on MM-DD.
func FinancialYearEnd(on time.Time, monthDay string) (time.Time, error) {
	m, d, ok := parseMonthDay(monthDay)
	if !ok {
		return time.Time{}, fmt.Errorf("datamap: financial year end %q is not MM-DD", monthDay)
	}
	day := date(on.Year(), on.Month(), on.Day())
	end := date(day.Year(), m, d)
	if end.Before(day) {
		end = date(day.Year()+1, m, d)
	}
	return end, nil
}

// KeepUntil returns the last day the data must be kept under the rule (inclusive: it may
// be erased from the day after), for a record whose anchor falls on the given date.
//
// For the financial-year anchors, on is any day of the record's financial year — the
// transaction's or voucher's date, or the financial year's last day itself — and the
// financial year is found from FinancialYearEnd. For the other anchors, on is the day of
// the event the anchor names (the collection, the last activity, the contract's end, the
// withdrawal). Times of day and time zones are ignored: on's calendar date counts.
func (r Retention) KeepUntil(on time.Time) (time.Time, error) {
	start := date(on.Year(), on.Month(), on.Day())
	switch r.Anchor {
	case AnchorEndOfFinancialYear, AnchorEndOfCalendarYearAfterFYEnd:
		fye := r.FinancialYearEnd
		if fye == "" {
			fye = "12-31"
		}
		end, err := FinancialYearEnd(start, fye)
		if err != nil {
			return time.Time{}, err
		}
		start = end
		if r.Anchor == AnchorEndOfCalendarYearAfterFYEnd {
			start = date(end.Year(), time.December, 31)
		}
	case AnchorCollection, AnchorLastActivity, AnchorContractEnd, AnchorWithdrawal:
	default:
		return time.Time{}, fmt.Errorf("datamap: unknown retention anchor %q", r.Anchor)
	}
	return addPeriod(start, r.Years, r.Months, r.Days), nil
}
