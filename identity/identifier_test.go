package identity_test

import (
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
)

func TestNormalizeEmail(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"  Anna.Virtanen+Uutiset@Esimerkki.FI \t", "anna.virtanen+uutiset@esimerkki.fi"},
		// The same address in decomposed and composed Unicode is one address.
		{"A\u0308iti@example.fi", "äiti@example.fi"},
		{"ÅSA@EXAMPLE.SE", "åsa@example.se"},
	} {
		if got := identity.NormalizeEmail(c.in); got != c.want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIdentifierValidation(t *testing.T) {
	for _, c := range []struct {
		id    identity.Identifier
		field string // "" when valid
	}{
		{identity.Identifier{Kind: "email", Value: " Anna@Example.fi "}, ""},
		{identity.Identifier{Kind: "email", Value: "not an address"}, "x.value"},
		{identity.Identifier{Kind: "email", Value: "Anna <anna@example.fi>"}, "x.value"},
		{identity.Identifier{Kind: "email", Value: "anna@localhost"}, "x.value"},
		{identity.Identifier{Kind: "email", Value: strings.Repeat("a", 250) + "@example.fi"}, "x.value"},
		{identity.Identifier{Kind: "email", Namespace: "crm", Value: "anna@example.fi"}, "x.namespace"},
		{identity.Identifier{Kind: "idp", Namespace: "https://login.example.fi/realms/shop/", Value: "f81d4fae-7dec"}, ""},
		{identity.Identifier{Kind: "idp", Namespace: "ftp://login.example.fi", Value: "x"}, "x.namespace"},
		{identity.Identifier{Kind: "idp", Namespace: "https://login.example.fi", Value: ""}, "x.value"},
		{identity.Identifier{Kind: "external", Namespace: "crm", Value: "123"}, ""},
		{identity.Identifier{Kind: "external", Namespace: "CRM system", Value: "123"}, "x.namespace"},
		{identity.Identifier{Kind: "external", Namespace: "loyalty", Value: "12\x003"}, "x.value"},
		{identity.Identifier{Kind: "customer_number", Namespace: "crm", Value: "123"}, "x.namespace"},
		{identity.Identifier{Kind: "phone", Value: "123"}, "x.kind"},
	} {
		err := c.id.Normalized().Validate("x")
		if c.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.id, err)
			}
			continue
		}
		ie, ok := err.(*identity.Error)
		if !ok || len(ie.Fields) == 0 || ie.Fields[0].Field != c.field {
			t.Errorf("%+v: got %v, want a problem with %s", c.id, err, c.field)
		}
	}
}
