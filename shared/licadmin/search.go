package licadmin

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxSearchLength bounds the text of a user search, in characters: longer
// than any name (MaxNameLength in package user is 100).
const MaxSearchLength = 100

// MaxSearchKeyBytes bounds a folded key, in bytes. A name of 100
// characters can fold to far more (NFKD spells some one-character
// ligatures as whole phrases: U+FDFA is 18 letters and spaces), while an
// index entry's sort key (the folded key, its field and the user id) must
// fit DynamoDB's 1,024 bytes, or the entry cannot be written at all.
// SearchKey cuts there, on a character boundary, the name's key and the
// search text's alike: a search still finds every user whose key it
// starts, and finds more only when two folded keys share their first
// MaxSearchKeyBytes bytes.
const MaxSearchKeyBytes = 512

// SearchKey folds s into the form users are searched by, so that a search
// is insensitive to case and accents: the compatibility decomposition of s
// (NFKD) without its combining marks, lower-cased, with the letters that
// do not decompose spelled as they are typed on a plain keyboard (ß as ss,
// æ as ae, ø as o…), runs of white space as one space, trimmed. The store
// keeps the key of each user's email, first name and last name on the user
// item and finds users by a prefix of it; a search text is folded the same
// way. "Jöhn  DOE" and "john doe" fold alike. A key is at most
// MaxSearchKeyBytes long.
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
	key := b.String()
	if len(key) <= MaxSearchKeyBytes {
		return key
	}
	cut := MaxSearchKeyBytes
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return strings.TrimRight(key[:cut], " ")
}

// searchSpelling spells the lower-case letters that NFKD does not split
// into a base letter and a mark.
var searchSpelling = map[rune]string{
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d",
	'þ': "th", 'ı': "i", 'ħ': "h", 'ŧ': "t", 'ŀ': "l", 'ĸ': "k",
}
