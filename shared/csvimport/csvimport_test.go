package csvimport_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"licenseadmin/shared/csvimport"
)

// readAll opens data and returns every row, or the error that stopped it.
func readAll(tb testing.TB, data string) ([]csvimport.Row, error) {
	tb.Helper()
	r, err := csvimport.Open(strings.NewReader(data))
	if err != nil {
		return nil, err
	}
	return drain(r)
}

func drain(r *csvimport.Reader) ([]csvimport.Row, error) {
	var rows []csvimport.Row
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, *row)
	}
}

// short is a row's fields and line, for comparisons.
type short struct {
	Line                                          int64
	Email, FirstName, LastName, Language, License string
	Code                                          string
}

func shorten(rows []csvimport.Row) []short {
	out := make([]short, 0, len(rows))
	for _, r := range rows {
		out = append(out, short{r.Line, r.Email, r.FirstName, r.LastName, r.Language, r.License, r.Code})
	}
	return out
}

// TestTemplateRoundTrip ensures the template is a header the reader
// accepts, with no rows, and that rows appended to it are read back.
func TestTemplateRoundTrip(t *testing.T) {
	tpl := string(csvimport.Template())
	if tpl != "email,first_name,last_name,language,license\r\n" {
		t.Fatalf("template %q", tpl)
	}
	rows, err := readAll(t, tpl)
	if err != nil || len(rows) != 0 {
		t.Fatalf("template alone: rows %v, err %v", rows, err)
	}
	rows, err = readAll(t, tpl+"ada@acme.test,Ada,Lovelace,en,pro\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []short{{2, "ada@acme.test", "Ada", "Lovelace", "en", "pro", ""}}
	if got := shorten(rows); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
}

// TestFormats ensures what spreadsheets export is read the same way:
// BOM or not, comma or semicolon, quoted fields holding delimiters, quotes
// and line breaks, CRLF, blank lines, header names in any case and order,
// optional and extra columns; line numbers are the file's own.
func TestFormats(t *testing.T) {
	ada := short{2, "ada@acme.test", "Ada", "Lovelace", "en", "pro", ""}
	cases := []struct {
		name string
		data string
		want []short
	}{
		{"plain", "email,first_name,last_name,language,license\nada@acme.test,Ada,Lovelace,en,pro\n", []short{ada}},
		{"BOM", "\ufeffemail,first_name,last_name,language,license\nada@acme.test,Ada,Lovelace,en,pro\n", []short{ada}},
		{"semicolon", "email;first_name;last_name;language;license\r\nada@acme.test;Ada;Lovelace;en;pro\r\n", []short{ada}},
		{"BOM semicolon CRLF no final newline", "\ufeffEMAIL;First_Name;LAST_NAME;Language;License\r\nada@acme.test;Ada;Lovelace;en;pro", []short{ada}},
		{"semicolon with commas in values", "email;first_name;last_name\nada@acme.test;Ada, Countess;Lovelace\n",
			[]short{{2, "ada@acme.test", "Ada, Countess", "Lovelace", "", "", ""}}},
		{"quoted fields", "email,first_name,last_name\n\"ada@acme.test\",\"Ada, \"\"the\"\" Countess\",\"Love\nlace\"\nbob@acme.test,Bob,Ross\n",
			[]short{{2, "ada@acme.test", "Ada, \"the\" Countess", "Love\nlace", "", "", ""}, {4, "bob@acme.test", "Bob", "Ross", "", "", ""}}},
		{"quoted CRLF inside a field", "email,first_name,last_name\r\nada@acme.test,\"A\r\nda\",L\r\nbob@acme.test,Bob,Ross\r\n",
			[]short{{2, "ada@acme.test", "A\nda", "L", "", "", ""}, {4, "bob@acme.test", "Bob", "Ross", "", "", ""}}},
		{"blank lines and blank rows", "\nemail,first_name,last_name\n\n\r\n,,\n  ,  \nada@acme.test,Ada,Lovelace\n\n",
			[]short{{7, "ada@acme.test", "Ada", "Lovelace", "", "", ""}}},
		{"header in another order with spaces", "Last Name , E-mail,first name\nLovelace,ada@acme.test,Ada\n",
			[]short{{2, "ada@acme.test", "Ada", "Lovelace", "", "", ""}}},
		{"extra columns ignored", "id,email,first_name,last_name,notes\n7,ada@acme.test,Ada,Lovelace,likes maths\n",
			[]short{{2, "ada@acme.test", "Ada", "Lovelace", "", "", ""}}},
		{"short row", "email,first_name,last_name,language,license\nada@acme.test,Ada\n",
			[]short{{2, "ada@acme.test", "Ada", "", "", "", ""}}},
		{"trailing empty fields", "email,first_name,last_name\nada@acme.test,Ada,Lovelace,,,\n",
			[]short{{2, "ada@acme.test", "Ada", "Lovelace", "", "", ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := readAll(t, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := shorten(rows); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("rows\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestRowCodes ensures a row that cannot be used is reported with its line
// and code, and the rows after it are still read.
func TestRowCodes(t *testing.T) {
	data := "email,first_name,last_name\n" +
		"ada@acme.test,Ad\xe9le,Lovelace\n" + // Latin-1 é
		"bob@acme.test,Bo\"b,Ross\n" + // bare quote
		"cy@acme.test,Cy,\"Young\"x\n" + // text after a closing quote
		"dan@acme.test,Dan,Brown,extra\n" +
		"eve@acme.test,Eve,Smith\n"
	rows, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%d:%s:%s", r.Line, r.Email, r.Code))
		if r.Code != "" && r.Message == "" {
			t.Errorf("line %d: code %s without a message", r.Line, r.Code)
		}
	}
	want := []string{"2:ada@acme.test:bad_encoding", "3::malformed_row", "4::malformed_row", "5:dan@acme.test:too_many_fields", "6:eve@acme.test:"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if rows[0].FirstName != "Ad\uFFFDle" {
		t.Errorf("invalid UTF-8 kept as %q, want it replaced", rows[0].FirstName)
	}
}

// TestFileErrors ensures a file that is not a users CSV stops with a
// *FileError naming the line and a code, never a panic or a huge read.
func TestFileErrors(t *testing.T) {
	huge := "email,first_name,last_name\nada@acme.test,\"Ada,Lovelace\n" + strings.Repeat("x,y,z\n", 30000)
	cases := []struct {
		name string
		data string
		code string
		line int64
	}{
		{"empty", "", csvimport.CodeEmptyFile, 1},
		{"only blank lines", "\n\r\n\n", csvimport.CodeEmptyFile, 1},
		{"UTF-16", "\xff\xfee\x00m\x00", csvimport.CodeUnsupportedEncoding, 1},
		{"xlsx", "PK\x03\x04rest of a zip", csvimport.CodeNotCSV, 1},
		{"missing column", "email,name\nada@acme.test,Ada\n", csvimport.CodeMissingColumn, 1},
		{"duplicate column", "email,first_name,last_name,Email\n", csvimport.CodeDuplicateColumn, 1},
		{"header not UTF-8", "email,first_name,last_name,pr\xe9nom\n", csvimport.CodeMalformedHeader, 1},
		{"header too long", strings.Repeat("x", 200<<10), csvimport.CodeRecordTooLong, 1},
		{"unterminated quote", huge, csvimport.CodeRecordTooLong, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, c.data)
			var fe *csvimport.FileError
			if !errors.As(err, &fe) || fe.Code != c.code || fe.Line != c.line || fe.Message == "" {
				t.Fatalf("err %v, want a FileError %s at line %d", err, c.code, c.line)
			}
		})
	}
}

// TestResume ensures that a reader resumed at the position after any row
// reads exactly the rows the first reader read after it, line numbers
// included: the contract a checkpoint relies on.
func TestResume(t *testing.T) {
	data := "\ufeffemail;first_name;last_name;license\r\n" +
		"a@acme.test;A;\"Multi\r\nline\";eco\r\n\r\n" +
		"b@acme.test;B\xff;B;pro\r\n" +
		"c@acme.test;C\"x;C;\r\n" +
		" ; ; ; \r\n" +
		"d@acme.test;D;D;advanced"
	wantResume(t, []byte(data))
}

// wantResume checks the resume contract on data (which must open).
func wantResume(t testing.TB, data []byte) {
	r, err := csvimport.Open(bytes.NewReader(data))
	if err != nil {
		return
	}
	h := r.Header()
	all, err := drain(r)
	if err != nil {
		return
	}
	// Every row's position is checked; resuming is tried after at most 20
	// rows spread over the file, so that large inputs stay fast.
	step := max(1, len(all)/20)
	for i := range all {
		end := all[i].End
		if end.Offset < 0 || end.Offset > int64(len(data)) {
			t.Fatalf("row %d ends at offset %d, outside the file (%d bytes)", i, end.Offset, len(data))
		}
		if i > 0 && (all[i].Line <= all[i-1].Line || end.Offset < all[i-1].End.Offset) {
			t.Fatalf("row %d (line %d, end %+v) does not follow row %d (line %d, end %+v)", i, all[i].Line, end, i-1, all[i-1].Line, all[i-1].End)
		}
		if i%step != 0 && i != len(all)-1 {
			continue
		}
		rest, err := drain(csvimport.Resume(bytes.NewReader(data[end.Offset:]), h, end))
		if err != nil {
			t.Fatalf("resume after row %d: %v", i, err)
		}
		if want := all[i+1:]; !reflect.DeepEqual(rest, want) && !(len(rest) == 0 && len(want) == 0) {
			t.Fatalf("resumed after row %d (%+v):\n got %+v\nwant %+v", i, end, rest, want)
		}
	}
}

// FuzzReader ensures that no input makes the reader panic or loop, that
// rows come in file order with positions inside the file, and that
// resuming after any row reads the same rest. Run briefly in CI:
//
//	go test -run='^$' -fuzz=FuzzReader -fuzztime=20s ./shared/csvimport
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		string(csvimport.Template()),
		"email,first_name,last_name,language,license\nada@acme.test,Ada,Lovelace,en,pro\n",
		"\ufeffemail;first_name;last_name\r\n\"a@b.c\";\"x\"\"y\";\"multi\r\nline\"\r\n\r\n;;\r\n",
		"email,first_name,last_name\na,\"unterminated\n",
		"email,first_name,last_name\na,b\"c,d\n\xff\xfe,x,y\n",
		"E-Mail , First Name,last-name\n1,2,3,4,5\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wantResume(t, data)
	})
}

// generator is an io.Reader of a users CSV with n rows, made on the fly.
type generator struct {
	n, i int
	buf  []byte
}

func (g *generator) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.n {
		if g.i == 0 {
			g.buf = append(g.buf, "email;first_name;last_name;language;license\r\n"...)
		} else {
			g.buf = fmt.Appendf(g.buf, "user%07d@acme.test;\"First %d\";Last;fr;eco\r\n", g.i, g.i)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

// TestMemoryFlat ensures parsing is streamed: 200,000 rows read from a
// generator (no file, no buffer of the whole input) allocate a bounded
// number of bytes per row, and the live heap does not grow with the rows
// read.
func TestMemoryFlat(t *testing.T) {
	const rows = 200_000
	r, err := csvimport.Open(&generator{n: rows})
	if err != nil {
		t.Fatal(err)
	}
	var before, mid, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.Code != "" || row.Email == "" {
			t.Fatalf("row %+v", row)
		}
		n++
		if n == rows/4 {
			runtime.GC()
			runtime.ReadMemStats(&mid)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n != rows {
		t.Fatalf("read %d rows, want %d", n, rows)
	}
	perRow := (after.TotalAlloc - before.TotalAlloc) / rows
	t.Logf("%d bytes allocated per row; live heap %d KiB after %d rows, %d KiB after %d", perRow, mid.HeapAlloc>>10, rows/4, after.HeapAlloc>>10, rows)
	if perRow > 512 {
		t.Errorf("%d bytes allocated per row, want at most 512", perRow)
	}
	if growth := int64(after.HeapAlloc) - int64(mid.HeapAlloc); growth > 1<<20 {
		t.Errorf("live heap grew by %d KiB over %d rows: the reader keeps rows", growth>>10, rows*3/4)
	}
}
