// Package csvimport reads the CSV file of a bulk user import as a stream:
// one row at a time, never the whole file in memory, from the beginning of
// the file or from any position a previous reader reached, so that an
// import can stop and continue in a fresh Lambda invocation.
//
// It accepts what spreadsheets export: UTF-8 with or without a byte order
// mark, comma or semicolon separated (detected from the header row), quoted
// fields (with doubled quotes, delimiters and line breaks inside), CRLF or
// LF line endings, blank lines anywhere, and header names in any case. A
// row that cannot be read (invalid UTF-8, a stray quote) is reported with a
// row code and reading goes on; a file that cannot be read at all (no
// header, UTF-16, a spreadsheet workbook, a record longer than
// MaxRecordBytes) stops with a *FileError that says why.
package csvimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Column names of the template's header row.
const (
	ColEmail     = "email"
	ColFirstName = "first_name"
	ColLastName  = "last_name"
	ColLanguage  = "language"
	ColLicense   = "license"
)

// Columns is the template's header row, in order. email, first_name and
// last_name are required; language and license may be left out.
var Columns = []string{ColEmail, ColFirstName, ColLastName, ColLanguage, ColLicense}

var required = []string{ColEmail, ColFirstName, ColLastName}

// Template returns the CSV template: the header row, CRLF-terminated as
// RFC 4180 has it, without a byte order mark.
func Template() []byte { return []byte(strings.Join(Columns, ",") + "\r\n") }

// MaxRecordBytes bounds one record (a data row with all its fields, or the
// header row). A longer one means the file is not a users CSV (or has an
// unterminated quote that swallows the rest of it); it fails the file
// rather than filling memory.
const MaxRecordBytes = 64 << 10

// bufferSize is the read buffer; the header row must fit in it.
const bufferSize = 64 << 10

// Row codes: why a row of a readable file cannot be used.
const (
	// CodeBadEncoding: a field is not valid UTF-8 (the file was saved in
	// another encoding, such as Windows-1252).
	CodeBadEncoding = "bad_encoding"
	// CodeMalformedRow: a quote is misplaced (a bare " in an unquoted
	// field, or text after a closing quote).
	CodeMalformedRow = "malformed_row"
	// CodeTooManyFields: the row has non-empty fields beyond the header's
	// columns, usually a delimiter inside an unquoted value.
	CodeTooManyFields = "too_many_fields"
)

// File codes: why a file cannot be read at all (FileError.Code).
const (
	CodeEmptyFile           = "empty_file"
	CodeUnsupportedEncoding = "unsupported_encoding"
	CodeNotCSV              = "not_csv"
	CodeMissingColumn       = "missing_column"
	CodeDuplicateColumn     = "duplicate_column"
	CodeMalformedHeader     = "malformed_header"
	CodeRecordTooLong       = "record_too_long"
)

// FileError means the file cannot be read as a users CSV. Line is where
// reading stopped (1 for the header); the message says what to fix.
type FileError struct {
	Line    int64
	Code    string
	Message string
}

// Error implements error.
func (e *FileError) Error() string {
	return fmt.Sprintf("csvimport: line %d: %s: %s", e.Line, e.Code, e.Message)
}

// Header tells how to read the rows of a file: its delimiter and where each
// known column is. A reader that continues a file needs the header that
// Open read; it is small and JSON-encodable, for a checkpoint.
type Header struct {
	// Comma is the delimiter: "," or ";".
	Comma string `json:"comma"`
	// Columns is how many columns the header row has.
	Columns int `json:"columns"`
	// Index maps each known column present to its position.
	Index map[string]int `json:"index"`
}

// Position is a place between two records of a file: the byte offset of
// the next record and the number of lines before it. A reader resumed at a
// position reads exactly the rows after it, with the same line numbers.
type Position struct {
	Offset int64 `json:"offset"`
	Line   int64 `json:"line"`
}

// Row is one data record of the file. Fields are as written in the file
// (the caller trims and validates them); missing columns are empty.
type Row struct {
	// Line is the line the record starts on; the header row is line 1.
	Line int64
	// End is the position after the record: resuming there reads the
	// rows that follow.
	End Position

	Email     string
	FirstName string
	LastName  string
	Language  string
	License   string

	// Code is a row code (CodeBadEncoding, CodeMalformedRow,
	// CodeTooManyFields) when the record cannot be used, and Message says
	// why; both are empty for a readable row. Fields of such a row are
	// best effort (invalid UTF-8 replaced).
	Code    string
	Message string
}

// Reader reads the rows of one file.
type Reader struct {
	src    *limitedSource
	csv    *csv.Reader
	header Header
	// base is the position the csv reader started at; pos is the
	// position after the last record read (a row, or skipped blanks).
	base, pos Position
	// srcStart is the file offset of the source's first byte.
	srcStart int64
}

// Open reads the header row of a file read from its first byte and returns
// a reader of its rows. It returns a *FileError when the file is not a
// users CSV, and the source's own error when reading fails.
func Open(r io.Reader) (*Reader, error) {
	src := &limitedSource{r: r, limit: MaxRecordBytes + bufferSize}
	br := bufio.NewReaderSize(src, bufferSize)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	var start int64
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		start = 3
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, &FileError{Line: 1, Code: CodeUnsupportedEncoding,
			Message: "the file is UTF-16 (\"Unicode text\"); save it as \"CSV UTF-8 (comma delimited)\" instead"}
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return nil, &FileError{Line: 1, Code: CodeNotCSV,
			Message: "the file is a spreadsheet workbook (.xlsx or .ods), not CSV; save it as \"CSV UTF-8 (comma delimited)\""}
	}
	if _, err := br.Discard(int(start)); err != nil {
		return nil, err
	}
	comma, err := detectComma(br)
	if err != nil {
		return nil, err
	}
	rd := &Reader{src: src, csv: newCSV(br, comma), base: Position{Offset: start}}
	rd.pos = rd.base
	rec, err := rd.csv.Read()
	var perr *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return nil, &FileError{Line: 1, Code: CodeEmptyFile, Message: "the file is empty: it needs the header row " + strings.Join(Columns, ",") + " and one row per user"}
	case errors.Is(err, errRecordTooLong):
		return nil, rd.tooLong(1)
	case errors.As(err, &perr):
		return nil, &FileError{Line: int64(perr.Line), Code: CodeMalformedHeader, Message: "the header row cannot be read: " + perr.Err.Error()}
	case err != nil:
		return nil, err
	}
	if rd.header, err = parseHeader(rec, string(comma)); err != nil {
		return nil, err
	}
	rd.advance(rec)
	return rd, nil
}

// Resume returns a reader of the rows after pos, of a file whose header h
// an earlier Open read; r reads the file from byte pos.Offset on.
func Resume(r io.Reader, h Header, pos Position) *Reader {
	comma, _ := utf8.DecodeRuneInString(h.Comma)
	src := &limitedSource{r: r, limit: MaxRecordBytes + bufferSize}
	br := bufio.NewReaderSize(src, bufferSize)
	return &Reader{src: src, csv: newCSV(br, comma), header: h, base: pos, pos: pos, srcStart: pos.Offset}
}

func newCSV(br *bufio.Reader, comma rune) *csv.Reader {
	c := csv.NewReader(br) // uses br itself: its buffer is large enough
	c.Comma = comma
	c.FieldsPerRecord = -1
	c.ReuseRecord = true
	return c
}

// Header returns the file's header, for a checkpoint.
func (r *Reader) Header() Header { return r.header }

// Position returns the position after the last record read: the header,
// or the last row Next returned (blank records after it excepted).
func (r *Reader) Position() Position { return r.pos }

// Next returns the next data row, skipping blank lines and rows whose
// fields are all blank. It returns io.EOF after the last row, a *FileError
// when the rest of the file cannot be read, and the source's own error when
// reading fails (the reader is then unusable; resume from Position).
func (r *Reader) Next() (*Row, error) {
	for {
		rec, err := r.csv.Read()
		var perr *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		case errors.Is(err, errRecordTooLong):
			return nil, r.tooLong(r.pos.Line + 1)
		case errors.As(err, &perr):
			r.pos = Position{Offset: r.base.Offset + r.csv.InputOffset(), Line: r.base.Line + int64(perr.Line)}
			r.rearm()
			return &Row{
				Line:    r.base.Line + int64(perr.StartLine),
				End:     r.pos,
				Code:    CodeMalformedRow,
				Message: fmt.Sprintf("column %d: %s; a value with a quote must be quoted as a whole, with the quote doubled (\"\")", perr.Column, perr.Err),
			}, nil
		case err != nil:
			return nil, err
		}
		line := r.base.Line + int64(fieldLine(r.csv))
		r.advance(rec)
		if blank(rec) {
			continue
		}
		return r.row(rec, line), nil
	}
}

// advance moves the position past rec, the record just read.
func (r *Reader) advance(rec []string) {
	last := fieldLine(r.csv)
	for _, f := range rec {
		last += strings.Count(f, "\n")
	}
	r.pos = Position{Offset: r.base.Offset + r.csv.InputOffset(), Line: r.base.Line + int64(last)}
	r.rearm()
}

// rearm lets the source deliver one more record's worth of bytes past the
// current position.
func (r *Reader) rearm() {
	r.src.limit = r.pos.Offset - r.srcStart + MaxRecordBytes + bufferSize
}

func (r *Reader) tooLong(line int64) *FileError {
	return &FileError{Line: line, Code: CodeRecordTooLong, Message: fmt.Sprintf(
		"a record is longer than %d KiB: the file is not one user per line (an unterminated quote, or not a CSV file)", MaxRecordBytes>>10)}
}

// fieldLine returns the line (relative to the csv reader's start) of the
// first field of the record just read.
func fieldLine(c *csv.Reader) int {
	line, _ := c.FieldPos(0)
	return line
}

func (r *Reader) row(rec []string, line int64) *Row {
	row := &Row{Line: line, End: r.pos}
	get := func(col string) string {
		i, ok := r.header.Index[col]
		if !ok || i >= len(rec) {
			return ""
		}
		return rec[i]
	}
	row.Email, row.FirstName, row.LastName = get(ColEmail), get(ColFirstName), get(ColLastName)
	row.Language, row.License = get(ColLanguage), get(ColLicense)
	for _, f := range rec {
		if !utf8.ValidString(f) {
			row.Code = CodeBadEncoding
			row.Message = "the row is not valid UTF-8: save the file as \"CSV UTF-8\""
			for _, p := range []*string{&row.Email, &row.FirstName, &row.LastName, &row.Language, &row.License} {
				*p = strings.ToValidUTF8(*p, "\uFFFD")
			}
			return row
		}
	}
	for i := r.header.Columns; i < len(rec); i++ {
		if strings.TrimSpace(rec[i]) != "" {
			row.Code = CodeTooManyFields
			row.Message = fmt.Sprintf("the row has %d fields but the header has %d columns: quote values that contain %q", len(rec), r.header.Columns, r.header.Comma)
			return row
		}
	}
	return row
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// detectComma picks the delimiter from the header row: a semicolon when it
// has more semicolons than commas outside quotes (as spreadsheets export in
// locales whose decimal separator is a comma), a comma otherwise.
func detectComma(br *bufio.Reader) (rune, error) {
	b, err := br.Peek(bufferSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return 0, err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	commas, semis, quoted := 0, 0, false
	for _, c := range b {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ',':
			commas++
		case c == ';':
			semis++
		}
	}
	if semis > commas {
		return ';', nil
	}
	return ',', nil
}

// parseHeader maps the header row's names, compared case-insensitively
// with spaces and hyphens read as underscores (and a few usual aliases such
// as "E-mail" or "Surname"), to column positions.
func parseHeader(rec []string, comma string) (Header, error) {
	h := Header{Comma: comma, Columns: len(rec), Index: map[string]int{}}
	var names []string
	for i, raw := range rec {
		if !utf8.ValidString(raw) {
			return h, &FileError{Line: 1, Code: CodeMalformedHeader, Message: "the header row is not valid UTF-8: save the file as \"CSV UTF-8\""}
		}
		name := normalizeName(raw)
		names = append(names, name)
		if !known(name) {
			continue // extra columns are ignored
		}
		if _, dup := h.Index[name]; dup {
			return h, &FileError{Line: 1, Code: CodeDuplicateColumn, Message: fmt.Sprintf("the header row names the column %s twice", name)}
		}
		h.Index[name] = i
	}
	var missing []string
	for _, c := range required {
		if _, ok := h.Index[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return h, &FileError{Line: 1, Code: CodeMissingColumn, Message: fmt.Sprintf(
			"the header row lacks %s: it must name the columns %s (language and license may be left out); found %q",
			strings.Join(missing, ", "), strings.Join(Columns, ","), strings.Join(names, comma))}
	}
	return h, nil
}

func normalizeName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.NewReplacer(" ", "_", "-", "_").Replace(s)
	if alias, ok := aliases[s]; ok {
		return alias
	}
	return s
}

// aliases are other names spreadsheets give the columns.
var aliases = map[string]string{
	"e_mail":        ColEmail,
	"email_address": ColEmail,
	"firstname":     ColFirstName,
	"given_name":    ColFirstName,
	"lastname":      ColLastName,
	"surname":       ColLastName,
	"family_name":   ColLastName,
	"lang":          ColLanguage,
	"tier":          ColLicense,
}

func known(name string) bool {
	for _, c := range Columns {
		if c == name {
			return true
		}
	}
	return false
}

var errRecordTooLong = errors.New("csvimport: record too long")

// limitedSource delivers at most limit bytes of r, then errRecordTooLong:
// encoding/csv keeps a whole record in memory, so the reader lets it see
// one record's worth past the last record read, and no more.
type limitedSource struct {
	r     io.Reader
	read  int64
	limit int64
}

func (l *limitedSource) Read(p []byte) (int, error) {
	if l.read >= l.limit {
		return 0, errRecordTooLong
	}
	if rest := l.limit - l.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}
