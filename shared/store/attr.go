package store

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// Item is a raw DynamoDB item.
type Item = map[string]types.AttributeValue

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func boolean(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }

func bin(b []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: b} }

// strMap is a map attribute of strings (audit details, replayed headers).
func strMap(m map[string]string) types.AttributeValue {
	av := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		av[k] = str(v)
	}
	return &types.AttributeValueMemberM{Value: av}
}

// strMapValue reads a map attribute of strings; nil when av is not a map.
func strMapValue(av types.AttributeValue) map[string]string {
	m, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m.Value))
	for k := range m.Value {
		out[k] = getS(m.Value, k)
	}
	return out
}

func timestamp(t time.Time) types.AttributeValue { return str(formatTime(t)) }

// formatTime renders times as RFC 3339 UTC with fixed-width nanoseconds,
// so that they sort as strings in sort keys.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") }

func getS(it Item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(it Item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getBool(it Item, name string) bool {
	v, ok := it[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

func getB(it Item, name string) []byte {
	if v, ok := it[name].(*types.AttributeValueMemberB); ok {
		return v.Value
	}
	return nil
}

func getTime(it Item, name string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, getS(it, name))
	return t.UTC()
}

func getOptS(it Item, name string) *string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		s := v.Value
		return &s
	}
	return nil
}

// emailClaim is the item that makes u's email address u's alone
// (docs/api.md, rule 3), with what signing in needs: the user's account,
// id and role.
func emailClaim(u *licadmin.User) Item {
	claim := emailKey(u.Email)
	claim["accountId"] = str(u.AccountID)
	claim["userId"] = str(u.ID)
	claim["role"] = str(string(u.Role))
	return claim
}

// userItem encodes u as its table item.
func userItem(u *licadmin.User) Item {
	it := Item{
		attrPK:             str(userPK(u.ID)),
		attrSK:             str(skUser),
		attrGSI1PK:         str(usersGSI1PK(u.AccountID)),
		attrGSI1SK:         str(u.ID),
		"id":               str(u.ID),
		"accountId":        str(u.AccountID),
		"email":            str(u.Email),
		"firstName":        str(u.FirstName),
		"lastName":         str(u.LastName),
		"language":         str(u.Language),
		"role":             str(string(u.Role)),
		"status":           str(string(u.Status)),
		"portal2fa":        boolean(u.Security.Portal2FA),
		"protectedReplies": str(u.Security.ProtectedReplies),
		"createdAt":        timestamp(u.CreatedAt),
		"updatedAt":        timestamp(u.UpdatedAt),
		"version":          num(u.Version),
		"logGen":           num(u.LogGeneration),
	}
	if u.License != nil {
		it["tier"] = str(string(u.License.Tier))
		it["assignedAt"] = timestamp(u.License.AssignedAt)
	}
	if !u.LogSince.IsZero() {
		it["logSince"] = timestamp(u.LogSince)
	}
	if u.Mobile != nil {
		it["mobile"] = str(*u.Mobile)
	}
	if u.TimeZone != nil {
		it["timeZone"] = str(*u.TimeZone)
	}
	return it
}

// decodeUser decodes a user item; it returns nil for a nil or non-user item.
func decodeUser(it Item) *licadmin.User {
	if it == nil || !isUserPK(getS(it, attrPK)) {
		return nil
	}
	return userFromItem(it)
}

// userFromItem decodes the user attributes of a user item (of the table or
// of GSI1).
func userFromItem(it Item) *licadmin.User {
	u := &licadmin.User{
		ID:        getS(it, "id"),
		AccountID: getS(it, "accountId"),
		Email:     getS(it, "email"),
		FirstName: getS(it, "firstName"),
		LastName:  getS(it, "lastName"),
		Language:  getS(it, "language"),
		Role:      licadmin.Role(getS(it, "role")),
		Status:    licadmin.Status(getS(it, "status")),
		Mobile:    getOptS(it, "mobile"),
		TimeZone:  getOptS(it, "timeZone"),
		Security: licadmin.Security{
			Portal2FA:        getBool(it, "portal2fa"),
			ProtectedReplies: getS(it, "protectedReplies"),
		},
		CreatedAt:     getTime(it, "createdAt"),
		UpdatedAt:     getTime(it, "updatedAt"),
		Version:       getN(it, "version"),
		LogGeneration: getN(it, "logGen"),
		LogSince:      getTime(it, "logSince"),
	}
	if t := getS(it, "tier"); t != "" {
		u.License = &licadmin.License{Tier: licadmin.Tier(t), AssignedAt: getTime(it, "assignedAt")}
	}
	return u
}

// decodePool decodes the pool item; a missing item is an empty pool.
func decodePool(it Item) *licadmin.Pool {
	p := &licadmin.Pool{Tiers: make([]licadmin.TierPool, 0, len(licadmin.Tiers))}
	for _, t := range licadmin.Tiers {
		p.Tiers = append(p.Tiers, licadmin.TierPool{
			Tier:           t,
			Purchased:      getN(it, purchasedAttr(t)),
			Assigned:       getN(it, assignedAttr(t)),
			Available:      getN(it, availableAttr(t)),
			AlertThreshold: getN(it, alertAttr(t)),
		})
	}
	return p
}
