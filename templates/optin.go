package templates

// OptInView is the page that confirms a double opt-in from the link of an email.
type OptInView struct {
	Lang  string
	T     OptInText
	Token string
	Nonce string
	// Step is "ask" (a button: mail scanners open links, people press buttons), "done",
	// "nothing" (confirmed already, or withdrawn since) or "invalid".
	Step string
}

// OptInText is the page's words in one language.
type OptInText struct {
	Title, Ask, Button, Done, Nothing, Invalid string
}

// OptInTexts are the texts by language.
var OptInTexts = map[string]OptInText{
	"fi": {Title: "Vahvista tilaus", Ask: "Vahvista tilauksesi painamalla painiketta.", Button: "Vahvista",
		Done: "Kiitos! Tilauksesi on vahvistettu.", Nothing: "Tilaus on jo vahvistettu tai peruttu, joten mitään ei muutettu.",
		Invalid: "Linkki ei kelpaa tai se on vanhentunut."},
	"sv": {Title: "Bekräfta prenumerationen", Ask: "Bekräfta din prenumeration genom att trycka på knappen.", Button: "Bekräfta",
		Done: "Tack! Din prenumeration är bekräftad.", Nothing: "Prenumerationen är redan bekräftad eller avslutad, så inget ändrades.",
		Invalid: "Länken är ogiltig eller har gått ut."},
	"en": {Title: "Confirm your subscription", Ask: "Confirm your subscription with the button.", Button: "Confirm",
		Done: "Thank you! Your subscription is confirmed.", Nothing: "The subscription was confirmed already or has been cancelled, so nothing changed.",
		Invalid: "The link is not valid or has expired."},
}
