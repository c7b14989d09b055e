package templates

// RegisterView is the registration form that the registration widget shows in an iframe.
type RegisterView struct {
	Lang       string
	T          RegisterText
	Nonce      string
	Property   string // the property's public key
	Origin     string // the embedding page's origin, where messages go
	Controller string
	PolicyURL  string
	UIHash     string
	Purposes   []RegisterPurpose
	Email      string
	Error      string
	Fields     map[string]string
	Done       bool
	// AskBirthYear is true when the tenant's minimum age rule is on.
	AskBirthYear bool
	BirthYear    string
	// Providers are the tenant's "Continue with …" buttons; FormOrigins (for the CSP, not
	// shown) are where their POSTs end up.
	Providers   []ProviderButton
	FormOrigins []string
	// SignedIn: Done after a registration through a provider (nothing to confirm by email).
	SignedIn bool
}

// RegisterPurpose is one unticked box of the form.
type RegisterPurpose struct {
	Key, Title, Description, PolicyURL string
	Lang                               string // of Title and Description, when not the form's
	Recipients                         []string
	Checked                            bool
	DoubleOptIn                        bool
}

// RegisterText is the form's words in one language.
type RegisterText struct {
	Title, Email, Password, PasswordHint, Choices, ChoicesHint, Recipients, Policy string
	Confirm, Submit, Done, DoneText, Controller                                    string
	BirthYear                                                                      string
	OtherWays, ContinueWith, Welcome, WelcomeText                                  string
	// What went wrong, in the form's language.
	FieldTexts
	FormChanged, Busy, Throttled, TooYoung, UnknownProperty, NotAllowed, FormUnavailable string
}

// RegisterTexts are the texts by language.
var RegisterTexts = map[string]RegisterText{
	"fi": {Title: "Luo tili", Email: "Sähköpostiosoite", Password: "Salasana", PasswordHint: "Vähintään 12 merkkiä.",
		Choices: "Valintasi", ChoicesHint: "Valitse vain se, mitä haluat. Voit muuttaa valintoja milloin tahansa.",
		Recipients: "Vastaanottajat", Policy: "Tietosuojaseloste", Confirm: "Vahvistat tämän vielä sähköpostiin tulevasta linkistä.",
		Submit: "Luo tili", Done: "Tarkista sähköpostisi", Controller: "Rekisterinpitäjä", BirthYear: "Syntymävuosi",
		DoneText:  "Lähetimme vahvistuslinkin. Tili on käytössä, kun olet vahvistanut osoitteesi.",
		OtherWays: "Tai jatka palvelulla, jota jo käytät. Yllä tekemäsi valinnat tulevat mukaan.", ContinueWith: "Jatka palvelulla {provider}",
		Welcome: "Tervetuloa", WelcomeText: "Olet kirjautunut ja valintasi on tallennettu. Voit muuttaa niitä milloin tahansa.",
		FieldTexts:      fieldTexts["fi"],
		FormChanged:     "Lomake muuttui, kun se oli auki. Tarkista valintasi ja lähetä lomake uudelleen.",
		Busy:            "Juuri nyt rekisteröityy moni. Yritä hetken päästä uudelleen.",
		Throttled:       "Liian monta yritystä tästä verkosta. Odota hetki ja yritä sitten uudelleen.",
		TooYoung:        "Tätä ei tarjota ikäisellesi. Nuoremman lapsen puolesta päättää huoltaja.",
		UnknownProperty: "Lomaketta ei löydy.", NotAllowed: "Tämä sivusto ei voi näyttää lomaketta.",
		FormUnavailable: "Lomaketta ei voitu näyttää. Yritä hetken päästä uudelleen."},
	"sv": {Title: "Skapa konto", Email: "E-postadress", Password: "Lösenord", PasswordHint: "Minst 12 tecken.",
		Choices: "Dina val", ChoicesHint: "Välj bara det du vill. Du kan ändra dina val när som helst.",
		Recipients: "Mottagare", Policy: "Dataskyddsbeskrivning", Confirm: "Du bekräftar detta ännu via en länk i e-posten.",
		Submit: "Skapa konto", Done: "Kolla din e-post", Controller: "Personuppgiftsansvarig", BirthYear: "Födelseår",
		DoneText:  "Vi skickade en bekräftelselänk. Kontot kan användas när du har bekräftat adressen.",
		OtherWays: "Eller fortsätt med en tjänst du redan använder. Dina val ovan följer med.", ContinueWith: "Fortsätt med {provider}",
		Welcome: "Välkommen", WelcomeText: "Du är inloggad och dina val är sparade. Du kan ändra dem när som helst.",
		FieldTexts:      fieldTexts["sv"],
		FormChanged:     "Formuläret ändrades medan det var öppet. Kontrollera dina val och skicka det igen.",
		Busy:            "Många registrerar sig just nu. Försök igen om en stund.",
		Throttled:       "För många försök från ditt nätverk. Vänta en stund och försök sedan igen.",
		TooYoung:        "Detta erbjuds inte i din ålder. För ett yngre barn beslutar vårdnadshavaren.",
		UnknownProperty: "Formuläret hittades inte.", NotAllowed: "Den här webbplatsen får inte visa formuläret.",
		FormUnavailable: "Formuläret kunde inte visas. Försök igen om en stund."},
	"en": {Title: "Create an account", Email: "Email address", Password: "Password", PasswordHint: "At least 12 characters.",
		Choices: "Your choices", ChoicesHint: "Choose only what you want. You can change your choices at any time.",
		Recipients: "Recipients", Policy: "Privacy policy", Confirm: "You will confirm this from a link in your email.",
		Submit: "Create account", Done: "Check your email", Controller: "Controller", BirthYear: "Year of birth",
		DoneText:  "We sent a confirmation link. The account works once you have confirmed the address.",
		OtherWays: "Or continue with a service you already use. Your choices above come along.", ContinueWith: "Continue with {provider}",
		Welcome: "Welcome", WelcomeText: "You are signed in and your choices are saved. You can change them at any time.",
		FieldTexts:      fieldTexts["en"],
		FormChanged:     "The form changed while it was open. Check your choices and send it again.",
		Busy:            "Many people are registering right now. Try again in a moment.",
		Throttled:       "Too many attempts from your network. Wait a moment, then try again.",
		TooYoung:        "This is not offered at your age. For a younger child, a guardian decides.",
		UnknownProperty: "The form was not found.", NotAllowed: "This site may not show the form.",
		FormUnavailable: "The form could not be shown. Try again in a moment."},
}

// FieldError returns the message for a field, or "".
func (v RegisterView) FieldError(name string) string { return v.Fields[name] }
