package datamap

import (
	"context"
	"fmt"

	"github.com/lupa-cmp/lupa/identity"
)

// demoSystems is the demo tenant's data map: the accounting system and the tills under the
// Accounting Act, the loyalty database, and the web shop's email platform, which is to be
// connected through the Mailchimp connector once one is configured.
var demoSystems = []System{
	{Name: "Accounting system", Description: "Sales invoices, vouchers and bookkeeping of Demo Retail Oy and its brands.",
		DataCategories: []string{"contact", "purchases", "payment", "accounting"},
		OtherPurposes:  []string{"bookkeeping and financial statements required by the Accounting Act"},
		LegalBases:     []string{BasisLegalObligation},
		Recipients: []Recipient{{Name: "Demo Tilitoimisto Oy", Role: RoleProcessor, Country: "FI"},
			{Name: "Verohallinto (Finnish Tax Administration)", Role: RolePublicAuthority, Country: "FI"}},
		Locations: []string{"FI"},
		Retention: Retention{Preset: "fi_accounting_vouchers",
			Notes: "Financial statements and the books themselves are kept ten years from the end of the financial year (preset fi_accounting_books)."},
		DSR: DSRRoute{Method: DSRManual, Owner: &Owner{Name: "Finance team", Email: "talous@demo-retail.example"},
			Instructions: "Access: export the person's invoices. Erasure: vouchers within their retention period stay (GDPR Art. 17(3)(b)); say so in the answer."}},
	{Name: "Store tills", Description: "The point-of-sale system of Demo Market's and Demo Style's stores: receipts, returns, and the loyalty card shown at the till.",
		DataCategories: []string{"identifiers", "purchases", "payment"},
		OtherPurposes:  []string{"selling, receipts and returns"},
		LegalBases:     []string{BasisContract, BasisLegalObligation},
		Recipients:     []Recipient{{Name: "Demo Kassat Oy", Role: RoleProcessor, Country: "FI"}},
		Locations:      []string{"FI"},
		Retention:      Retention{Preset: "fi_accounting_vouchers", Notes: "Till receipts are vouchers."},
		DSR: DSRRoute{Method: DSRManual, Owner: &Owner{Name: "Store operations", Email: "kassat@demo-retail.example"},
			Instructions: "Receipts name a loyalty card number, never a name: search by the person's card numbers."}},
	{Name: "Loyalty database", Description: "Members of the Demo Market and Demo Style customer club: membership, points, benefits and purchase history.",
		DataCategories: []string{"contact", "identifiers", "demographics", "purchases", "loyalty", "preferences", "profile"},
		Purposes:       []string{"personalisation", "brand_sharing"},
		OtherPurposes:  []string{"running the customer club"},
		LegalBases:     []string{BasisContract, BasisConsent},
		Recipients: []Recipient{{Name: "Demo Market Oy", Role: RoleJointController, Country: "FI"},
			{Name: "Demo Style Oy", Role: RoleJointController, Country: "FI"},
			{Name: "Demo Pilvi Oy", Role: RoleProcessor, Country: "FI"}},
		Locations: []string{"FI"},
		Retention: Retention{Years: 2, Anchor: AnchorContractEnd,
			LegalReference: "Demo Retail Oy's retention policy (GDPR Art. 5(1)(e)): two years after membership ends, for returns and complaints"},
		DSR: DSRRoute{Method: DSRManual, Owner: &Owner{Name: "Customer club team", Email: "asiakasklubi@demo-retail.example"}}},
	// Unconnected until a Mailchimp connector is configured: a connection must name an
	// existing connector of the tenant. Connecting it is a PATCH of connection and dsr.
	{Name: "Web shop email platform", Description: "Mailchimp: the newsletter of the Demo Market web shop.",
		DataCategories: []string{"contact", "preferences", "behaviour"},
		Purposes:       []string{"marketing_email"},
		LegalBases:     []string{BasisConsent},
		Recipients:     []Recipient{{Name: "The Rocket Science Group LLC (Mailchimp)", Role: RoleProcessor, Country: "US"}},
		Locations:      []string{"US"},
		Transfers: []Transfer{{Country: "US", Mechanism: MechanismAdequacy, Recipient: "The Rocket Science Group LLC",
			Notes: "EU–US Data Privacy Framework; standard contractual clauses in the data processing addendum as the fallback"}},
		Retention: Retention{Days: 30, Anchor: AnchorWithdrawal,
			LegalReference: "GDPR Art. 17(1)(b): unsubscribed members are deleted permanently within 30 days; Lupa keeps the evidence of the withdrawal"},
		DSR: DSRRoute{Method: DSRManual, Owner: &Owner{Name: "Marketing team", Email: "markkinointi@demo-retail.example"},
			Instructions: "Until the Mailchimp connector is configured: delete the member permanently in Mailchimp (a permanent delete, not an archive). Once it is, connect this system to it (connection mailchimp, dsr method connector)."}},
}

// SeedDemo creates the demo tenant's data map (its purposes must exist: consent's
// SeedDemo makes them).
func (s *Service) SeedDemo(ctx context.Context, tenantID string) ([]*System, error) {
	var out []*System
	for _, d := range demoSystems {
		d.TenantID = tenantID
		sys, err := s.Create(ctx, d, identity.ActorSystem)
		if err != nil {
			return nil, fmt.Errorf("demo data map %s: %w", d.Name, err)
		}
		out = append(out, sys)
	}
	return out, nil
}
