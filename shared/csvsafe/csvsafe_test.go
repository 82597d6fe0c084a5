package csvsafe_test

import (
	"bytes"
	"encoding/csv"
	"slices"
	"testing"

	"licenseadmin/shared/csvsafe"
)

// TestCell ensures every cell a spreadsheet would run as a formula or a
// command is neutralised, and that other cells are left exactly as they are.
func TestCell(t *testing.T) {
	cases := map[string]string{
		"":                     "",
		"plain":                "plain",
		"=1+1":                 "'=1+1",
		"+33 6 12 34 56 78":    "'+33 6 12 34 56 78",
		"-2":                   "'-2",
		"@SUM(A1:A2)":          "'@SUM(A1:A2)",
		"\tx":                  "'\tx",
		"\rx":                  "'\rx",
		"＝HYPERLINK(\"x\")":    "'＝HYPERLINK(\"x\")",
		"a=b":                  "a=b",
		"Élodie":               "Élodie",
		"2026-11-23T08:50:00Z": "2026-11-23T08:50:00Z",
		"'already quoted":      "'already quoted",
		"=cmd|' /C calc'!A0":   "'=cmd|' /C calc'!A0",
		"user@example.com":     "user@example.com",
		"0.25":                 "0.25",
	}
	for in, want := range cases {
		if got := csvsafe.Cell(in); got != want {
			t.Errorf("Cell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriter ensures the writer neutralises every cell, quotes as CSV
// requires, ends lines with CRLF, and that a CSV reader gets the cells back.
func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := csvsafe.NewWriter(&b)
	if err := w.Write("a", "=1+2", "x,y"); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("-3", "\"q\"", "ok"); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "a,'=1+2,\"x,y\"\r\n'-3,\"\"\"q\"\"\",ok\r\n"; b.String() != want {
		t.Fatalf("wrote %q, want %q", b.String(), want)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], []string{"a", "'=1+2", "x,y"}) || !slices.Equal(recs[1], []string{"'-3", "\"q\"", "ok"}) {
		t.Fatalf("read back %q", recs)
	}
}
