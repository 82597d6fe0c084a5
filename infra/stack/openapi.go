package stack

import (
	"net/http"

	"licenseadmin"
)

// openAPIPath is where the local API serves the API's description.
const openAPIPath = "/openapi.yaml"

// withOpenAPI serves openapi.yaml at GET /openapi.yaml (no token needed),
// so that clients, Swagger UI or schemathesis can read the description of
// the API they talk to, and passes every other request to next. API
// Gateway does not serve it: the file is in the repository.
func withOpenAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != openAPIPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(licenseadmin.OpenAPI)
		}
	})
}
