// Package csvsafe writes CSV files meant to be opened in spreadsheets
// without letting their data run as formulas (CSV injection): a cell that a
// spreadsheet would read as a formula or a command is prefixed with a
// single quote, which spreadsheets show as text and which changes nothing
// for the person reading it.
package csvsafe

import (
	"encoding/csv"
	"io"
	"strings"
	"unicode/utf8"
)

// BOM is the UTF-8 byte order mark. Written first, it makes spreadsheets
// read the file as UTF-8 (names with accents stay readable); CSV readers
// that do not expect it must strip it.
const BOM = "\uFEFF"

// triggers are the first characters that make a spreadsheet interpret a
// cell: formulas (=, +, -, @), their full-width forms that some locales
// accept, and the tab and carriage return that split or shift cells.
const triggers = "=+-@\t\r\uFF1D\uFF0B\uFF0D\uFF20"

// Cell returns s, prefixed with ' when its first character could start a
// formula or a command in a spreadsheet.
func Cell(s string) string {
	if r, _ := utf8.DecodeRuneInString(s); s != "" && strings.ContainsRune(triggers, r) {
		return "'" + s
	}
	return s
}

// Writer writes CSV records whose every cell goes through Cell.
type Writer struct {
	w   *csv.Writer
	buf []string
}

// NewWriter returns a Writer to w, with comma separators and CRLF line
// ends (RFC 4180, what spreadsheets expect).
func NewWriter(w io.Writer) *Writer {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	return &Writer{w: cw}
}

// Write writes one record, neutralising each cell.
func (w *Writer) Write(record ...string) error {
	w.buf = w.buf[:0]
	for _, c := range record {
		w.buf = append(w.buf, Cell(c))
	}
	return w.w.Write(w.buf)
}

// Flush writes buffered data to the underlying writer and returns any
// error of this or an earlier write.
func (w *Writer) Flush() error {
	w.w.Flush()
	return w.w.Error()
}
