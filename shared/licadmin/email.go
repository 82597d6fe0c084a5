package licadmin

// EmailKind names an email the system sends; each has its templates (in
// French and English) in package email.
type EmailKind string

// The emails License Admin sends.
const (
	// EmailActivation carries a user's activation link.
	EmailActivation EmailKind = "activation"
	// EmailLicenseAssigned confirms to its new holder that a license was
	// assigned or transferred to them.
	EmailLicenseAssigned EmailKind = "license_assigned"
	// EmailLowPool tells an admin that a tier's available licenses fell to
	// the account's alert threshold.
	EmailLowPool EmailKind = "low_pool"
	// EmailImportEnded tells an admin that the import of a file dropped in
	// the bucket ended, with its counts and how to get its report.
	EmailImportEnded EmailKind = "import_ended"
)

// Languages a user can have; messages and pages exist in these. The first
// is the default.
var Languages = []string{"en", "fr"}

// Language returns lang when messages exist in it, else the default.
func Language(lang string) string {
	for _, l := range Languages {
		if l == lang {
			return l
		}
	}
	return Languages[0]
}
