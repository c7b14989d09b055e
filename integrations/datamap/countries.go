package datamap

import "strings"

// iso3166 holds the officially assigned ISO 3166-1 alpha-2 codes (249).
var iso3166 = func() map[string]bool {
	const codes = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW`
	m := map[string]bool{}
	for _, c := range strings.Fields(codes) {
		m[c] = true
	}
	return m
}()

// eea holds the countries of the European Economic Area (the EU's 27, Iceland,
// Liechtenstein and Norway) and the codes of territories that are part of the EU with
// their own code (Åland, the French outermost regions). Data may move between them
// without a transfer mechanism.
var eea = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE
IS LI NO AX GF GP MQ RE YT MF`) {
		m[c] = true
	}
	return m
}()

// countryHints help with codes people commonly mistake for ISO 3166-1 alpha-2.
var countryHints = map[string]string{"UK": "the United Kingdom is GB", "EL": "Greece is GR", "EU": "name the country"}

// ValidCountry reports whether c is an officially assigned ISO 3166-1 alpha-2 code.
func ValidCountry(c string) bool { return iso3166[c] }

// InEEA reports whether c is in the European Economic Area.
func InEEA(c string) bool { return eea[c] }
