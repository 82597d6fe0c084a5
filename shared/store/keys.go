package store

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"licenseadmin/shared/licadmin"
)

// The single-table design, in one place. Every item has a partition key "pk"
// and a sort key "sk"; users also carry "gsi1pk"/"gsi1sk" so that an
// account's users can be listed in creation order. Items that expire carry
// "ttl" (epoch seconds), the table's TTL attribute.
//
//	item                 pk                        sk                          notes
//	account              ACCT#<accountId>          ACCOUNT                     name, adminCount
//	license pool         ACCT#<accountId>          POOL                        purchased_/assigned_/available_/alert_<tier>
//	purchase order       ACCT#<accountId>          ORDER#<orderId>             makes "add licenses" idempotent
//	account domain       ACCT#<accountId>          DOMAIN#<domain>             status, txtRecord
//	audit record         ACCT#<accountId>          AUDIT#<time>#<id>           actor, action, target, ip, requestId
//	user                 USER#<userId>             USER                        gsi1pk=ACCT#<accountId>#USERS, gsi1sk=<userId>
//	email claim          EMAIL#<email>             EMAIL                       accountId, userId, role: one email, one user
//	domain claim         DOMAIN#<domain>           DOMAIN                      accountId, status: one domain, one account
//	idempotency record   IDEM#<email>#<key>        IDEM                        request hash and response, ttl 24 h
//	setting              CONFIG                    <name>                      e.g. the cursor signing key
//
// User items are keyed by user id alone so that the caller's email claim and
// the users a request names are read in one BatchGetItem; the account a user
// belongs to is an attribute checked on every read and in every write
// condition (SPEC rule 4).
const (
	attrPK     = "pk"
	attrSK     = "sk"
	attrGSI1PK = "gsi1pk"
	attrGSI1SK = "gsi1sk"
	attrTTL    = "ttl"

	// GSI1 is the index that lists an account's users.
	GSI1 = "gsi1"

	skAccount = "ACCOUNT"
	skPool    = "POOL"
	skUser    = "USER"
	skEmail   = "EMAIL"
	skDomain  = "DOMAIN"
	skIdem    = "IDEM"
)

type key = map[string]types.AttributeValue

func mkKey(pk, sk string) key {
	return key{attrPK: str(pk), attrSK: str(sk)}
}

func accountPK(accountID string) string { return "ACCT#" + accountID }

func accountKey(accountID string) key { return mkKey(accountPK(accountID), skAccount) }

func poolKey(accountID string) key { return mkKey(accountPK(accountID), skPool) }

func orderKey(accountID, orderID string) key {
	return mkKey(accountPK(accountID), "ORDER#"+orderID)
}

func accountDomainKey(accountID, domain string) key {
	return mkKey(accountPK(accountID), "DOMAIN#"+domain)
}

func auditKey(accountID, at, id string) key {
	return mkKey(accountPK(accountID), "AUDIT#"+at+"#"+id)
}

func userPK(userID string) string { return "USER#" + userID }

func userKey(userID string) key { return mkKey(userPK(userID), skUser) }

func usersGSI1PK(accountID string) string { return "ACCT#" + accountID + "#USERS" }

func emailKey(email string) key { return mkKey("EMAIL#"+email, skEmail) }

func domainKey(domain string) key { return mkKey("DOMAIN#"+domain, skDomain) }

func idemKey(scope, k string) key { return mkKey("IDEM#"+scope+"#"+k, skIdem) }

func configKey(name string) key { return mkKey("CONFIG", name) }

// Pool attribute names: one attribute per tier and counter, so that a
// condition can compare two counters of the same item.
func purchasedAttr(t licadmin.Tier) string { return "purchased_" + string(t) }
func assignedAttr(t licadmin.Tier) string  { return "assigned_" + string(t) }
func availableAttr(t licadmin.Tier) string { return "available_" + string(t) }
func alertAttr(t licadmin.Tier) string     { return "alert_" + string(t) }

// isUserPK reports whether pk names a user item.
func isUserPK(pk string) bool { return strings.HasPrefix(pk, "USER#") }
