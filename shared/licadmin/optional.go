package licadmin

import (
	"bytes"
	"encoding/json"
)

// Optional is a field of a partial update (PATCH): it tells a field that was
// left out (Set false) from one sent as null (Set and Null) and one sent
// with a value. Nested objects are decoded as strictly as the request body:
// unknown fields are refused.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON implements json.Unmarshaler; encoding/json calls it for
// every field present in the input, null included.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&o.Value)
}

// Has reports whether the field was sent with a value (not left out, not null).
func (o Optional[T]) Has() bool { return o.Set && !o.Null }
