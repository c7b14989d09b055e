package accounts

import (
	"context"
	"crypto/sha256"
	"net/url"
	"strings"

	"golang.org/x/time/rate"

	"github.com/lupa-cmp/lupa/identity/mail"
)

// emailText is one email in one language; {link} is replaced by the link.
type emailText struct{ subject, body string }

var emails = map[string]map[string]emailText{
	"verify": {
		"fi": {"Vahvista sähköpostiosoitteesi", "Hei,\n\nvahvista sähköpostiosoitteesi ja kirjaudu sisään tästä linkistä:\n\n{link}\n\nLinkki on voimassa 48 tuntia. Jos et luonut tiliä, voit jättää viestin huomiotta.\n"},
		"sv": {"Bekräfta din e-postadress", "Hej,\n\nbekräfta din e-postadress och logga in via den här länken:\n\n{link}\n\nLänken gäller i 48 timmar. Om du inte skapade något konto kan du bortse från meddelandet.\n"},
		"en": {"Confirm your email address", "Hello,\n\nconfirm your email address and sign in with this link:\n\n{link}\n\nThe link works for 48 hours. If you did not create an account, you can ignore this message.\n"},
	},
	"exists": {
		"fi": {"Tilisi on jo olemassa", "Hei,\n\njoku (ehkä sinä) yritti luoda tilin tällä sähköpostiosoitteella, mutta sillä on jo tili. Voit kirjautua sisään tai vaihtaa salasanasi täällä:\n\n{link}\n\nJos et itse yrittänyt, voit jättää viestin huomiotta.\n"},
		"sv": {"Du har redan ett konto", "Hej,\n\nnågon (kanske du) försökte skapa ett konto med den här e-postadressen, men det finns redan ett konto. Du kan logga in eller byta lösenord här:\n\n{link}\n\nOm det inte var du kan du bortse från meddelandet.\n"},
		"en": {"You already have an account", "Hello,\n\nsomeone (perhaps you) tried to create an account with this email address, but it already has one. You can sign in or reset your password here:\n\n{link}\n\nIf it was not you, you can ignore this message.\n"},
	},
	"signin": {
		"fi": {"Kirjautumislinkki", "Hei,\n\nkirjaudu sisään tästä linkistä:\n\n{link}\n\nLinkki toimii kerran ja 20 minuutin ajan. Jos et pyytänyt linkkiä, voit jättää viestin huomiotta.\n"},
		"sv": {"Inloggningslänk", "Hej,\n\nlogga in via den här länken:\n\n{link}\n\nLänken fungerar en gång och i 20 minuter. Om du inte bad om länken kan du bortse från meddelandet.\n"},
		"en": {"Your sign-in link", "Hello,\n\nsign in with this link:\n\n{link}\n\nThe link works once, for 20 minutes. If you did not ask for it, you can ignore this message.\n"},
	},
	"reset": {
		"fi": {"Vaihda salasanasi", "Hei,\n\nvoit valita uuden salasanan tästä linkistä:\n\n{link}\n\nLinkki toimii kerran ja 20 minuutin ajan. Jos et pyytänyt salasanan vaihtoa, voit jättää viestin huomiotta: salasanasi pysyy ennallaan.\n"},
		"sv": {"Byt ditt lösenord", "Hej,\n\ndu kan välja ett nytt lösenord via den här länken:\n\n{link}\n\nLänken fungerar en gång och i 20 minuter. Om du inte bad om att byta lösenord kan du bortse från meddelandet: ditt lösenord förblir oförändrat.\n"},
		"en": {"Reset your password", "Hello,\n\nyou can choose a new password with this link:\n\n{link}\n\nThe link works once, for 20 minutes. If you did not ask to reset your password, you can ignore this message: your password stays as it is.\n"},
	},
	// To the new address of a change of address (email.go).
	"email_change": {
		"fi": {"Vahvista uusi sähköpostiosoitteesi", "Hei,\n\njoku (ehkä sinä) pyysi vaihtamaan tilinsä sähköpostiosoitteeksi tämän osoitteen. Vahvista vaihto tästä linkistä:\n\n{link}\n\nLinkki on voimassa 48 tuntia. Jos et pyytänyt vaihtoa, voit jättää viestin huomiotta: mitään ei muuteta.\n"},
		"sv": {"Bekräfta din nya e-postadress", "Hej,\n\nnågon (kanske du) bad om att göra den här adressen till e-postadressen för sitt konto. Bekräfta bytet via den här länken:\n\n{link}\n\nLänken gäller i 48 timmar. Om du inte bad om bytet kan du bortse från meddelandet: ingenting ändras.\n"},
		"en": {"Confirm your new email address", "Hello,\n\nsomeone (perhaps you) asked to make this the email address of their account. Confirm the change with this link:\n\n{link}\n\nThe link works for 48 hours. If you did not ask for this, you can ignore this message: nothing changes.\n"},
	},
	// To the new address of a change of address, when the address names someone already.
	"email_taken": {
		"fi": {"Osoite on jo käytössä", "Hei,\n\njoku (ehkä sinä) pyysi vaihtamaan tilinsä sähköpostiosoitteeksi tämän osoitteen, mutta osoite on jo käytössä, joten mitään ei muutettu. Jos sinulla on tili tällä osoitteella, voit kirjautua sisään täällä:\n\n{link}\n\nJos et itse pyytänyt vaihtoa, voit jättää viestin huomiotta.\n"},
		"sv": {"Adressen används redan", "Hej,\n\nnågon (kanske du) bad om att göra den här adressen till e-postadressen för sitt konto, men adressen används redan, så ingenting ändrades. Om du har ett konto med den här adressen kan du logga in här:\n\n{link}\n\nOm det inte var du kan du bortse från meddelandet.\n"},
		"en": {"This address is already in use", "Hello,\n\nsomeone (perhaps you) asked to make this the email address of their account, but the address is already in use, so nothing was changed. If you have an account with this address, you can sign in here:\n\n{link}\n\nIf it was not you, you can ignore this message.\n"},
	},
	// To the old address of a change of address; {new} is the new address, masked.
	"email_changing": {
		"fi": {"Sähköpostiosoitettasi ollaan vaihtamassa", "Hei,\n\ntilillesi kirjautunut henkilö pyysi vaihtamaan tilin sähköpostiosoitteeksi {new}. Osoite vaihtuu, kun uuteen osoitteeseen lähetetty linkki avataan.\n\nJos et itse pyytänyt vaihtoa, vaihda salasanasi heti tästä: se päättää kaikki kirjautumiset ja peruu vaihdon.\n\n{link}\n"},
		"sv": {"Din e-postadress håller på att bytas", "Hej,\n\nnågon som är inloggad på ditt konto bad om att byta kontots e-postadress till {new}. Adressen byts när länken som skickats till den nya adressen öppnas.\n\nOm det inte var du, byt lösenord genast här: det avslutar alla inloggningar och stoppar bytet.\n\n{link}\n"},
		"en": {"Your email address is being changed", "Hello,\n\nsomeone signed in to your account asked to change its email address to {new}. The address changes when the link sent to the new address is opened.\n\nIf this wasn't you, reset your password at once here: that ends every sign-in and stops the change.\n\n{link}\n"},
	},
}

// Language returns the language an email or page is written in: fi, sv or en.
func Language(lang string) string {
	switch lang {
	case "fi", "sv":
		return lang
	}
	return "en"
}

// send sends one of the service's emails; a failure is logged and returned.
func (s *Service) send(ctx context.Context, to, kind, lang, link string) error {
	return s.sendText(ctx, to, kind, lang, map[string]string{"{link}": link})
}

// sendText is send with more than the link put into the text: each key of vars ("{new}")
// is replaced by its value.
func (s *Service) sendText(ctx context.Context, to, kind, lang string, vars map[string]string) error {
	sum := sha256.Sum256([]byte(to))
	if !s.mailTo.allow(string(sum[:])) {
		// The forms answer the same, and the per-address limits of the pages let this
		// through, so a flood from many addresses could still fill one mailbox: not past
		// this point.
		s.log.Warn("email not sent: too many to one recipient", "kind", kind)
		return nil
	}
	lang = Language(lang)
	t := emails[kind][lang]
	text := t.body
	for k, v := range vars {
		if k == "{link}" {
			v = withLang(v, lang)
		}
		text = strings.ReplaceAll(text, k, v)
	}
	err := s.mail.Send(ctx, mail.Message{To: to, Subject: t.subject, Text: text, Language: lang})
	if err != nil {
		s.log.Error("send email", "kind", kind, "err", err)
	}
	return err
}

// Emails to one recipient: a burst of mailBurst, then one per 10 minutes (per instance).
const (
	mailRate  = rate.Limit(1.0 / 600)
	mailBurst = 5
)

// withLang adds the email's language to a link into the account pages, so the page opens in
// the language the email was written in, whatever the browser that opens it prefers.
func withLang(link, lang string) string {
	u, err := url.Parse(link)
	if err != nil || u.Query().Has("lang") {
		return link
	}
	// Appended, so the token stays first in the link as it was.
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "lang=" + url.QueryEscape(lang)
	return u.String()
}

// link is the absolute URL of one of the account pages.
func (s *Service) link(path string) string { return strings.TrimSuffix(s.opt.LinkBase, "/") + path }
