package licenseadmin

import _ "embed"

// OpenAPI is the content of openapi.yaml, the API's description: the local
// API serves it at /openapi.yaml and the tests validate real responses
// against it.
//
//go:embed openapi.yaml
var OpenAPI []byte
