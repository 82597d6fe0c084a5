package app_test

import (
	"context"
	"testing"

	"licenseadmin/shared/app"
)

// lambdaEnv sets the variables the Lambda runtime gives a function.
func lambdaEnv(t *testing.T) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLAMBDA")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "token")
	t.Setenv("AWS_ENDPOINT_URL", "")
}

// TestLoadWiresOnlyTheFeaturesAsked ensures a Lambda's App has the
// DynamoDB services always and the other parts only with their feature,
// so that a function links only what it uses.
func TestLoadWiresOnlyTheFeaturesAsked(t *testing.T) {
	lambdaEnv(t)
	cfg := app.Config{TableName: "t", Region: "eu-west-3", S3: app.S3Config{Bucket: "b"}}
	for _, tt := range []struct {
		name                  string
		features              []app.Feature
		stream, files, export bool
	}{
		{"core", nil, false, false, false},
		{"stream", []app.Feature{app.WithStream}, true, false, false},
		{"files", []app.Feature{app.WithFiles}, false, true, false},
		{"exports", []app.Feature{app.WithExports}, false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := app.Load(context.Background(), cfg, tt.features)
			if err != nil {
				t.Fatal(err)
			}
			if a.Licenses == nil || a.Users == nil || a.Logs == nil || a.Stats == nil || a.Imports == nil || a.Exports == nil {
				t.Fatal("a DynamoDB service is missing")
			}
			if got := a.Stream != nil && a.Notify != nil; got != tt.stream {
				t.Errorf("stream and email delivery wired: %v, want %v", got, tt.stream)
			}
			if got := a.Imports.Files != nil; got != tt.files {
				t.Errorf("import files wired: %v, want %v", got, tt.files)
			}
			if got := a.Exports.Objects != nil; got != tt.export {
				t.Errorf("export bucket wired: %v, want %v", got, tt.export)
			}
		})
	}
}

// TestLoadReadsLambdaCredentials ensures a Lambda's App signs with the
// credentials and region the Lambda runtime puts in the environment.
func TestLoadReadsLambdaCredentials(t *testing.T) {
	lambdaEnv(t)
	a, err := app.Load(context.Background(), app.Config{TableName: "t", Region: "eu-west-3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := a.DynamoDB.Options()
	if o.Region != "eu-west-3" {
		t.Errorf("region %q, want eu-west-3", o.Region)
	}
	creds, err := o.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIDLAMBDA" || creds.SecretAccessKey != "secret" || creds.SessionToken != "token" {
		t.Errorf("credentials %+v, want the environment's", creds)
	}
}

// TestLoadRefusesMissingLambdaSettings ensures a function started without
// a region or credentials fails its cold start with the reason, except
// against a local DynamoDB, where placeholders do.
func TestLoadRefusesMissingLambdaSettings(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := app.Load(context.Background(), app.Config{TableName: "t", Region: "eu-west-3"}, nil); err == nil {
		t.Error("no error without credentials")
	}
	lambdaEnv(t)
	if _, err := app.Load(context.Background(), app.Config{TableName: "t"}, nil); err == nil {
		t.Error("no error without a region")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	a, err := app.Load(context.Background(), app.Config{TableName: "t", DynamoDBEndpoint: "http://127.0.0.1:8000"}, nil)
	if err != nil {
		t.Fatalf("local endpoint: %v", err)
	}
	if creds, err := a.DynamoDB.Options().Credentials.Retrieve(context.Background()); err != nil || creds.AccessKeyID != "local" {
		t.Errorf("local credentials %+v, %v", creds, err)
	}
}
