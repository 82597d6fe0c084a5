package store

// DynamoDB's limits on key attributes: a partition key of at most 2048
// bytes and a sort key of at most 1024, neither empty. A key beyond them
// can name no item, and asking for it fails the whole request with a
// ValidationException; so reads treat it as absent, and an id too long
// answers 404 like any unknown id instead of 500.
const (
	maxPartitionKeyBytes = 2048
	maxSortKeyBytes      = 1024
)

// keyFits reports whether k can name an item of the table.
func keyFits(k key) bool {
	pk, sk := getS(k, attrPK), getS(k, attrSK)
	return pk != "" && sk != "" && len(pk) <= maxPartitionKeyBytes && len(sk) <= maxSortKeyBytes
}
