// Command served prints the operationId of every operation of openapi.yaml
// that template.yaml routes, one a line: the operations that the local API
// (and API Gateway) serve. The API fuzzing (make fuzz-api) runs on those.
//
//	go run ./infra/apispec/served
package main

import (
	"context"
	"fmt"
	"os"

	"licenseadmin"
	"licenseadmin/infra/apispec"
	"licenseadmin/infra/template"
)

func main() {
	ids, err := served()
	if err != nil {
		fmt.Fprintln(os.Stderr, "served:", err)
		os.Exit(1)
	}
	for _, id := range ids {
		fmt.Println(id)
	}
}

func served() ([]string, error) {
	doc, err := apispec.Load(context.Background())
	if err != nil {
		return nil, err
	}
	tpl, err := template.Parse(licenseadmin.Template)
	if err != nil {
		return nil, err
	}
	routed := map[string]bool{}
	for _, fn := range tpl.Functions {
		for _, r := range fn.Routes {
			routed[r.Key()] = true
		}
	}
	var ids []string
	for _, op := range apispec.Operations(doc) {
		if routed[op.Key()] {
			ids = append(ids, op.ID)
		}
	}
	return ids, nil
}
