package licadmin

// BulkAction is what a bulk license change does to each of its users.
type BulkAction string

// The bulk actions: the single license operations, for many users at once.
const (
	BulkAssign BulkAction = "assign"
	BulkModify BulkAction = "modify"
	BulkRemove BulkAction = "remove"
)

// MaxBulkUsers is the most users one bulk license change names. The change
// is one DynamoDB transaction, of at most 100 items: the idempotency
// record, the pool and the audit record, then each user's item: 3 + 96 =
// 99. The spare item was the caller's admin check until license changes
// stopped carrying it (store, license.go); the limit stayed where clients
// know it. (Confirmation emails are queued from the table's stream,
// outside the transaction.)
const MaxBulkUsers = 96

// Users is the answer of a bulk license change: the users as committed,
// in the order the request named them.
type Users struct {
	Items []*User `json:"items"`
}
