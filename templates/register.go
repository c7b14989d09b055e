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
}

// RegisterPurpose is one unticked box of the form.
type RegisterPurpose struct {
	Key, Title, Description, PolicyURL string
	Recipients                         []string
	Checked                            bool
	DoubleOptIn                        bool
}

// RegisterText is the form's words in one language.
type RegisterText struct {
	Title, Email, Password, PasswordHint, Choices, ChoicesHint, Recipients, Policy string
	Confirm, Submit, Done, DoneText, Controller                                    string
	BirthYear                                                                      string
}

// RegisterTexts are the texts by language.
var RegisterTexts = map[string]RegisterText{
	"fi": {Title: "Luo tili", Email: "Sähköpostiosoite", Password: "Salasana", PasswordHint: "Vähintään 12 merkkiä.",
		Choices: "Valintasi", ChoicesHint: "Valitse vain se, mitä haluat. Voit muuttaa valintoja milloin tahansa.",
		Recipients: "Vastaanottajat", Policy: "Tietosuojaseloste", Confirm: "Vahvistat tämän vielä sähköpostiin tulevasta linkistä.",
		Submit: "Luo tili", Done: "Tarkista sähköpostisi", Controller: "Rekisterinpitäjä", BirthYear: "Syntymävuosi",
		DoneText: "Lähetimme vahvistuslinkin. Tili on käytössä, kun olet vahvistanut osoitteesi."},
	"sv": {Title: "Skapa konto", Email: "E-postadress", Password: "Lösenord", PasswordHint: "Minst 12 tecken.",
		Choices: "Dina val", ChoicesHint: "Välj bara det du vill. Du kan ändra dina val när som helst.",
		Recipients: "Mottagare", Policy: "Dataskyddsbeskrivning", Confirm: "Du bekräftar detta ännu via en länk i e-posten.",
		Submit: "Skapa konto", Done: "Kolla din e-post", Controller: "Personuppgiftsansvarig", BirthYear: "Födelseår",
		DoneText: "Vi skickade en bekräftelselänk. Kontot kan användas när du har bekräftat adressen."},
	"en": {Title: "Create an account", Email: "Email address", Password: "Password", PasswordHint: "At least 12 characters.",
		Choices: "Your choices", ChoicesHint: "Choose only what you want. You can change your choices at any time.",
		Recipients: "Recipients", Policy: "Privacy policy", Confirm: "You will confirm this from a link in your email.",
		Submit: "Create account", Done: "Check your email", Controller: "Controller", BirthYear: "Year of birth",
		DoneText: "We sent a confirmation link. The account works once you have confirmed the address."},
}

// FieldError returns the message for a field, or "".
func (v RegisterView) FieldError(name string) string { return v.Fields[name] }
