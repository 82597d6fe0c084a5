package dynamolocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// shared is the one DynamoDB Local of a test binary, started on first use
// by NewTable and stopped by RunTests.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

func sharedServer() (*Server, error) {
	shared.once.Do(func() {
		dir, err := os.Getwd()
		if err == nil {
			dir, err = ModuleRoot(dir)
		}
		if err != nil {
			shared.err = fmt.Errorf("dynamolocal: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout+10*time.Second)
		defer cancel()
		shared.srv, shared.err = Start(ctx, Options{Dir: dir})
	})
	return shared.srv, shared.err
}

// RunTests runs the tests of a package and then stops the DynamoDB Local
// that NewTable started, if any; call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dynamolocal.RunTests(m)) }
//
// Without it the server still dies with the test binary (on Linux), but
// RunTests ends it cleanly.
func RunTests(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}

// NewTable returns a client and the name of a fresh table created from
// template.yaml on the test binary's shared DynamoDB Local (started on first
// use; DYNAMODB_ENDPOINT overrides it), and deletes the table when the test
// ends. optFns configure the returned client only (test middleware such as
// fault injection); the table is created and deleted with a plain client.
// It fails the test, with the reason, when DynamoDB Local cannot start.
func NewTable(tb testing.TB, optFns ...func(*dynamodb.Options)) (client *dynamodb.Client, table string) {
	tb.Helper()
	srv, err := sharedServer()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := Client(ctx, srv.Endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	table = "test-" + randomHex(8)
	if err := CreateTable(ctx, admin, table); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			tb.Errorf("delete table %s: %v", table, err)
		}
	})
	client, err = Client(ctx, srv.Endpoint, optFns...)
	if err != nil {
		tb.Fatal(err)
	}
	return client, table
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
