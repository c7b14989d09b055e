package templates

// FieldTexts are the messages of the account fields in one language. The account pages and
// the registration widget's form name the same fields, and say the same of them.
type FieldTexts struct {
	BadEmail, BadPassword, PasswordShort, PasswordLong, PasswordRepeated, PasswordInvalid, BadBirthYear string
}

var fieldTexts = map[string]FieldTexts{
	"fi": {
		BadEmail:         "Kirjoita sähköpostiosoite muodossa nimi@esimerkki.fi.",
		BadPassword:      "Valitse toinen salasana.",
		PasswordShort:    "Salasanassa pitää olla vähintään 12 merkkiä.",
		PasswordLong:     "Salasana on liian pitkä.",
		PasswordRepeated: "Salasana ei voi olla yhtä merkkiä toistettuna.",
		PasswordInvalid:  "Salasanassa on merkkejä, joita ei voi käyttää.",
		BadBirthYear:     "Kirjoita syntymävuosi neljällä numerolla.",
	},
	"sv": {
		BadEmail:         "Skriv e-postadressen i formen namn@exempel.fi.",
		BadPassword:      "Välj ett annat lösenord.",
		PasswordShort:    "Lösenordet ska ha minst 12 tecken.",
		PasswordLong:     "Lösenordet är för långt.",
		PasswordRepeated: "Lösenordet får inte vara ett och samma tecken upprepat.",
		PasswordInvalid:  "Lösenordet innehåller tecken som inte kan användas.",
		BadBirthYear:     "Skriv födelseåret med fyra siffror.",
	},
	"en": {
		BadEmail:         "Enter an email address, such as name@example.com.",
		BadPassword:      "Choose another password.",
		PasswordShort:    "The password must be at least 12 characters long.",
		PasswordLong:     "The password is too long.",
		PasswordRepeated: "The password must not be one character repeated.",
		PasswordInvalid:  "The password holds characters that cannot be used.",
		BadBirthYear:     "Enter your year of birth in four digits.",
	},
}
