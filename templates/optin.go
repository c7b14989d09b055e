package templates

// OptInView is the page that confirms a double opt-in from the link of an email.
type OptInView struct {
	Lang  string
	T     OptInText
	Token string
	Nonce string
	// Step is "ask" (a button: mail scanners open links, people press buttons), "done"
	// (something confirmed), "nothing" (nothing confirmed) or "invalid".
	Step string
	// Changed, on "done" and "nothing", says that some of what the link named was not
	// confirmed because its text has changed materially since: the person decides again. On
	// "nothing" it is the whole answer.
	Changed bool
}

// OptInText is the page's words in one language.
type OptInText struct {
	Title, Ask, Button, Done, Nothing, Changed, Invalid string
}

// OptInTexts are the texts by language.
var OptInTexts = map[string]OptInText{
	"fi": {Title: "Vahvista tilaus", Ask: "Vahvista tilauksesi painamalla painiketta.", Button: "Vahvista",
		Done: "Kiitos! Tilauksesi on vahvistettu.", Nothing: "Tilaus on jo vahvistettu tai peruttu, joten mitään ei muutettu.",
		Changed: "Tilaamasi asian kuvaus on muuttunut tämän linkin lähettämisen jälkeen, joten sitä ei vahvistettu. Lue uusi kuvaus ja valitse uudelleen siellä, missä tilasit.",
		Invalid: "Linkki ei kelpaa tai se on vanhentunut."},
	"sv": {Title: "Bekräfta prenumerationen", Ask: "Bekräfta din prenumeration genom att trycka på knappen.", Button: "Bekräfta",
		Done: "Tack! Din prenumeration är bekräftad.", Nothing: "Prenumerationen är redan bekräftad eller avslutad, så inget ändrades.",
		Changed: "Beskrivningen av det du prenumererade på har ändrats sedan länken skickades, så det bekräftades inte. Läs den nya beskrivningen och välj på nytt där du prenumererade.",
		Invalid: "Länken är ogiltig eller har gått ut."},
	"en": {Title: "Confirm your subscription", Ask: "Confirm your subscription with the button.", Button: "Confirm",
		Done: "Thank you! Your subscription is confirmed.", Nothing: "The subscription was confirmed already or has been cancelled, so nothing changed.",
		Changed: "The description of what you subscribed to has changed since this link was sent, so it was not confirmed. Please read the new description and decide again where you subscribed.",
		Invalid: "The link is not valid or has expired."},
}
