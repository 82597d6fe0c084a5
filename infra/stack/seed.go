package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"licenseadmin/infra/cli"
	"licenseadmin/shared/activation"
	"licenseadmin/shared/app"
	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
	"licenseadmin/shared/logs"
	"licenseadmin/shared/store"
)

// The world that the sample events of infra/events name: one account with
// its admin, two users, licenses of every tier, a pending domain, an import
// waiting for its file (uploaded), a running export, an outbox email and an
// activation link. Each sample event succeeds on its own against it.
const (
	sampleAccount  = "01JDQ3Z2Y4X6W8V0T2S4R6Q8PN"
	sampleAdminID  = "01JDQ3Z3A0B1C2D3E4F5G6H7J8"
	sampleAdmin    = "admin@acme.test"
	sampleUserID   = "01JDQ5A3W7H2K9M4P6R8T0V1XB" // holds a pro license, pending activation
	sampleUser     = "grace.hopper@acme.test"
	sampleOtherID  = "01JDQ5C9F1G3H5J7K9M1N3P5QR" // no license
	sampleOther    = "ada.lovelace@acme.test"
	sampleDomain   = "acme.example" // requested, pending
	sampleImportID = "01JDQ6B4X8J3L0N5Q7S9U1W2YC"
	sampleExportID = "01JDQ6B4X8J3L0N5Q7S9U1W2YC"
	sampleOutboxID = "01JDQ5B0R4M7T2W9Y3C6E8G1HK"
	sampleRemindID = "01JDQ7C5Y9K4M1P6R8T0V2X3ZD" // a running reminder of every pending user
	sampleToken    = "q3Xb0u9mQf4yJcT2p8LrV1sWzN6kHgE5aD7oYiB-_xA"
	sampleLicenses = 10 // purchased of each tier
	// sampleImportedCSV is the import's file; infra/events/import-users.json
	// names its size and ETag (MD5), which the importer checks.
	sampleImportedCSV  = "email,first_name,last_name,language,license\nkatherine.johnson@acme.test,Katherine,Johnson,en,eco\n"
	sampleImportedUser = "katherine.johnson@acme.test"
	// sampleDropKey and sampleDroppedCSV are the file an integration drops;
	// infra/events/import-users-drop.json names its key, size and ETag.
	sampleDropKey    = "drop/" + sampleAccount + "/hr-export-2026-11.csv"
	sampleDroppedCSV = "email,first_name,last_name,language,license\nalan.turing@acme.test,Alan,Turing,en,\n"
)

// SeedCmd creates the sample world in the stack whose services the
// environment names (the local stack's defaults otherwise), and prints
// {"accountId", ...}. It fails when the world exists already.
func SeedCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := cli.NewFlagSet(e, "seed")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError{Msg: "seed takes no arguments"}
	}
	ctx, cancel, a, err := LocalApp(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	if err := seedSamples(ctx, a, time.Now().UTC()); err != nil {
		return Explain(err, a.Config)
	}
	return json.NewEncoder(e.Stdout).Encode(map[string]string{
		"accountId": sampleAccount, "admin": sampleAdmin, "userId": sampleUserID, "user": sampleUser,
		"otherUserId": sampleOtherID, "importId": sampleImportID, "exportId": sampleExportID,
		"reminderId": sampleRemindID,
	})
}

// seedSamples writes the sample world through the store (fixed ids, so
// that the committed events name them) and uploads the import's file.
func seedSamples(ctx context.Context, a *app.App, now time.Time) error {
	st := a.Store
	user := func(id, email, first, last string, role licadmin.Role) *licadmin.User {
		return &licadmin.User{ID: id, AccountID: sampleAccount, Email: email, FirstName: first, LastName: last, Language: "en",
			Role: role, Status: licadmin.StatusPending, Security: licadmin.Security{ProtectedReplies: "none"},
			CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	admin := user(sampleAdminID, sampleAdmin, "Ann", "Admin", licadmin.RoleAdmin)
	admin.Status = licadmin.StatusActive
	if _, _, err := st.CreateAccount(ctx, sampleAccount, "Acme", admin, "acme.test", now); err != nil {
		return fmt.Errorf("seed account: %w", err)
	}
	for _, t := range licadmin.Tiers {
		if _, err := st.AddLicenses(ctx, sampleAccount, t, sampleLicenses, "seed-"+string(t), now); err != nil {
			return fmt.Errorf("seed %s licenses: %w", t, err)
		}
	}
	c := &licadmin.Caller{Email: sampleAdmin, UserID: sampleAdminID, AccountID: sampleAccount, Role: licadmin.RoleAdmin}
	grace, err := st.CreateUser(ctx, c, user(sampleUserID, sampleUser, "Grace", "Hopper", licadmin.RoleUser), "acme.test", now)
	if err != nil {
		return fmt.Errorf("seed %s: %w", sampleUser, err)
	}
	if _, err := st.AssignLicense(ctx, c, grace, licadmin.Pro, now); err != nil {
		return fmt.Errorf("seed %s's license: %w", sampleUser, err)
	}
	if _, err := st.CreateUser(ctx, c, user(sampleOtherID, sampleOther, "Ada", "Lovelace", licadmin.RoleUser), "acme.test", now); err != nil {
		return fmt.Errorf("seed %s: %w", sampleOther, err)
	}
	txt := "license-admin-verification=sample"
	if _, err := st.RequestDomain(ctx, c, &licadmin.Domain{Domain: sampleDomain, Status: licadmin.DomainPending, TXTRecord: &txt, CreatedAt: now}, now); err != nil {
		return fmt.Errorf("seed domain %s: %w", sampleDomain, err)
	}

	imp := &licadmin.Import{ID: sampleImportID, Status: licadmin.ImportPending, AccountID: sampleAccount, Actor: sampleAdmin,
		UploadExpiresAt: now.Add(importer.UploadTTL), CreatedAt: now, UpdatedAt: now,
		Key: importer.ImportKey(sampleAccount, sampleImportID), ReportKey: importer.ReportKey(sampleAccount, sampleImportID)}
	if err := st.CreateImport(ctx, c, imp, imp, now); err != nil {
		return fmt.Errorf("seed import: %w", err)
	}
	url, err := a.Imports.Files.PresignUpload(ctx, imp.Key, importer.ContentType, time.Minute)
	if err != nil {
		return fmt.Errorf("seed import file: %w", err)
	}
	if err := putURL(ctx, url, importer.ContentType, sampleImportedCSV); err != nil {
		return fmt.Errorf("seed import file: %w", err)
	}
	if url, err = a.Imports.Files.PresignUpload(ctx, sampleDropKey, importer.ContentType, time.Minute); err != nil {
		return fmt.Errorf("seed dropped file: %w", err)
	}
	if err := putURL(ctx, url, importer.ContentType, sampleDroppedCSV); err != nil {
		return fmt.Errorf("seed dropped file: %w", err)
	}
	r := &licadmin.Reminder{ID: sampleRemindID, AccountID: sampleAccount, Actor: sampleAdmin, Status: licadmin.ReminderRunning,
		AllPending: true, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateReminder(ctx, c, r, r, now); err != nil {
		return fmt.Errorf("seed reminder: %w", err)
	}
	x := &licadmin.Export{ID: sampleExportID, AccountID: sampleAccount, UserID: sampleUserID, LogGeneration: grace.LogGeneration,
		Range: licadmin.LogRange{From: now.AddDate(0, -1, 0), To: now}, Status: licadmin.ExportRunning,
		Key: logs.ObjectKey(sampleAccount, sampleUserID, grace.LogGeneration, sampleExportID), CreatedBy: sampleAdmin, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateExport(ctx, c, x, x, now); err != nil {
		return fmt.Errorf("seed export: %w", err)
	}
	if _, err := st.PutOutboxOnce(ctx, &store.Outbox{ID: sampleOutboxID, Kind: licadmin.EmailLicenseAssigned, AccountID: sampleAccount,
		UserID: sampleUserID, Email: sampleUser, FirstName: "Grace", Language: "en", Tier: licadmin.Pro, CreatedAt: now, Status: "pending"}); err != nil {
		return fmt.Errorf("seed outbox email: %w", err)
	}
	hash, _ := activation.ParseToken(sampleToken)
	if err := st.PutActivationToken(ctx, &store.ActivationToken{Hash: hash, UserID: sampleUserID, AccountID: sampleAccount, Language: "en",
		OutboxID: sampleOutboxID, CreatedAt: now, ExpiresAt: now.Add(7 * 24 * time.Hour)}); err != nil {
		return fmt.Errorf("seed activation link: %w", err)
	}
	return nil
}

// putURL uploads body to a presigned URL, as a browser or curl -T does.
func putURL(ctx context.Context, url, contentType, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT: %s", resp.Status)
	}
	return nil
}

// LocalApp builds the App of the stack that `make run` started, for a
// command of the operator tool; the returned context bounds the command.
func LocalApp(ctx context.Context, e *cli.Env) (context.Context, context.CancelFunc, *app.App, error) {
	cfg, err := AppConfig(e)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	a, err := app.New(ctx, cfg)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cancel, a, nil
}

// Explain turns an error into what to do about it.
func Explain(err error, cfg app.Config) error {
	var ae *licadmin.Error
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ae):
		msg := ae.Code + ": " + ae.Message
		for _, f := range ae.Fields {
			msg += fmt.Sprintf(" (%s: %s)", f.Field, f.Code)
		}
		return errors.New(msg)
	case errors.As(err, &oe), errors.As(err, &ne):
		return fmt.Errorf("cannot reach DynamoDB at %s: start the local stack with `make run` first (or set DYNAMODB_ENDPOINT): %w", cfg.DynamoDBEndpoint, err)
	case strings.Contains(err.Error(), "ResourceNotFoundException"):
		return fmt.Errorf("table %q does not exist at %s: start the local stack with `make run` (it creates the table), or set TABLE_NAME", cfg.TableName, cfg.DynamoDBEndpoint)
	}
	return err
}
