// Package licenseadmin embeds the SAM template so that the local stack and
// the tests read the table, the functions and the routes from the one file
// that is deployed, instead of a copy that could drift.
package licenseadmin

import _ "embed"

// Template is the content of template.yaml.
//
//go:embed template.yaml
var Template []byte
