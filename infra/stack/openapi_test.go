package stack

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"licenseadmin"
)

// TestServeOpenAPI ensures the local API serves openapi.yaml as is at
// /openapi.yaml without a token, and passes every other path through.
func TestServeOpenAPI(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(withOpenAPI(next))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(body, licenseadmin.OpenAPI) {
		t.Errorf("GET /openapi.yaml: %d %q, %d bytes; want 200 application/yaml with openapi.yaml", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}

	resp, err = http.Post(srv.URL+"/openapi.yaml", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /openapi.yaml: %d, want 405", resp.StatusCode)
	}

	resp, err = http.Get(srv.URL + "/v1/licenses")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("GET /v1/licenses: %d, want the API's answer", resp.StatusCode)
	}
}
