package templates

import "strings"

// OptInView is the page that confirms a double opt-in from the link of an email.
type OptInView struct {
	Lang  string
	T     OptInText
	Token string
	Nonce string
	// Step is "ask" (a button: mail scanners open links, people press buttons), "done"
	// (something confirmed), "nothing" (nothing to confirm) or "invalid".
	Step string
	// Controller and Titles say who asks and for what (on "ask" and "done").
	Controller string
	Titles     []string
	// Changed, on "done" and "nothing", says that some of what the link named was not
	// confirmed because its text has changed materially since: the person decides again.
	Changed bool
	// Superseded, on "done" and "nothing", says that some of what the link named is waiting
	// for a newer request's own email: its link confirms it, this one does not.
	Superseded bool
}

// Asking is the page's question with the controller's name in it.
func (v OptInView) Asking() string {
	return strings.ReplaceAll(v.T.Ask, "{controller}", v.Controller)
}

// OptInText is the page's words in one language. Ask holds {controller}.
type OptInText struct {
	Title, Ask, Button, NotYou, Done, Withdraw, Nothing, Changed, Superseded, Invalid string
}

// OptInTexts are the texts by language.
var OptInTexts = map[string]OptInText{
	"fi": {Title: "Vahvista tilaus", Ask: "Vahvista painikkeella, että {controller} saa lähettää sinulle:", Button: "Vahvista",
		NotYou:   "Jos et tilannut mitään, sulje tämä sivu: mitään ei lähetetä eikä mitään muuteta.",
		Done:     "Kiitos! Tilauksesi on vahvistettu.",
		Withdraw: "Voit perua suostumuksesi milloin tahansa yhtä helposti kuin annoit sen: minkä tahansa viestin peruutuslinkistä tai siellä, missä tilasit.",
		Nothing:  "Tilaus on jo vahvistettu tai peruttu, joten mitään ei muutettu.",
		Changed:  "Tilaamasi asian kuvaus on muuttunut tämän linkin lähettämisen jälkeen, joten sitä ei vahvistettu. Lue uusi kuvaus ja valitse uudelleen siellä, missä tilasit.",
		Superseded: "Tästä tilauksesta on sittemmin lähetetty uudempi vahvistusviesti, joten tällä linkillä ei vahvistettu mitään. " +
			"Käytä uusimman viestin linkkiä.",
		Invalid: "Linkki ei kelpaa tai se on vanhentunut."},
	"sv": {Title: "Bekräfta prenumerationen", Ask: "Bekräfta med knappen att {controller} får skicka dig:", Button: "Bekräfta",
		NotYou:   "Om du inte beställde något kan du stänga sidan: ingenting skickas och ingenting ändras.",
		Done:     "Tack! Din prenumeration är bekräftad.",
		Withdraw: "Du kan återkalla ditt samtycke när som helst, lika lätt som du gav det: med avregistreringslänken i vilket meddelande som helst eller där du prenumererade.",
		Nothing:  "Prenumerationen är redan bekräftad eller avslutad, så inget ändrades.",
		Changed:  "Beskrivningen av det du prenumererade på har ändrats sedan länken skickades, så det bekräftades inte. Läs den nya beskrivningen och välj på nytt där du prenumererade.",
		Superseded: "Ett nyare bekräftelsemeddelande har skickats för den här prenumerationen sedan dess, så den här länken bekräftade ingenting. " +
			"Använd länken i det senaste meddelandet.",
		Invalid: "Länken är ogiltig eller har gått ut."},
	"en": {Title: "Confirm your subscription", Ask: "Confirm with the button that {controller} may send you:", Button: "Confirm",
		NotYou:   "If you did not subscribe, close this page: nothing will be sent and nothing changes.",
		Done:     "Thank you! Your subscription is confirmed.",
		Withdraw: "You can withdraw your consent at any time, as easily as you gave it: with the unsubscribe link in any message, or where you subscribed.",
		Nothing:  "The subscription was confirmed already or has been cancelled, so nothing changed.",
		Changed:  "The description of what you subscribed to has changed since this link was sent, so it was not confirmed. Please read the new description and decide again where you subscribed.",
		Superseded: "A newer confirmation email has been sent for this subscription since, so this link confirmed nothing. " +
			"Please use the link in the newest email.",
		Invalid: "The link is not valid or has expired."},
}
