package templates

import "strings"

// AccountView is what every account page shows: the tenant whose account it is, the
// language, and the form's state.
type AccountView struct {
	Lang       string
	T          AccountText
	Nonce      string // the page's CSP nonce, for its inline stylesheet
	Controller string // the tenant's legal name
	Slug       string // the tenant's slug, for links between the pages
	Error      string // a message for the whole form
	Fields     map[string]string
	Email      string // kept in the form after an error
	Token      string // the one-time link's token, on confirmation and reset pages
	Account    *AccountInfo
	Mailbox    []MailboxItem
	Languages  []LanguageLink // the same page in each language
	Notice     string         // a confirmation at the top of the page ("you have signed out")
	// Heading, Text, Action and Button vary the shared pages: which link a request
	// page asks for, which one-time link a confirmation page uses, what a message says.
	Heading, Text, Action, Button string
	Links                         []PageLink // where to go next
	// Providers are the "Continue with …" buttons of the sign-in and registration pages.
	Providers []ProviderButton
	// Offer is an identity waiting to be connected to the signed-in account.
	Offer *ConnectOffer
	// AskBirthYear is true on registration when the tenant's minimum age rule is on.
	AskBirthYear bool
	BirthYear    string
}

// ProviderButton is one identity provider's button: a form that POSTs to Action.
type ProviderButton struct{ Action, Label string }

// ConnectOffer asks the signed-in person to connect an identity provider's identity to
// the account (Action, Button), or, when the session is older than the offer, to sign in
// again first (SignInAgain, SignInHref).
type ConnectOffer struct {
	Text, Action, Button, SignInHref string
	SignInAgain                      bool
}

// LanguageLink is the page in one language.
type LanguageLink struct {
	Lang, Label, Href string
	Current           bool
}

// PageLink is a link to another page.
type PageLink struct{ Href, Label string }

// FieldMessage is one field's error, for the summary at the top of a form.
type FieldMessage struct{ Field, Label, Message string }

// AccountInfo is the signed-in person's account.
type AccountInfo struct {
	Email    string
	Verified bool
	// Name is what an identity provider gave; Connected the identity providers the person
	// signs in with; HasPassword whether a password signs in too.
	Name        string
	Connected   []ConnectedService
	HasPassword bool
}

// ConnectedService is a sign-in service of the account, with the form that disconnects it.
type ConnectedService struct{ Label, DisconnectAction string }

// MailboxItem is one message of the development mailbox.
type MailboxItem struct {
	ID, To, Subject, Text, At string
	Parts                     []MailPart // Text cut into plain text and links
}

// MailPart is a piece of a message's text: a link when Href is set.
type MailPart struct{ Text, Href string }

// FieldError returns the message for a field, or "".
func (v AccountView) FieldError(name string) string { return v.Fields[name] }

// fieldLabels name the form fields in the error summary.
func (v AccountView) fieldLabel(name string) string {
	switch name {
	case "email":
		return v.T.Email
	case "password":
		return v.T.Password
	case "new_password":
		return v.T.NewPassword
	case "current_password":
		return v.T.CurrentPassword
	case "birth_year":
		return v.T.BirthYear
	case "new_email":
		return v.T.NewEmail
	case "email_password":
		return v.T.CurrentPassword
	}
	return name
}

// FieldMessages lists the field errors in the order the fields appear on the pages.
func (v AccountView) FieldMessages() []FieldMessage {
	var out []FieldMessage
	for _, f := range []string{"email", "new_email", "email_password", "current_password", "password", "new_password", "birth_year"} {
		if m := v.Fields[f]; m != "" {
			out = append(out, FieldMessage{Field: f, Label: v.fieldLabel(f), Message: m})
		}
	}
	return out
}

// describedBy is the aria-describedby of a field: its hint and its error, when there are.
func (v AccountView) describedBy(name string, hint bool) string {
	var ids []string
	if hint {
		ids = append(ids, name+"-hint")
	}
	if v.Fields[name] != "" {
		ids = append(ids, name+"-error")
	}
	return strings.Join(ids, " ")
}

// title is the page's title: its heading and whose service it is.
func (v AccountView) title(heading string) string {
	if v.Controller == "" {
		return heading + " · Lupa"
	}
	return heading + " · " + v.Controller
}

// AccountText is the account pages' words in one language.
type AccountText struct {
	Register, SignIn, SignInLink, Forgot, Reset, Verify, Account, CheckEmail string
	Email, Password, NewPassword, CurrentPassword, BirthYear, Optional       string
	PasswordHint, RegisterButton, SignInButton, SendLink, SaveButton         string
	VerifyIntro, VerifyButton, LinkIntro, LinkButton, ResetIntro             string
	CheckEmailText, HaveAccount, NoAccount, Verified, NotVerified            string
	ChangePassword, SignOut, SignOutAll, PasswordChanged, Privacy, Language  string
	DeleteAccount, DeleteText, DeleteConfirm, Deleted, DeletedText           string

	// Messages of forms and fields.
	FieldTexts
	RegisterSent, FixErrors, SignInFailed, CurrentWrong                        string
	SignedOut, SignedOutAll, Status, BackToSignIn, NewSignInLink, NewResetLink string
	// Pages that say something went wrong: a heading and a text each.
	BadLink, BadLinkText, Throttled, ThrottledText, Busy, BusyText                 string
	NotFound, NotFoundText, SignInFirst, SignInFirstText, CrossSite, CrossSiteText string
	BadForm, BadFormText, FormTooLarge, FormType, ServerError, ServerErrorText     string
	// The development mailbox.
	Mailbox, MailboxNote, MailboxEmpty, MailTo, MailSent string
	// Identity providers. {provider} stands for the provider's name.
	OtherWays, ContinueWith, Name, SignInServices, ConnectTitle, ConnectText, ConnectButton  string
	ConnectAgain, Connected, AccountExists, AccountExistsText, LoginFailed, LoginFailedText  string
	LoginUnavailable, LoginUnavailableText                                                   string
	Disconnect, Disconnected, LastWayIn, LastWayInText, CompanyIdentity, CompanyIdentityText string
	BackToAccount                                                                            string
	// Changing the email address.
	ChangeEmail, NewEmail, ChangeEmailIntro, ChangeEmailRecent, ChangeEmailButton, EmailChangeSent              string
	EmailChangeSentOld, SameEmail, ConfirmEmail, ConfirmEmailIntro, ConfirmEmailButton                          string
	EmailChanged, EmailChangedTitle, EmailChangedText, EmailTaken, EmailTakenText, SignInAgain, SignInAgainText string
}

// WithProvider puts a provider's name into one of the texts that name one.
func WithProvider(text, provider string) string {
	return strings.ReplaceAll(text, "{provider}", provider)
}

// AccountTexts are the account pages' texts by language.
var AccountTexts = map[string]AccountText{
	"fi": {
		DeleteAccount: "Poista tili", DeleteText: "Tili poistetaan, kaikki antamasi suostumukset perutaan heti ja tietosi poistetaan, ellei laki velvoita säilyttämään niitä (esimerkiksi kirjanpito).", DeleteConfirm: "Kyllä, poista tilini ja peru suostumukseni", Deleted: "Tili poistettu", DeletedText: "Tilisi on poistettu ja suostumuksesi peruttu. Poistamme tietosi, ellei laki velvoita säilyttämään niitä.",
		Register: "Luo tili", SignIn: "Kirjaudu sisään", SignInLink: "Kirjaudu sähköpostilinkillä", Forgot: "Unohtuiko salasana?",
		Reset: "Vaihda salasana", Verify: "Vahvista sähköpostiosoite", Account: "Oma tili", CheckEmail: "Tarkista sähköpostisi",
		Email: "Sähköpostiosoite", Password: "Salasana", NewPassword: "Uusi salasana", CurrentPassword: "Nykyinen salasana",
		BirthYear: "Syntymävuosi", Optional: "valinnainen", PasswordHint: "Vähintään 12 merkkiä. Pitkä lause on hyvä salasana.",
		RegisterButton: "Luo tili", SignInButton: "Kirjaudu", SendLink: "Lähetä linkki", SaveButton: "Tallenna",
		VerifyIntro: "Vahvista sähköpostiosoitteesi ja kirjaudu sisään painamalla painiketta.", VerifyButton: "Vahvista ja kirjaudu",
		LinkIntro: "Kirjaudu sisään painamalla painiketta.", LinkButton: "Kirjaudu sisään",
		ResetIntro:     "Valitse uusi salasana. Kaikki muut kirjautumiset päättyvät.",
		CheckEmailText: "Jos osoitteella voi kirjautua, lähetimme siihen linkin. Linkki toimii kerran. Tarkista myös roskaposti.",
		HaveAccount:    "Onko sinulla jo tili?", NoAccount: "Eikö sinulla ole tiliä?", Verified: "vahvistettu", NotVerified: "vahvistamatta",
		ChangePassword: "Vaihda salasana", SignOut: "Kirjaudu ulos", SignOutAll: "Kirjaudu ulos kaikilta laitteilta",
		PasswordChanged: "Salasana vaihdettu. Muut kirjautumiset päättyivät.", Privacy: "Rekisterinpitäjä", Language: "Kieli",

		RegisterSent: "Lähetimme viestin antamaasi osoitteeseen. Vahvista osoite viestissä olevalla linkillä: se on voimassa 48 tuntia. Jos viestiä ei kuulu, tarkista roskaposti.",
		FixErrors:    "Korjaa merkityt kohdat",
		SignInFailed: "Sähköpostiosoite tai salasana ei ole oikein.",
		FieldTexts:   fieldTexts["fi"],
		CurrentWrong: "Nykyinen salasana ei ole oikein.",
		SignedOut:    "Olet kirjautunut ulos.", SignedOutAll: "Olet kirjautunut ulos kaikilta laitteilta.",
		Status: "Tila", BackToSignIn: "Takaisin kirjautumiseen",
		NewSignInLink: "Pyydä uusi kirjautumislinkki", NewResetLink: "Pyydä linkki uuden salasanan valintaan",
		BadLink:     "Linkki ei toimi",
		BadLinkText: "Linkki on jo käytetty, se on vanhentunut tai se ei ole kokonainen. Voit pyytää uuden linkin.",
		Throttled:   "Liian monta yritystä", ThrottledText: "Odota hetki ja yritä sitten uudelleen.",
		Busy:     "Palvelu on ruuhkautunut",
		BusyText: "Juuri nyt kirjautuu sisään tavallista useampi. Yritä hetken kuluttua uudelleen.",
		NotFound: "Sivua ei löydy", NotFoundText: "Tässä osoitteessa ei ole palvelua. Tarkista osoite.",
		SignInFirst:     "Kirjaudu ensin sisään",
		SignInFirstText: "Et ole kirjautunut sisään, tai kirjautumisesi on päättynyt. Kirjaudu sisään palvelun sivulta.",
		CrossSite:       "Lomake hylättiin",
		CrossSiteText:   "Lomake lähetettiin toiselta sivustolta, joten sitä ei käsitelty. Avaa sivu uudelleen ja yritä uudestaan.",
		BadForm:         "Lomaketta ei voitu lukea",
		BadFormText:     "Lomakkeessa oli jotain, mitä emme voi käsitellä, esimerkiksi ohjausmerkkejä. Avaa sivu uudelleen ja yritä uudestaan.",
		FormTooLarge:    "Lomake oli liian suuri.",
		FormType:        "Lomake lähetettiin muodossa, jota emme ota vastaan.",
		ServerError:     "Jokin meni vikaan", ServerErrorText: "Vika on meidän päässämme. Yritä hetken kuluttua uudelleen.",
		Mailbox:      "Kehityspostilaatikko",
		MailboxNote:  "Lupa ei lähetä sähköpostia, koska LUPA_SMTP_URL puuttuu: viestit näkyvät vain täällä. Sivulla näkyy kirjautumislinkkejä, joten älä koskaan ota sitä käyttöön tuotannossa.",
		MailboxEmpty: "Ei viestejä.", MailTo: "Vastaanottaja", MailSent: "Lähetetty",
		OtherWays: "Tai käytä toista palvelua", ContinueWith: "Jatka palvelulla {provider}", Name: "Nimi",
		SignInServices: "Kirjautumispalvelut", ConnectTitle: "Yhdistä kirjautumispalvelu",
		ConnectText:   "Voit jatkossa kirjautua tälle tilille myös palvelulla {provider}.",
		ConnectButton: "Yhdistä {provider}",
		ConnectAgain:  "Kirjaudu tilillesi uudelleen, niin voit yhdistää palvelun {provider}.",
		Connected:     "{provider} on nyt yhdistetty tiliisi.",
		Disconnect:    "Irrota", Disconnected: "{provider} on irrotettu tilistäsi: sillä ei enää kirjauduta tähän tiliin.",
		LastWayIn: "Tätä palvelua ei voi irrottaa", LastWayInText: "Se on ainoa tapasi kirjautua tiliin. Jos haluat lopettaa tilin, poista se tilisivulta.",
		CompanyIdentity: "Tätä palvelua ei voi irrottaa", CompanyIdentityText: "Se on yrityksen oma kirjautuminen, jolla sen sovellukset tunnistavat sinut.",
		BackToAccount: "Takaisin tilille",
		AccountExists: "Osoitteella on jo tili",
		AccountExistsText: "Palvelusta {provider} saamamme sähköpostiosoite kuuluu jo tilille. Turvallisuussyistä emme yhdistä niitä pelkän " +
			"osoitteen perusteella. Kirjaudu ensin tälle tilille salasanalla tai sähköpostilinkillä; sen jälkeen voit yhdistää palvelun " +
			"{provider} tilisi sivulla. Tarjous on voimassa tässä selaimessa 30 minuuttia.",
		LoginFailed:          "Kirjautuminen ei onnistunut",
		LoginFailedText:      "Kirjautumista ei voitu viedä loppuun. Aloita alusta kirjautumissivulta.",
		LoginUnavailable:     "Kirjautumispalvelu ei vastaa",
		LoginUnavailableText: "Kirjautumispalveluun ei juuri nyt saada yhteyttä. Yritä hetken kuluttua uudelleen tai kirjaudu toisella tavalla.",

		ChangeEmail: "Vaihda sähköpostiosoite", NewEmail: "Uusi sähköpostiosoite",
		ChangeEmailIntro:   "Lähetämme vahvistuslinkin uuteen osoitteeseen. Osoite vaihtuu vasta, kun avaat linkin.",
		ChangeEmailRecent:  "Jos kirjauduit sisään yli 10 minuuttia sitten, sinua pyydetään ensin kirjautumaan uudelleen.",
		ChangeEmailButton:  "Lähetä vahvistuslinkki",
		EmailChangeSent:    "Lähetimme vahvistuslinkin uuteen osoitteeseen. Osoite vaihtuu vasta, kun avaat linkin: se on voimassa 48 tuntia. Jos viestiä ei kuulu, tarkista roskaposti.",
		EmailChangeSentOld: "Kerroimme vaihdosta myös nykyiseen osoitteeseesi.",
		SameEmail:          "Tämä on jo tilisi sähköpostiosoite.",
		ConfirmEmail:       "Vahvista uusi sähköpostiosoite",
		ConfirmEmailIntro:  "Painamalla painiketta teet tästä osoitteesta tilisi sähköpostiosoitteen. Muut kirjautumiset päättyvät. Jos et pyytänyt vaihtoa, sulje sivu.",
		ConfirmEmailButton: "Vahvista uusi osoite",
		EmailChanged:       "Sähköpostiosoite vaihdettu. Muut kirjautumiset päättyivät.",
		EmailChangedTitle:  "Sähköpostiosoite vaihdettu",
		EmailChangedText:   "Tilisi sähköpostiosoite on vaihdettu, ja kaikki kirjautumiset päättyivät. Kirjaudu sisään uudella osoitteella.",
		EmailTaken:         "Osoite on jo käytössä",
		EmailTakenText:     "Osoite kuuluu toiselle tilille, joten tilisi osoitetta ei vaihdettu. Voit valita toisen osoitteen tilisi sivulla.",
		SignInAgain:        "Kirjaudu uudelleen",
		SignInAgainText:    "Sähköpostiosoitteen vaihtamiseen tarvitaan tuore kirjautuminen. Kirjaudu uudelleen ja vaihda osoite sen jälkeen.",
	},
	"sv": {
		DeleteAccount: "Radera kontot", DeleteText: "Kontot raderas, alla samtycken du har gett återkallas genast och dina uppgifter raderas, om inte lagen kräver att de sparas (till exempel bokföring).", DeleteConfirm: "Ja, radera mitt konto och återkalla mina samtycken", Deleted: "Kontot är raderat", DeletedText: "Ditt konto är raderat och dina samtycken återkallade. Vi raderar dina uppgifter, om inte lagen kräver att de sparas.",
		Register: "Skapa konto", SignIn: "Logga in", SignInLink: "Logga in med en e-postlänk", Forgot: "Glömt lösenordet?",
		Reset: "Byt lösenord", Verify: "Bekräfta e-postadressen", Account: "Mitt konto", CheckEmail: "Kolla din e-post",
		Email: "E-postadress", Password: "Lösenord", NewPassword: "Nytt lösenord", CurrentPassword: "Nuvarande lösenord",
		BirthYear: "Födelseår", Optional: "valfritt", PasswordHint: "Minst 12 tecken. En lång mening är ett bra lösenord.",
		RegisterButton: "Skapa konto", SignInButton: "Logga in", SendLink: "Skicka länk", SaveButton: "Spara",
		VerifyIntro: "Bekräfta din e-postadress och logga in genom att trycka på knappen.", VerifyButton: "Bekräfta och logga in",
		LinkIntro: "Logga in genom att trycka på knappen.", LinkButton: "Logga in",
		ResetIntro:     "Välj ett nytt lösenord. Alla andra inloggningar avslutas.",
		CheckEmailText: "Om adressen kan användas för inloggning har vi skickat en länk till den. Länken fungerar en gång. Kolla även skräpposten.",
		HaveAccount:    "Har du redan ett konto?", NoAccount: "Har du inget konto?", Verified: "bekräftad", NotVerified: "obekräftad",
		ChangePassword: "Byt lösenord", SignOut: "Logga ut", SignOutAll: "Logga ut från alla enheter",
		PasswordChanged: "Lösenordet har bytts. Andra inloggningar avslutades.", Privacy: "Personuppgiftsansvarig", Language: "Språk",

		RegisterSent: "Vi har skickat ett meddelande till adressen du angav. Bekräfta adressen med länken i meddelandet: den gäller i 48 timmar. Om inget meddelande kommer, kolla skräpposten.",
		FixErrors:    "Rätta de markerade fälten",
		SignInFailed: "E-postadressen eller lösenordet är inte rätt.",
		FieldTexts:   fieldTexts["sv"],
		CurrentWrong: "Det nuvarande lösenordet är inte rätt.",
		SignedOut:    "Du har loggat ut.", SignedOutAll: "Du har loggat ut från alla enheter.",
		Status: "Status", BackToSignIn: "Tillbaka till inloggningen",
		NewSignInLink: "Be om en ny inloggningslänk", NewResetLink: "Be om en länk för att välja ett nytt lösenord",
		BadLink:     "Länken fungerar inte",
		BadLinkText: "Länken har redan använts, den har gått ut eller så är den inte hel. Du kan be om en ny länk.",
		Throttled:   "För många försök", ThrottledText: "Vänta en stund och försök sedan igen.",
		Busy:     "Tjänsten är överbelastad",
		BusyText: "Just nu loggar ovanligt många in. Försök igen om en stund.",
		NotFound: "Sidan hittades inte", NotFoundText: "Det finns ingen tjänst på den här adressen. Kontrollera adressen.",
		SignInFirst:     "Logga in först",
		SignInFirstText: "Du är inte inloggad, eller så har din inloggning gått ut. Logga in via tjänstens sida.",
		CrossSite:       "Formuläret avvisades",
		CrossSiteText:   "Formuläret skickades från en annan webbplats, så det behandlades inte. Öppna sidan på nytt och försök igen.",
		BadForm:         "Formuläret kunde inte läsas",
		BadFormText:     "Formuläret innehöll något vi inte kan behandla, till exempel styrtecken. Öppna sidan på nytt och försök igen.",
		FormTooLarge:    "Formuläret var för stort.",
		FormType:        "Formuläret skickades i ett format som vi inte tar emot.",
		ServerError:     "Något gick fel", ServerErrorText: "Felet ligger hos oss. Försök igen om en stund.",
		Mailbox:      "Utvecklingsbrevlåda",
		MailboxNote:  "Lupa skickar ingen e-post eftersom LUPA_SMTP_URL saknas: meddelandena syns bara här. Sidan visar inloggningslänkar, så slå aldrig på den i produktion.",
		MailboxEmpty: "Inga meddelanden.", MailTo: "Mottagare", MailSent: "Skickat",
		OtherWays: "Eller använd en annan tjänst", ContinueWith: "Fortsätt med {provider}", Name: "Namn",
		SignInServices: "Inloggningstjänster", ConnectTitle: "Anslut en inloggningstjänst",
		ConnectText:   "Du kan i fortsättningen logga in på det här kontot även med {provider}.",
		ConnectButton: "Anslut {provider}",
		ConnectAgain:  "Logga in på ditt konto på nytt för att ansluta {provider}.",
		Connected:     "{provider} är nu anslutet till ditt konto.",
		Disconnect:    "Koppla från", Disconnected: "{provider} är frånkopplat: det loggar inte längre in på det här kontot.",
		LastWayIn: "Tjänsten kan inte kopplas från", LastWayInText: "Den är ditt enda sätt att logga in på kontot. Om du vill avsluta kontot kan du radera det på kontosidan.",
		CompanyIdentity: "Tjänsten kan inte kopplas från", CompanyIdentityText: "Det är företagets egen inloggning, som dess appar känner igen dig med.",
		BackToAccount: "Tillbaka till kontot",
		AccountExists: "Adressen har redan ett konto",
		AccountExistsText: "E-postadressen vi fick från {provider} hör redan till ett konto. Av säkerhetsskäl förenar vi dem inte enbart " +
			"på grund av adressen. Logga först in på det kontot med lösenordet eller en e-postlänk; därefter kan du ansluta {provider} " +
			"på din kontosida. Erbjudandet gäller i den här webbläsaren i 30 minuter.",
		LoginFailed:          "Inloggningen misslyckades",
		LoginFailedText:      "Inloggningen kunde inte slutföras. Börja om från inloggningssidan.",
		LoginUnavailable:     "Inloggningstjänsten svarar inte",
		LoginUnavailableText: "Vi når inte inloggningstjänsten just nu. Försök igen om en stund eller logga in på ett annat sätt.",

		ChangeEmail: "Byt e-postadress", NewEmail: "Ny e-postadress",
		ChangeEmailIntro:   "Vi skickar en bekräftelselänk till den nya adressen. Adressen byts först när du öppnar länken.",
		ChangeEmailRecent:  "Om du loggade in för mer än 10 minuter sedan ombeds du först logga in igen.",
		ChangeEmailButton:  "Skicka bekräftelselänk",
		EmailChangeSent:    "Vi har skickat en bekräftelselänk till den nya adressen. Adressen byts först när du öppnar länken: den gäller i 48 timmar. Om inget meddelande kommer, kolla skräpposten.",
		EmailChangeSentOld: "Vi har också berättat om bytet för din nuvarande adress.",
		SameEmail:          "Det här är redan ditt kontos e-postadress.",
		ConfirmEmail:       "Bekräfta den nya e-postadressen",
		ConfirmEmailIntro:  "Med knappen gör du den här adressen till ditt kontos e-postadress. Andra inloggningar avslutas. Om du inte bad om bytet, stäng sidan.",
		ConfirmEmailButton: "Bekräfta den nya adressen",
		EmailChanged:       "E-postadressen har bytts. Andra inloggningar avslutades.",
		EmailChangedTitle:  "E-postadressen har bytts",
		EmailChangedText:   "Ditt kontos e-postadress har bytts och alla inloggningar avslutades. Logga in med den nya adressen.",
		EmailTaken:         "Adressen används redan",
		EmailTakenText:     "Adressen hör till ett annat konto, så ditt kontos adress byttes inte. Du kan välja en annan adress på din kontosida.",
		SignInAgain:        "Logga in igen",
		SignInAgainText:    "För att byta e-postadress behövs en färsk inloggning. Logga in igen och byt sedan adressen.",
	},
	"en": {
		DeleteAccount: "Delete account", DeleteText: "The account is deleted, every consent you gave is withdrawn at once, and your data is erased unless the law requires us to keep it (bookkeeping, for example).", DeleteConfirm: "Yes, delete my account and withdraw my consents", Deleted: "Account deleted", DeletedText: "Your account is deleted and your consents are withdrawn. We erase your data unless the law requires us to keep it.",
		Register: "Create an account", SignIn: "Sign in", SignInLink: "Sign in with an email link", Forgot: "Forgot your password?",
		Reset: "Reset your password", Verify: "Confirm your email address", Account: "Your account", CheckEmail: "Check your email",
		Email: "Email address", Password: "Password", NewPassword: "New password", CurrentPassword: "Current password",
		BirthYear: "Year of birth", Optional: "optional", PasswordHint: "At least 12 characters. A long sentence makes a good password.",
		RegisterButton: "Create account", SignInButton: "Sign in", SendLink: "Send link", SaveButton: "Save",
		VerifyIntro: "Confirm your email address and sign in with the button.", VerifyButton: "Confirm and sign in",
		LinkIntro: "Sign in with the button.", LinkButton: "Sign in",
		ResetIntro:     "Choose a new password. Every other sign-in ends.",
		CheckEmailText: "If the address can sign in, we have sent a link to it. The link works once. Check your spam folder too.",
		HaveAccount:    "Already have an account?", NoAccount: "No account yet?", Verified: "confirmed", NotVerified: "not confirmed",
		ChangePassword: "Change password", SignOut: "Sign out", SignOutAll: "Sign out on every device",
		PasswordChanged: "Your password was changed. Other sign-ins ended.", Privacy: "Controller", Language: "Language",

		RegisterSent: "We have sent a message to the address you gave. Confirm the address with the link in it: the link works for 48 hours. If nothing arrives, check your spam folder.",
		FixErrors:    "Please correct the marked fields",
		SignInFailed: "The email address or the password is not right.",
		FieldTexts:   fieldTexts["en"],
		CurrentWrong: "The current password is not right.",
		SignedOut:    "You have signed out.", SignedOutAll: "You have signed out on every device.",
		Status: "Status", BackToSignIn: "Back to sign in",
		NewSignInLink: "Ask for a new sign-in link", NewResetLink: "Ask for a link to choose a new password",
		BadLink:     "This link does not work",
		BadLinkText: "It was used already, it expired, or it is not whole. You can ask for a new link.",
		Throttled:   "Too many attempts", ThrottledText: "Wait a moment, then try again.",
		Busy:     "We are busy right now",
		BusyText: "Many people are signing in at the moment. Try again in a little while.",
		NotFound: "Page not found", NotFoundText: "There is no service at this address. Check the address.",
		SignInFirst:     "Sign in first",
		SignInFirstText: "You are not signed in, or your sign-in has ended. Sign in from the service's page.",
		CrossSite:       "The form was refused",
		CrossSiteText:   "The form was sent from another site, so it was not processed. Open the page again and try once more.",
		BadForm:         "The form could not be read",
		BadFormText:     "The form held something we cannot process, such as control characters. Open the page again and try once more.",
		FormTooLarge:    "The form was too large.",
		FormType:        "The form was sent in a format we do not accept.",
		ServerError:     "Something went wrong", ServerErrorText: "The fault is ours. Try again in a little while.",
		Mailbox:      "Development mailbox",
		MailboxNote:  "Lupa sends no email because LUPA_SMTP_URL is empty: messages are shown here only. This page shows sign-in links, so never turn it on in production.",
		MailboxEmpty: "No messages yet.", MailTo: "To", MailSent: "Sent",
		OtherWays: "Or use another service", ContinueWith: "Continue with {provider}", Name: "Name",
		SignInServices: "Sign-in services", ConnectTitle: "Connect a sign-in service",
		ConnectText:   "From now on you can sign in to this account with {provider} too.",
		ConnectButton: "Connect {provider}",
		ConnectAgain:  "Sign in to your account again to connect {provider}.",
		Connected:     "{provider} is now connected to your account.",
		Disconnect:    "Disconnect", Disconnected: "{provider} is disconnected: it no longer signs in to this account.",
		LastWayIn: "This service cannot be disconnected", LastWayInText: "It is your only way to sign in to the account. To end the account, delete it on the account page.",
		CompanyIdentity: "This service cannot be disconnected", CompanyIdentityText: "It is the company's own sign-in, by which its apps know you.",
		BackToAccount: "Back to the account",
		AccountExists: "This address has an account",
		AccountExistsText: "The email address {provider} gave us belongs to an account already. For your safety we do not join them on " +
			"the address alone. First sign in to that account with its password or an email link; then you can connect {provider} " +
			"on your account page. The offer stays open in this browser for 30 minutes.",
		LoginFailed:          "Sign-in did not work",
		LoginFailedText:      "The sign-in could not be completed. Start again from the sign-in page.",
		LoginUnavailable:     "The sign-in service does not answer",
		LoginUnavailableText: "We cannot reach the sign-in service right now. Try again in a little while, or sign in another way.",

		ChangeEmail: "Change email address", NewEmail: "New email address",
		ChangeEmailIntro:   "We send a confirmation link to the new address. The address changes only when you open the link.",
		ChangeEmailRecent:  "If you signed in more than 10 minutes ago, you will be asked to sign in again first.",
		ChangeEmailButton:  "Send confirmation link",
		EmailChangeSent:    "We have sent a confirmation link to the new address. The address changes only when you open the link: it works for 48 hours. If nothing arrives, check your spam folder.",
		EmailChangeSentOld: "We have told your current address about the change too.",
		SameEmail:          "This is the email address of your account already.",
		ConfirmEmail:       "Confirm your new email address",
		ConfirmEmailIntro:  "The button makes this address the email address of your account. Other sign-ins end. If you did not ask for the change, close this page.",
		ConfirmEmailButton: "Confirm the new address",
		EmailChanged:       "Your email address was changed. Other sign-ins ended.",
		EmailChangedTitle:  "Email address changed",
		EmailChangedText:   "The email address of your account was changed, and every sign-in ended. Sign in with the new address.",
		EmailTaken:         "This address is in use",
		EmailTakenText:     "The address belongs to another account, so the address of your account was not changed. You can choose another address on your account page.",
		SignInAgain:        "Sign in again",
		SignInAgainText:    "Changing the email address needs a recent sign-in. Sign in again, then change the address.",
	},
}
