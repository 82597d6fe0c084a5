package api_test

import (
	"context"
	"net/http"
	"testing"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/operator"
)

// TestUnicodeDomainOneMailbox ensures every path that takes an email or a
// domain speaks one canonical form (lower case, punycode domain): an
// operator approval, a domain request, create, edit, import and the token's
// claim all see jane@bücher.example and jane@xn--bcher-kva.example as one
// mailbox, so the address can be created when its domain is approved, and
// never twice.
func TestUnicodeDomainOneMailbox(t *testing.T) {
	f := newImportFixture(t)
	ctx := context.Background()
	a := f.App
	const ascii = "xn--bcher-kva.example"

	// Operator approval (and the answer) in the canonical form.
	d, err := a.Operator.ApproveDomain(ctx, operator.ApproveDomainInput{AccountID: f.acct, Domain: "BÜCHER.example"})
	if err != nil || d.Domain != ascii {
		t.Fatalf("approve: %+v, %v; want %s", d, err, ascii)
	}
	// A domain request of either spelling is the same entry.
	for _, name := range []string{"bücher.example", ascii} {
		r := apitest.Do(t, api.CreateDomain(a), apitest.Request{Route: routeDomains, Email: f.admin, Body: map[string]string{"domain": name}})
		if got := domainOf(t, r); got.Domain != ascii || got.Status != licadmin.DomainApproved {
			t.Fatalf("request %s: %+v", name, got)
		}
	}

	// Create: the Unicode spelling is accepted (its domain is approved),
	// stored canonically, and the other spelling is taken.
	create := api.CreateUser(a)
	r := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("Jane@BÜCHER.example", "admin")})
	r.Want(t, http.StatusCreated)
	jane := r.User(t)
	if jane.Email != "jane@"+ascii {
		t.Fatalf("created email %q, want jane@%s", jane.Email, ascii)
	}
	r = apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("jane@"+ascii, "user")})
	r.WantProblem(t, http.StatusConflict, licadmin.EEMAILTAKEN)

	// The claim: a token naming either spelling is Jane, an admin.
	for _, claim := range []string{"JANE@Bücher.Example", "jane@" + ascii} {
		apitest.Do(t, api.GetLicensePool(a), apitest.Request{Route: routePool, Email: claim}).Want(t, http.StatusOK)
	}

	// Edit: another user cannot take Jane's mailbox under the other
	// spelling, and an edit to a Unicode address stores it canonically.
	john := apitest.Do(t, create, apitest.Request{Route: routeUsers, Email: f.admin, Body: userBody("john@acme.test", "user")}).User(t)
	update := api.UpdateUser(a)
	apitest.Do(t, update, userReq(routeUpdateUser, f.admin, john.ID, map[string]string{"email": "jane@BÜCHER.example"})).
		WantProblem(t, http.StatusConflict, licadmin.EEMAILTAKEN)
	r = apitest.Do(t, update, userReq(routeUpdateUser, f.admin, john.ID, map[string]string{"email": "John@Bücher.example"}))
	r.Want(t, http.StatusOK)
	if got := r.User(t).Email; got != "john@"+ascii {
		t.Fatalf("edited email %q, want john@%s", got, ascii)
	}

	// Import: a Unicode row is created canonically; its other spelling in
	// the same file, and Jane's, are refused.
	imp := f.importCSV(t, "email,first_name,last_name\nzoe@bücher.example,Zoe,Z\nZOE@"+ascii+",Zoe,Z\njane@bücher.example,Jane,J\n", false)
	if imp.Created != 1 || imp.Failed != 2 {
		t.Fatalf("import created %d, failed %d; want 1 and 2", imp.Created, imp.Failed)
	}
	if u := f.usersByEmail(t)["zoe@"+ascii]; u == nil {
		t.Fatalf("imported user zoe@%s not found", ascii)
	}
}
