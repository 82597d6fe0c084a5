package licadmin

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// MaxSearchLength bounds the text of a user search, in characters: longer
// than any name (MaxNameLength in package user is 100), and short enough
// that a folded prefix always fits in an index key.
const MaxSearchLength = 100

// SearchKey folds s into the form users are searched by, so that a search
// is insensitive to case and accents: the compatibility decomposition of s
// (NFKD) without its combining marks, lower-cased, with the letters that
// do not decompose spelled as they are typed on a plain keyboard (ß as ss,
// æ as ae, ø as o…), runs of white space as one space, trimmed. The store
// keeps the key of each user's email, first name and last name on the user
// item and finds users by a prefix of it; a search text is folded the same
// way. "Jöhn  DOE" and "john doe" fold alike.
func SearchKey(s string) string {
	var b strings.Builder
	space := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		r = unicode.ToLower(r)
		if spelled, ok := searchSpelling[r]; ok {
			b.WriteString(spelled)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// searchSpelling spells the lower-case letters that NFKD does not split
// into a base letter and a mark.
var searchSpelling = map[rune]string{
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d",
	'þ': "th", 'ı': "i", 'ħ': "h", 'ŧ': "t", 'ŀ': "l", 'ĸ': "k",
}
