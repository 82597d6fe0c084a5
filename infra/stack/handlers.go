package stack

import (
	"log"
	"net/http"

	"licenseadmin/infra/template"
	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
)

// loader builds the App of one function with the features its main asks
// app.MustLoad for, as the function's own process does in AWS: the
// registries below call it once per function, with that function's
// features, so a main that forgets a feature fails locally as it would in
// AWS instead of borrowing it from another function.
type loader func(features ...app.Feature) *app.App

// sameApp is a loader that hands every function a, an App with every
// feature: for benchmarks of the handlers, which measure them rather
// than check their wiring.
func sameApp(a *app.App) loader {
	return func(...app.Feature) *app.App { return a }
}

// apiHandlers is the registry of the local API: the Lambda handler of every
// template function that has HttpApi events, keyed by its logical id and
// built exactly as that function's main builds it (app.MustLoad is load).
// `run` refuses to start when a template API function is missing here.
func apiHandlers(load loader) map[string]apigw.Handler {
	return map[string]apigw.Handler{
		"GetLicensePoolFunction":       api.GetLicensePool(load()),
		"AssignLicenseFunction":        api.AssignLicense(load()),
		"ModifyLicenseFunction":        api.ModifyLicense(load()),
		"RemoveLicenseFunction":        api.RemoveLicense(load()),
		"TransferLicenseFunction":      api.TransferLicense(load()),
		"DeletePoolLicensesFunction":   api.DeletePoolLicenses(load()),
		"BulkLicensesFunction":         api.BulkLicenses(load()),
		"CreateUserFunction":           api.CreateUser(load()),
		"GetUserFunction":              api.GetUser(load()),
		"ListUsersFunction":            api.ListUsers(load()),
		"SendActivationEmailFunction":  api.SendActivationEmail(load()),
		"SendActivationEmailsFunction": api.SendActivationEmails(load(app.WithReminders)),
		"GetActivationEmailsFunction":  api.GetActivationEmails(load()),
		"ActivationPageFunction":       api.ActivationPage(load()),
		"ActivateFunction":             api.Activate(load()),
		"SetAlertThresholdFunction":    api.SetAlertThreshold(load()),
		"UpdateUserFunction":           api.UpdateUser(load()),
		"DeleteUserFunction":           api.DeleteUser(load()),
		"CreateDomainFunction":         api.CreateDomain(load()),
		"VerifyDomainFunction":         api.VerifyDomain(load()),
		"ListDomainsFunction":          api.ListDomains(load()),
		"DeleteDomainFunction":         api.DeleteDomain(load()),
		"ListUserLogsFunction":         api.ListUserLogs(load()),
		"ListMyLogsFunction":           api.ListMyLogs(load()),
		"ExportUserLogsFunction":       api.ExportUserLogs(load(app.WithExports)),
		"ExportMyLogsFunction":         api.ExportMyLogs(load(app.WithExports)),
		"GetExportFunction":            api.GetExport(load(app.WithExports)),
		"GetStatsFunction":             api.GetStats(load()),
		"GetUserStatsFunction":         api.GetUserStats(load()),
		"GetImportTemplateFunction":    api.GetImportTemplate(load()),
		"CreateImportFunction":         api.CreateImport(load(app.WithFiles)),
		"GetImportFunction":            api.GetImport(load(app.WithFiles)),
		"ListImportsFunction":          api.ListImports(load(app.WithFiles)),
	}
}

// NewAPI is the local API over tpl with every handler built on a, one App
// with every feature, and tokens checked against key: the benchmark
// measures the handlers behind it, and checks no function's wiring.
func NewAPI(tpl *template.Template, a *app.App, key *SigningKey, logger *log.Logger) (http.Handler, error) {
	return newServer(tpl, apiHandlers(sameApp(a)), newAuthorizer(key), logger)
}
