package dynamolocal_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"licenseadmin/infra/dynamolocal"
)

func TestMain(m *testing.M) { os.Exit(dynamolocal.RunTests(m)) }

func item(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

// mustPutGet writes an item and reads it back, failing the test otherwise.
func mustPutGet(tb testing.TB, client *dynamodb.Client, table string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("A#1", "META")}); err != nil {
		tb.Fatal(err)
	}
	out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: item("A#1", "META"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		tb.Fatal(err)
	}
	if got := out.Item["pk"].(*types.AttributeValueMemberS).Value; got != "A#1" {
		tb.Fatalf("got pk %q", got)
	}
}

// TestStartStop ensures a started server answers, gets a table from the
// template with its index and TTL, and is gone (no process left) after Stop.
func TestStartStop(t *testing.T) {
	t.Setenv("DYNAMODB_ENDPOINT", "")
	ctx := context.Background()
	srv, err := dynamolocal.Start(ctx, dynamolocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	client, err := dynamolocal.Client(ctx, srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := dynamolocal.CreateTable(ctx, client, "local-t"); err != nil {
		t.Fatal(err)
	}
	mustPutGet(t, client, "local-t")
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("local-t")})
	if err != nil {
		t.Fatal(err)
	}
	var gsis []string
	for _, g := range desc.Table.GlobalSecondaryIndexes {
		gsis = append(gsis, aws.ToString(g.IndexName))
	}
	sort.Strings(gsis)
	if want := []string{"gsi1"}; !slices.Equal(gsis, want) {
		t.Errorf("GSIs = %v, want %v", gsis, want)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String("local-t")})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "ttl" {
		t.Errorf("TTL = %+v, want attribute ttl", d)
	}
	if err := dynamolocal.CreateTable(ctx, client, "local-t"); err == nil {
		t.Error("creating an existing table: want an error")
	}

	port := srv.Endpoint[strings.LastIndex(srv.Endpoint, ":")+1:]
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		conn.Close()
		t.Errorf("port %s still answers after Stop", port)
	}
}

// TestDataDir ensures a database started in a data directory keeps its
// tables and items when started again there, and that one in memory does
// not.
func TestDataDir(t *testing.T) {
	t.Setenv("DYNAMODB_ENDPOINT", "")
	ctx := context.Background()
	dir := t.TempDir()
	tables := func(opts dynamolocal.Options, create bool) []string {
		t.Helper()
		srv, err := dynamolocal.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		client, err := dynamolocal.Client(ctx, srv.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if create {
			if err := dynamolocal.CreateTable(ctx, client, "kept"); err != nil {
				t.Fatal(err)
			}
			if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("kept"), Item: item("A#1", "META")}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err != nil {
			t.Fatal(err)
		}
		if create || len(out.TableNames) == 0 {
			return out.TableNames
		}
		got, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("kept"), Key: item("A#1", "META"), ConsistentRead: aws.Bool(true)})
		if err != nil || got.Item == nil {
			t.Fatalf("the item did not survive the restart: %v", err)
		}
		return out.TableNames
	}
	tables(dynamolocal.Options{DataDir: dir}, true)
	if got := tables(dynamolocal.Options{DataDir: dir}, false); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("tables after a restart in %s: %v, want kept", dir, got)
	}
	if got := tables(dynamolocal.Options{}, false); len(got) != 0 {
		t.Fatalf("a database in memory starts with tables %v", got)
	}
}

// TestStartErrors ensures missing prerequisites and a taken port give a
// message that says what to do, and that DYNAMODB_ENDPOINT starts nothing.
func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		env     map[string]string
		opts    dynamolocal.Options
		wantIs  error
		wantMsg string
	}{
		{name: "no jar", opts: dynamolocal.Options{Dir: t.TempDir()}, wantIs: dynamolocal.ErrJarMissing, wantMsg: "npm ci --prefix infra"},
		{name: "no java", env: map[string]string{"PATH": t.TempDir()}, wantIs: dynamolocal.ErrJavaMissing, wantMsg: "Java 17"},
		{name: "port in use", opts: dynamolocal.Options{Port: busyPort}, wantMsg: "port " + strconv.Itoa(busyPort) + " is in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DYNAMODB_ENDPOINT", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			srv, err := dynamolocal.Start(context.Background(), tt.opts)
			if err == nil {
				_ = srv.Stop()
				t.Fatal("Start succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}

	t.Run("external endpoint", func(t *testing.T) {
		t.Setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:1")
		srv, err := dynamolocal.Start(context.Background(), dynamolocal.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if srv.Endpoint != "http://127.0.0.1:1" {
			t.Errorf("Endpoint = %q", srv.Endpoint)
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// TestNewTable ensures each call gets its own usable table, that optFns
// reach the returned client (here a middleware counting requests), and that
// the table is deleted when the test ends.
func TestNewTable(t *testing.T) {
	var first, second string
	var admin *dynamodb.Client
	t.Run("use", func(t *testing.T) {
		calls := 0
		count := func(o *dynamodb.Options) {
			o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
				return s.Initialize.Add(middleware.InitializeMiddlewareFunc("count",
					func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
						calls++
						return next.HandleInitialize(ctx, in)
					}), middleware.Before)
			})
		}
		var client *dynamodb.Client
		client, first = dynamolocal.NewTable(t, count)
		admin, second = dynamolocal.NewTable(t)
		if first == second {
			t.Fatalf("two calls returned the same table %q", first)
		}
		mustPutGet(t, client, first)
		if calls != 2 {
			t.Errorf("middleware saw %d calls, want 2", calls)
		}
	})
	for _, table := range []string{first, second} {
		_, err := admin.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var notFound *types.ResourceNotFoundException
		if !errors.As(err, &notFound) {
			t.Errorf("table %s after the test: got %v, want ResourceNotFoundException", table, err)
		}
	}
}

// TestEnsureTable ensures the local stack's start-up creates its table once
// and leaves it alone afterwards.
func TestEnsureTable(t *testing.T) {
	client, _ := dynamolocal.NewTable(t)
	ctx := context.Background()
	name := "ensure-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	for i, want := range []bool{true, false} {
		created, err := dynamolocal.EnsureTable(ctx, client, name)
		if err != nil {
			t.Fatal(err)
		}
		if created != want {
			t.Errorf("call %d: created = %v, want %v", i+1, created, want)
		}
	}
}

// TestModuleRoot ensures the repository root is found from a subdirectory.
func TestModuleRoot(t *testing.T) {
	root, err := dynamolocal.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Errorf("ModuleRoot = %s: %v", root, err)
	}
	if _, err := dynamolocal.ModuleRoot("/"); err == nil {
		t.Error("ModuleRoot(/): want an error")
	}
}
