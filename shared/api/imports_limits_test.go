package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"licenseadmin/shared/importer"
	"licenseadmin/shared/licadmin"
)

// TestImportMissingFile ensures an upload that is gone when the import
// reads it (deleted, or expired by the bucket's lifecycle rule before a
// late retry) ends the import failed with file_missing: the invocation
// succeeds, so Lambda does not retry it into the failure queue with the
// import left running.
func TestImportMissingFile(t *testing.T) {
	f := newImportFixture(t)
	up := f.newImport(t, f.admin, false)
	put(t, up, "email,first_name,last_name\ngone@acme.test,G,G\n")
	events := f.S3.Uploads(t, 1)
	key := importer.ImportKey(f.acct, up.ImportID)
	if _, err := f.S3.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(f.S3.Bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Deliver(events[0]); err != nil {
		t.Fatalf("the invocation failed (Lambda would retry it): %v", err)
	}
	imp := f.status(t, f.admin, up.ImportID)
	if imp.Status != licadmin.ImportFailed || imp.Error == nil || imp.Error.Code != importer.CodeFileMissing || imp.Created != 0 {
		t.Fatalf("import %+v (error %+v), want failed with %s", imp, imp.Error, importer.CodeFileMissing)
	}
}

// TestImportHugeGarbageRows ensures rows whose fields are as large as a
// record may be (64 KiB) fail one by one with report rows of a bounded
// size, instead of making a chunk's transaction exceed DynamoDB's 4 MB
// and the import retry forever: the import ends done.
func TestImportHugeGarbageRows(t *testing.T) {
	f := newImportFixture(t)
	const rows = 120
	var b strings.Builder
	b.WriteString("email,first_name,last_name,language\n")
	garbage := strings.Repeat("\u00e9x", 15_000) // 45,000 bytes
	for i := range rows {
		if i%2 == 0 {
			fmt.Fprintf(&b, "%s%d,F,L,en\n", garbage, i) // an email field of garbage
		} else {
			fmt.Fprintf(&b, "u%d@acme.test,F,L,%s\n", i, garbage) // a language of garbage, quoted in the message
		}
	}
	imp := f.importCSV(t, b.String(), false)
	if imp.Status != licadmin.ImportDone || imp.Failed != rows || imp.Created != 0 {
		t.Fatalf("import %+v (error %+v), want done with %d failed rows", imp, imp.Error, rows)
	}
	recs := report(t, imp)
	if len(recs) != rows+1 {
		t.Fatalf("%d report rows, want %d", len(recs)-1, rows)
	}
	for _, r := range recs[1:] {
		if len(r[1]) > licadmin.MaxReportEmailBytes || len(r[3]) > licadmin.MaxReportMessageBytes {
			t.Fatalf("report row of line %s: email %d bytes, message %d bytes; want at most %d and %d",
				r[0], len(r[1]), len(r[3]), licadmin.MaxReportEmailBytes, licadmin.MaxReportMessageBytes)
		}
	}
}
