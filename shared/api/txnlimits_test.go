package api_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/idem"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/store"
)

// txnCase calls one store method that builds a transaction, in an edge
// case, and names the answer it must get.
type txnCase struct {
	method string // the store method
	name   string
	run    func(*testing.T) error
	code   string // the licadmin code it must fail with; "" for success
}

// TestTransactionLimits drives every store method that builds a
// TransactWriteItems with its edge cases (the caller's own email and
// user, the largest fields and lists, full import chunks, idempotency
// records) and proves that none breaks one of DynamoDB's transaction
// rules, which DynamoDB Local does not all enforce: the store refuses such
// a transaction before sending it (store.ErrTxnLimit). A store method
// that builds a transaction and has no case here fails the test.
func TestTransactionLimits(t *testing.T) {
	f := newImportFixture(t)
	st := f.App.Store
	bg := context.Background()
	now := time.Now().UTC()
	user := func(t *testing.T, id string) *licadmin.User {
		t.Helper()
		us, err := st.LoadUsers(bg, id)
		if err != nil || len(us) != 1 || us[0] == nil {
			t.Fatalf("load user %s: %v", id, err)
		}
		return us[0]
	}
	keyed := func(name string) context.Context {
		return idem.With(bg, &idem.Pending{Record: idem.Record{Scope: f.admin, Key: name, Hash: "h", CreatedAt: now}})
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	longEmail := long(64) + "@" + strings.Repeat("d", 63) + ".acme.test"
	admin := f.MustCaller(t, f.admin)
	adminUser := user(t, admin.UserID)

	// Users the cases work on, made through the API.
	create := func(email, role string) string {
		r := apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: routeUsers, Email: f.admin, Body: newUser(email, role)})
		r.Want(t, http.StatusCreated)
		return r.User(t).ID
	}
	plainID := create("plain@acme.test", "user")
	holderID := create("holder@acme.test", "user")
	create("second@acme.test", "admin")
	apitest.Do(t, api.AssignLicense(f.App), apitest.Request{Route: routeAssign, Params: map[string]string{"userId": holderID}, Email: f.admin,
		Body: map[string]string{"tier": "eco"}}).Want(t, http.StatusOK)

	newU := func(account, email string, role licadmin.Role) *licadmin.User {
		return &licadmin.User{ID: "u-" + strings.ReplaceAll(email, "@", "-"), AccountID: account, Email: email, FirstName: long(100), LastName: long(100),
			Language: "en", Role: role, Status: licadmin.StatusPending, CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	edited := func(u *licadmin.User, edit func(n *licadmin.User)) *licadmin.User {
		n := *u
		edit(&n)
		return &n
	}
	recipients := make([]string, 500)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("%03d%s", i, longEmail[3:])
	}
	tok := &store.ActivationToken{Hash: []byte("0123456789abcdef0123456789abcdef"), UserID: plainID, AccountID: f.acct, Language: "en",
		OutboxID: "o1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}

	cases := []txnCase{
		{"CreateAccount", "admin on a webmail domain", func(t *testing.T) error {
			ctx := bg
			_, _, err := st.CreateAccount(ctx, "acct-webmail", long(200), newU("acct-webmail", "founder@gmail.com", licadmin.RoleAdmin), "", now)
			return err
		}, ""},
		{"CreateAccount", "admin email already taken", func(t *testing.T) error {
			ctx := bg
			_, _, err := st.CreateAccount(ctx, "acct-taken", "Taken", newU("acct-taken", f.admin, licadmin.RoleAdmin), "", now)
			return err
		}, licadmin.EEMAILTAKEN},
		{"CreateAccount", "admin on its own domain", func(t *testing.T) error {
			ctx := bg
			_, _, err := st.CreateAccount(ctx, "acct-newco", "Newco", newU("acct-newco", "founder@newco.test", licadmin.RoleAdmin), "newco.test", now)
			return err
		}, ""},
		{"AddLicenses", "new order", func(t *testing.T) error {
			ctx := bg
			_, err := st.AddLicenses(ctx, f.acct, licadmin.Eco, 50, long(128), now)
			return err
		}, ""},
		{"AddLicenses", "same order again", func(t *testing.T) error {
			ctx := bg
			_, err := st.AddLicenses(ctx, f.acct, licadmin.Eco, 50, long(128), now)
			return err
		}, ""},
		{"CreateUser", "the caller's own email", func(t *testing.T) error {
			ctx := bg
			_, err := st.CreateUser(ctx, admin, newU(f.acct, f.admin, licadmin.RoleUser), "acme.test", now)
			return err
		}, licadmin.EEMAILTAKEN},
		{"CreateUser", "the caller's own email, with a key", func(t *testing.T) error {
			_, err := st.CreateUser(keyed("create-own"), admin, newU(f.acct, f.admin, licadmin.RoleAdmin), "acme.test", now)
			return err
		}, licadmin.EEMAILTAKEN},
		{"CreateUser", "an admin with the longest fields, with a key", func(t *testing.T) error {
			_, err := st.CreateUser(keyed("create-long"), admin, newU(f.acct, longEmail, licadmin.RoleAdmin), "", now)
			return err
		}, ""},
		{"UpdateUser", "another user to the caller's email", func(t *testing.T) error {
			ctx := bg
			u := user(t, plainID)
			_, err := st.UpdateUser(ctx, admin, u, edited(u, func(n *licadmin.User) { n.Email = f.admin }), "acme.test", false, now)
			return err
		}, licadmin.EEMAILTAKEN},
		{"UpdateUser", "the caller's own email changed", func(t *testing.T) error {
			ctx := bg
			_, err := st.UpdateUser(ctx, admin, adminUser, edited(adminUser, func(n *licadmin.User) { n.Email = "boss2@acme.test" }), "acme.test", true, now)
			return err
		}, ""},
		{"UpdateUser", "the caller demotes itself, with a key", func(t *testing.T) error {
			c := f.MustCaller(t, "boss2@acme.test")
			u := user(t, c.UserID)
			_, err := st.UpdateUser(keyed("demote-self"), c, u, edited(u, func(n *licadmin.User) { n.Role = licadmin.RoleUser }), "", false, now)
			return err
		}, ""},
		{"UpdateUser", "another admin's email and role at once", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			u := user(t, plainID)
			_, err := st.UpdateUser(ctx, c, u, edited(u, func(n *licadmin.User) { n.Email = "plain2@acme.test"; n.Role = licadmin.RoleAdmin }), "acme.test", false, now)
			return err
		}, ""},
		{"AssignLicense", "to the caller itself", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			_, err := st.AssignLicense(keyed("assign-self"), c, user(t, c.UserID), licadmin.Pro, now)
			return err
		}, ""},
		{"ModifyLicense", "the caller's own", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			_, err := st.ModifyLicense(ctx, c, user(t, c.UserID), licadmin.Eco, now)
			return err
		}, ""},
		{"TransferLicense", "from the caller to another", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			_, err := st.TransferLicense(keyed("transfer-self"), c, user(t, c.UserID), user(t, plainID), now)
			return err
		}, ""},
		{"TransferLicense", "from a user to itself", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			_, err := st.TransferLicense(ctx, c, user(t, holderID), user(t, holderID), now)
			return err
		}, licadmin.ETARGETHASLICENSE},
		{"RemoveLicense", "the caller's own", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "plain2@acme.test")
			_, err := st.RemoveLicense(ctx, c, user(t, c.UserID), now)
			return err
		}, ""},
		{"BulkLicenses", "the caller itself and the most users, with a key", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			f.MustLicenses(t, f.acct, licadmin.Advanced, licadmin.MaxBulkUsers)
			us := []*licadmin.User{user(t, c.UserID)}
			all, _, err := st.ListUsers(bg, f.acct, licadmin.UserFilter{License: "none"}, 200, nil)
			if err != nil {
				return err
			}
			for _, u := range all {
				if len(us) < licadmin.MaxBulkUsers && u.ID != c.UserID {
					us = append(us, u)
				}
			}
			if len(us) < licadmin.MaxBulkUsers {
				return fmt.Errorf("only %d users without a license", len(us))
			}
			_, err = st.BulkLicenses(keyed("bulk-most"), c, licadmin.BulkAssign, licadmin.Advanced, us, now)
			return err
		}, ""},
		{"DeleteFromPool", "with a key", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			p, err := st.Pool(ctx, f.acct)
			if err != nil {
				return err
			}
			_, err = st.DeleteFromPool(keyed("delete-pool"), c, p, licadmin.Pro, 1, now)
			return err
		}, ""},
		{"SetAlertThreshold", "with a key", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			p, err := st.Pool(ctx, f.acct)
			if err != nil {
				return err
			}
			_, err = st.SetAlertThreshold(keyed("alert"), c, p, licadmin.Eco, 1<<40, now)
			return err
		}, ""},
		{"RequestActivationEmail", "to the caller itself", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			return st.RequestActivationEmail(keyed("activate-self"), c, user(t, c.UserID), now)
		}, ""},
		{"ConsumeActivationToken", "with a key", func(t *testing.T) error {
			ctx := bg
			if err := st.PutActivationToken(ctx, tok); err != nil {
				return err
			}
			return st.ConsumeActivationToken(keyed("consume"), tok, now)
		}, ""},
		{"RequestDomain", "the longest name", func(t *testing.T) error {
			txt := long(200)
			_, err := st.RequestDomain(keyed("domain"), f.MustCaller(t, "second@acme.test"), &licadmin.Domain{Domain: strings.Repeat("d", 63) + ".acme.test", Status: licadmin.DomainPending, TXTRecord: &txt, CreatedAt: now}, now)
			return err
		}, ""},
		{"ApproveDomain", "by DNS", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			d, _, err := st.Domain(ctx, f.acct, strings.Repeat("d", 63)+".acme.test")
			if err != nil {
				return err
			}
			_, err = st.ApproveDomain(ctx, c, f.acct, d.Domain, d, now)
			return err
		}, ""},
		{"ApproveDomain", "by an operator, never requested", func(t *testing.T) error {
			ctx := bg
			_, err := st.ApproveDomain(ctx, nil, f.acct, "operator.test", nil, now)
			return err
		}, ""},
		{"DeleteDomain", "the holder", func(t *testing.T) error {
			ctx := bg
			d, _, err := st.Domain(ctx, f.acct, "operator.test")
			if err != nil {
				return err
			}
			return st.DeleteDomain(ctx, f.MustCaller(t, "second@acme.test"), d, true, now)
		}, ""},
		{"CreateExport", "of the caller's own logs, with a key", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			x := &licadmin.Export{ID: "x1", AccountID: f.acct, UserID: c.UserID, Status: licadmin.ExportRunning, Key: long(900),
				CreatedBy: c.Email, CreatedAt: now, UpdatedAt: now}
			return st.CreateExport(keyed("export"), c, x, x, now)
		}, ""},
		{"CreateImport", "with a key", func(t *testing.T) error {
			imp := &licadmin.Import{ID: "i1", AccountID: f.acct, Status: licadmin.ImportPending, Actor: "second@acme.test", Key: long(900),
				CreatedAt: now, UpdatedAt: now, UploadExpiresAt: now.Add(time.Hour)}
			return st.CreateImport(keyed("import"), f.MustCaller(t, "second@acme.test"), imp, imp, now)
		}, ""},
		{"CreateReminder", "of every pending user, with a key", func(t *testing.T) error {
			c := f.MustCaller(t, "second@acme.test")
			r := &licadmin.Reminder{ID: "r1", AccountID: f.acct, Actor: c.Email, Status: licadmin.ReminderRunning, AllPending: true,
				CreatedAt: now, UpdatedAt: now}
			return st.CreateReminder(keyed("remind"), c, r, r, now)
		}, ""},
		{"RemindUsers", "the caller itself and full groups, twice for one reminder", func(t *testing.T) error {
			ctx := bg
			c := f.MustCaller(t, "second@acme.test")
			us := []*licadmin.User{user(t, c.UserID)}
			all, _, err := st.ListUsers(bg, f.acct, licadmin.UserFilter{}, 200, nil)
			if err != nil {
				return err
			}
			for _, u := range all {
				if len(us) < 2*store.RemindGroup && u.ID != c.UserID {
					us = append(us, u)
				}
			}
			if len(us) < 2*store.RemindGroup {
				return fmt.Errorf("only %d users", len(us))
			}
			if _, err := st.RemindUsers(ctx, c, us, "r1", now); err != nil {
				return err
			}
			_, err = st.RemindUsers(ctx, c, us, "r1", now)
			return err
		}, ""},
		{"CreateDropImport", "the longest key, twice", func(t *testing.T) error {
			ctx := bg
			name := long(200) + ".csv"
			imp := &licadmin.Import{ID: "drop1", AccountID: f.acct, Status: licadmin.ImportPending, Source: licadmin.ImportSourceDrop,
				Actor: "AWS:" + long(128), Key: "drop/" + f.acct + "/" + name, FileName: &name, CreatedAt: now, UpdatedAt: now}
			if err := st.CreateDropImport(ctx, imp, now); err != nil {
				return err
			}
			if err := st.CreateDropImport(ctx, imp, now); !errors.Is(err, licadmin.ErrImportExists) {
				return fmt.Errorf("the same drop again: %v, want ErrImportExists", err)
			}
			return nil
		}, ""},
		{"DeleteUser", "the caller itself", func(t *testing.T) error {
			c := f.MustCaller(t, "plain2@acme.test")
			return st.DeleteUser(keyed("delete-self"), c, user(t, c.UserID), now)
		}, ""},
		{"DeleteUser", "another user holding a license", func(t *testing.T) error {
			ctx := bg
			return st.DeleteUser(ctx, f.MustCaller(t, "second@acme.test"), user(t, holderID), now)
		}, ""},
	}

	// CommitImportChunk, through the importer: chunks as full as the
	// importer makes them, with the actor's own email, a duplicate, the
	// longest names and many domains.
	var csv strings.Builder
	csv.WriteString("email,first_name,last_name,language,license\n")
	csv.WriteString(f.admin + ",Own,Email,en,eco\n")
	for i := range 230 {
		domain := "acme.test"
		switch i % 10 {
		case 3:
			domain = "gmail.com"
		case 7:
			domain = fmt.Sprintf("unapproved%d.test", i)
		}
		fmt.Fprintf(&csv, "row%03d-%s@%s,%s,%s,en,eco\n", i, long(50), domain, long(100), long(100))
	}
	csv.WriteString("row000-" + long(50) + "@acme.test,Dup,Row,en,\n")
	cases = append([]txnCase{{"CommitImportChunk", "full chunks", func(t *testing.T) error {
		imp := f.importCSV(t, csv.String(), false)
		if imp.Status != licadmin.ImportDone {
			return fmt.Errorf("import ended %s (%+v)", imp.Status, imp.Error)
		}
		dry := f.importCSV(t, csv.String(), true)
		if dry.Status != licadmin.ImportDone {
			return fmt.Errorf("dry run ended %s (%+v)", dry.Status, dry.Error)
		}
		return nil
	}, ""}}, cases...)

	// FinishImport, through the importer: a dropped file's end emails
	// every admin of the account, and the account has more admins than
	// one transaction holds.
	cases = append(cases, txnCase{"FinishImport", "a drop's end with more admins than fit", func(t *testing.T) error {
		// The fixture's admin changed its email and demoted itself above.
		for i := range licadmin.MaxChunkItems + 5 {
			apitest.Do(t, api.CreateUser(f.App), apitest.Request{Route: routeUsers, Email: "second@acme.test",
				Body: newUser(fmt.Sprintf("admin%03d@acme.test", i), "admin")}).Want(t, http.StatusCreated)
		}
		key := "drop/" + f.acct + "/" + long(100) + ".csv"
		eTag := f.S3.Drop(t, key, "email,first_name,last_name,language,license\ndropped@acme.test,Drop,Ped,en,\n")
		f.RunImports(t, f.S3.Uploads(t, 1)...)
		imp, err := st.GetImport(bg, f.acct, importer.DropImportID(f.acct, eTag))
		if err != nil {
			return err
		}
		if imp.Status != licadmin.ImportDone {
			return fmt.Errorf("drop import ended %s (%+v)", imp.Status, imp.Error)
		}
		return nil
	}, ""})

	// ApplySearchIndex, as the stream function calls it: a user of the
	// longest fields renamed in every field (three entries put, three
	// deleted, the marker), forty renames in one batch (more deletions
	// than one transaction holds), then its deletion.
	searched := newU(f.acct, "searched@acme.test", licadmin.RoleUser)
	searched.Email = long(64) + "@" + strings.Repeat("d", 63) + ".acme.test"
	var renames []*licadmin.User
	for i := range 40 {
		renames = append(renames, edited(searched, func(n *licadmin.User) {
			n.Email, n.FirstName, n.LastName = fmt.Sprintf("r%02d", i)+searched.Email[3:], fmt.Sprintf("F%02d", i)+long(97), fmt.Sprintf("L%02d", i)+long(97)
		}))
	}
	searchCase := func(name string, seq int, seen []*licadmin.User, final *licadmin.User) txnCase {
		return txnCase{"ApplySearchIndex", name, func(t *testing.T) error {
			return st.ApplySearchIndex(bg, store.SearchChange{UserID: searched.ID, Sequence: fmt.Sprint(seq), Seen: seen, Final: final}, now)
		}, ""}
	}
	cases = append(cases,
		searchCase("created", 100, []*licadmin.User{nil, searched}, searched),
		searchCase("renamed in every field", 200, []*licadmin.User{searched, renames[0]}, renames[0]),
		searchCase("forty renames in one batch", 300, append([]*licadmin.User{renames[0]}, renames...), renames[39]),
		searchCase("deleted", 400, []*licadmin.User{renames[39], nil}, nil),
	)

	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.method] = true
		t.Run(tc.method+"/"+tc.name, func(t *testing.T) {
			err := tc.run(t)
			if errors.Is(err, store.ErrTxnLimit) {
				t.Fatalf("the transaction breaks DynamoDB's rules: %v", err)
			}
			var le *licadmin.Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.code != "" && (!errors.As(err, &le) || le.Code != tc.code):
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
	for _, m := range transactingMethods(t) {
		if !covered[m] {
			t.Errorf("store.%s builds a transaction and has no case in TestTransactionLimits", m)
		}
	}
	f.Invariants(t)
}

// transactingMethods lists the exported methods of store.Store that send
// a transaction (call its commit or transact), read from the source.
func transactingMethods(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, file := range sourceFiles(t, filepath.Join("..", "store", "*.go")) {
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() || fn.Body == nil {
				continue
			}
			sends := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "commit" || sel.Sel.Name == "transact") {
						sends = true
					}
				}
				return true
			})
			if sends {
				out = append(out, fn.Name.Name)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no store method that sends a transaction")
	}
	return out
}

// sourceFiles parses the Go files that pattern matches, tests left out.
func sourceFiles(t *testing.T, pattern string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		files = append(files, file)
	}
	return files
}
