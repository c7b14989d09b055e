// Package templates holds Lupa's HTML pages as templ components. Components take view
// structs and render nothing but what they are given.
package templates

//go:generate go tool templ generate

// DemoPage is the demo web shop: a page with the banner, a Consent Mode stub and sample
// scripts that run only when their purpose is allowed.
type DemoPage struct {
	Lang        string // fi, sv or en
	PropertyKey string
	WidgetURL   string
	Stub        string // the Consent Mode stub, inline
	Nonce       string // the page's CSP nonce
	Text        DemoText
	Languages   []DemoLink
}

// DemoLink links to the page in another language.
type DemoLink struct {
	Href, Label string
	Current     bool
}

// DemoText is the demo page's words in one language.
type DemoText struct {
	Title, Tagline, Intro, ProductsHeading string
	Products                               []DemoProduct
	AddToBasket                            string
	AnalyticsOff, AnalyticsOn              string
	AdsOff, AdsOn                          string
	PrivacySettings                        string
	JoinHeading, JoinIntro                 string
	Footer                                 string
}

// DemoProduct is one product in the demo shop.
type DemoProduct struct{ Name, Price string }

// DemoTexts are the demo page's texts by language.
var DemoTexts = map[string]DemoText{
	"en": {
		Title: "Demo Market", Tagline: "A web shop that asks before it tracks",
		Intro:           "This page runs Lupa's consent banner. The two boxes below are sample scripts: they start only after you allow their purpose, and stop when you withdraw.",
		ProductsHeading: "This week's offers",
		Products:        []DemoProduct{{"Rye bread", "€2.49"}, {"Cloudberry jam", "€6.90"}, {"Wool socks", "€14.00"}},
		AddToBasket:     "Add to basket",
		AnalyticsOff:    "Analytics is off: no page views are counted.",
		AnalyticsOn:     "Analytics is on: this page view was counted.",
		AdsOff:          "Advertising is off: you see our own offers only.",
		AdsOn:           "Advertising is on: a social media pixel was loaded.",
		PrivacySettings: "Privacy settings",
		JoinHeading:     "Join Demo Market",
		JoinIntro:       "An account keeps your choices the same on every device. The form below is served by Lupa in a frame of its own: this page cannot read what you type in it.",
		Footer:          "Demo Retail Oy · Esimerkkikatu 1, 00100 Helsinki · a demo of Lupa",
	},
	"fi": {
		Title: "Demo Market", Tagline: "Verkkokauppa, joka kysyy ennen kuin seuraa",
		Intro:           "Tällä sivulla toimii Lupan suostumusbanneri. Alla olevat kaksi laatikkoa ovat esimerkkiskriptejä: ne käynnistyvät vasta, kun sallit niiden käyttötarkoituksen, ja pysähtyvät, kun peruutat suostumuksen.",
		ProductsHeading: "Viikon tarjoukset",
		Products:        []DemoProduct{{"Ruisleipä", "2,49 €"}, {"Lakkahillo", "6,90 €"}, {"Villasukat", "14,00 €"}},
		AddToBasket:     "Lisää koriin",
		AnalyticsOff:    "Analytiikka on pois päältä: sivunkatseluja ei lasketa.",
		AnalyticsOn:     "Analytiikka on päällä: tämä sivunkatselu laskettiin.",
		AdsOff:          "Mainonta on pois päältä: näet vain omat tarjouksemme.",
		AdsOn:           "Mainonta on päällä: sosiaalisen median pikseli ladattiin.",
		PrivacySettings: "Tietosuoja-asetukset",
		JoinHeading:     "Liity Demo Marketin asiakkaaksi",
		JoinIntro:       "Tilin avulla valintasi pysyvät samoina kaikilla laitteilla. Alla olevan lomakkeen näyttää Lupa omassa kehyksessään: tämä sivu ei näe, mitä siihen kirjoitat.",
		Footer:          "Demo Retail Oy · Esimerkkikatu 1, 00100 Helsinki · Lupan esittely",
	},
	"sv": {
		Title: "Demo Market", Tagline: "En webbutik som frågar innan den spårar",
		Intro:           "På den här sidan körs Lupas samtyckesbanner. De två rutorna nedan är exempelskript: de startar först när du tillåter deras ändamål och stannar när du återkallar samtycket.",
		ProductsHeading: "Veckans erbjudanden",
		Products:        []DemoProduct{{"Rågbröd", "2,49 €"}, {"Hjortronsylt", "6,90 €"}, {"Ullsockor", "14,00 €"}},
		AddToBasket:     "Lägg i varukorgen",
		AnalyticsOff:    "Analys är avstängd: inga sidvisningar räknas.",
		AnalyticsOn:     "Analys är på: den här sidvisningen räknades.",
		AdsOff:          "Annonsering är avstängd: du ser bara våra egna erbjudanden.",
		AdsOn:           "Annonsering är på: en pixel för sociala medier laddades.",
		PrivacySettings: "Integritetsinställningar",
		JoinHeading:     "Bli kund hos Demo Market",
		JoinIntro:       "Med ett konto är dina val desamma på alla enheter. Formuläret nedan visas av Lupa i en egen ram: den här sidan kan inte läsa vad du skriver i det.",
		Footer:          "Demo Retail Oy · Esimerkkikatu 1, 00100 Helsingfors · en demo av Lupa",
	},
}
