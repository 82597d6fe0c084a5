package main

import (
	"licenseadmin/shared/api"
	"licenseadmin/shared/apigw"
	"licenseadmin/shared/app"
)

// apiHandlers is the registry of the local API: the Lambda handler of every
// template function that has HttpApi events, keyed by its logical id and
// built exactly as that function's main builds it. `run` refuses to start
// when a template API function is missing here.
func apiHandlers(a *app.App) map[string]apigw.Handler {
	return map[string]apigw.Handler{
		"GetLicensePoolFunction":       api.GetLicensePool(a),
		"AssignLicenseFunction":        api.AssignLicense(a),
		"ModifyLicenseFunction":        api.ModifyLicense(a),
		"RemoveLicenseFunction":        api.RemoveLicense(a),
		"TransferLicenseFunction":      api.TransferLicense(a),
		"DeletePoolLicensesFunction":   api.DeletePoolLicenses(a),
		"CreateUserFunction":           api.CreateUser(a),
		"GetUserFunction":              api.GetUser(a),
		"ListUsersFunction":            api.ListUsers(a),
		"SendActivationEmailFunction":  api.SendActivationEmail(a),
		"SendActivationEmailsFunction": api.SendActivationEmails(a),
		"GetActivationEmailsFunction":  api.GetActivationEmails(a),
		"ActivationPageFunction":       api.ActivationPage(a),
		"ActivateFunction":             api.Activate(a),
		"SetAlertThresholdFunction":    api.SetAlertThreshold(a),
		"UpdateUserFunction":           api.UpdateUser(a),
		"DeleteUserFunction":           api.DeleteUser(a),
		"CreateDomainFunction":         api.CreateDomain(a),
		"VerifyDomainFunction":         api.VerifyDomain(a),
		"ListDomainsFunction":          api.ListDomains(a),
		"DeleteDomainFunction":         api.DeleteDomain(a),
		"ListUserLogsFunction":         api.ListUserLogs(a),
		"ListMyLogsFunction":           api.ListMyLogs(a),
		"ExportUserLogsFunction":       api.ExportUserLogs(a),
		"ExportMyLogsFunction":         api.ExportMyLogs(a),
		"GetExportFunction":            api.GetExport(a),
		"GetStatsFunction":             api.GetStats(a),
		"GetUserStatsFunction":         api.GetUserStats(a),
		"GetImportTemplateFunction":    api.GetImportTemplate(a),
		"CreateImportFunction":         api.CreateImport(a),
		"GetImportFunction":            api.GetImport(a),
		"ListImportsFunction":          api.ListImports(a),
	}
}
