package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

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
//	search index entry   SEARCH#<accountId>#<c>    <key>\x01<field>\x01<userId> the user as listed; searchEmail/FirstName/LastName (below)
//	search index marker  SEARCH#<userId>           MARKER                      seq: the last stream record applied to the user's entries; ttl 48 h once deleted
//	email claim          EMAIL#<email>             EMAIL                       accountId, userId, role: one email, one user
//	domain claim         DOMAIN#<domain>           DOMAIN                      accountId, status: one domain, one account
//	idempotency record   IDEM#<sha256(scope, key)> IDEM                        request hash and response, ttl 24 h
//	setting              CONFIG                    <name>                      e.g. the cursor signing key
//	outbox (email)       OUTBOX#<id>               OUTBOX                      kind, recipient, status pending|sending|sent|failed, ttl 30 d;
//	                                                                           gsi1pk=OUTBOX#DUE, gsi1sk=<due time>#<id> until sent or failed
//	activation token     TOKEN#<sha256 hex>        TOKEN                       userId, accountId, language, expiresAt, ttl = expiry
//	usage event claim    USAGE#<userId>            EVENT#<eventId>             entry (the log entry to put: accountId, userId, at, type, bytes...), ttl 30 d: its INSERT is counted once
//	log entry            LOG#<userId>#<logGen>     <time>#<eventId>            type, messageRef, recipients, bytes, ip, ttl by tier
//	monthly usage        USER#<userId>             STATS#<YYYY-MM>             sent, bytesSent, opens, downloads, signed (ADD), seq
//	log export           EXPORT#<exportId>         EXPORT                      accountId, userId, logGen, range, status, key, ttl 7 d
//	log purge marker     PURGE#<userId>            <fromGen>-<toGen>[-deleted] a purge that continues; round, ttl 7 d
//	import               ACCT#<accountId>          IMPORT#<importId>           status, source, object, counters, checkpoint, lease; ttl 30 d;
//	                                                                           gsi1pk=ACCT#<accountId>#IMPORTS, gsi1sk=<createdAt>#<importId>
//	import report row    IMPORT#<importId>         ROW#<line, 12 digits>       email, code, message: one per failed row; ttl 30 d
//	dry-run email seen   IMPORT#<importId>         SEEN#<email>                line: finds duplicates across a dry run; ttl 30 d
//
// Log entries are keyed by user and log generation: remove, transfer and
// delete bump the user's logGen in their own transaction, so reads (which
// always use the current generation) stop seeing the old entries at once,
// whatever their number; the old partition is then purged in the
// background, TTL being the backstop. A user's monthly counters live in
// the user's own partition, so statistics read users and months, never
// log entries.
//
// A user item also carries "activationSentAt" (epoch milliseconds): the
// activation-email request's rate limit is a condition on it. Outbox items
// are written in the transaction of the change that sends an email and
// delivered from the table's stream (shared/notify); a token item is keyed
// by the SHA-256 of the token, which is never stored.
//
// Each user has a search index entry per field (email, first name, last
// name) whose search key (licadmin.SearchKey) is not empty, in a
// partition of its account named by the key's first character <c>: one
// Query finds an account's users by a prefix of any field. The table's
// stream function writes them from every change of a user item (create,
// edit, email change, delete, import, license change, activation), so no
// write path can forget them; a marker per user keeps the stream sequence
// number of the last change applied, so that a
// redelivered record never undoes a later one (search.go says why).
//
// User items are keyed by user id alone so that the caller's email claim and
// the users a request names are read in one BatchGetItem; the account a user
// belongs to is an attribute checked on every read and in every write
// condition (docs/api.md, rule 4).
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
	skOutbox  = "OUTBOX"
	skToken   = "TOKEN"
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

// skAccountDomainPrefix starts the sort key of an account's domain entries,
// so that one Query lists them.
const skAccountDomainPrefix = "DOMAIN#"

func accountDomainKey(accountID, domain string) key {
	return mkKey(accountPK(accountID), skAccountDomainPrefix+domain)
}

// skAuditPrefix starts the sort key of an account's audit records.
const skAuditPrefix = "AUDIT#"

func auditKey(accountID, at, id string) key {
	return mkKey(accountPK(accountID), skAuditPrefix+at+"#"+id)
}

func userPK(userID string) string { return "USER#" + userID }

func userKey(userID string) key { return mkKey(userPK(userID), skUser) }

func usersGSI1PK(accountID string) string { return "ACCT#" + accountID + "#USERS" }

func emailKey(email string) key { return mkKey("EMAIL#"+email, skEmail) }

func domainKey(domain string) key { return mkKey("DOMAIN#"+domain, skDomain) }

// idemKey keys an idempotency record by the SHA-256 of its scope and key,
// the scope length-prefixed: both may hold any character ("#" included),
// and no two (scope, key) pairs may share a record, whatever they hold.
func idemKey(scope, k string) key {
	sum := sha256.Sum256([]byte(strconv.Itoa(len(scope)) + ":" + scope + k))
	return mkKey("IDEM#"+hex.EncodeToString(sum[:]), skIdem)
}

func configKey(name string) key { return mkKey("CONFIG", name) }

func outboxKey(id string) key { return mkKey("OUTBOX#"+id, skOutbox) }

// tokenKey keys an activation token by its SHA-256, hex-encoded.
func tokenKey(hashHex string) key { return mkKey("TOKEN#"+hashHex, skToken) }

// Kinds of items, as ItemKind names them for the table's stream consumers.
const (
	KindOther  = ""
	KindOutbox = "outbox"
	KindPool   = "pool"
	KindUser   = "user"
	KindPurge  = "purge"
	KindAudit  = "audit"
	// KindEventClaim is a usage event's claim, whose INSERT puts its log
	// entry.
	KindEventClaim = "event"
	// KindLogEntry is a usage event's log entry, whose INSERT the monthly
	// counters count.
	KindLogEntry = "log"
)

// ItemKind tells what an item is from its keys (a stream record's Keys),
// so that stream consumers need not know the key formats.
func ItemKind(k Item) string {
	pk, sk := getS(k, attrPK), getS(k, attrSK)
	switch {
	case sk == skOutbox && strings.HasPrefix(pk, "OUTBOX#"):
		return KindOutbox
	case sk == skPool && strings.HasPrefix(pk, "ACCT#"):
		return KindPool
	case sk == skUser && isUserPK(pk):
		return KindUser
	case strings.HasPrefix(pk, purgePKPrefix):
		return KindPurge
	case strings.HasPrefix(pk, usagePKPrefix) && strings.HasPrefix(sk, skEventPrefix):
		return KindEventClaim
	case strings.HasPrefix(pk, logPKPrefix):
		return KindLogEntry
	case strings.HasPrefix(sk, skAuditPrefix) && strings.HasPrefix(pk, accountPK("")):
		return KindAudit
	}
	return KindOther
}

// accountOfPK returns the account id of an ACCT#<id> partition key.
func accountOfPK(pk string) string { return strings.TrimPrefix(pk, "ACCT#") }

// Pool attribute names: one attribute per tier and counter, so that a
// condition can compare two counters of the same item.
func purchasedAttr(t licadmin.Tier) string { return "purchased_" + string(t) }
func assignedAttr(t licadmin.Tier) string  { return "assigned_" + string(t) }
func availableAttr(t licadmin.Tier) string { return "available_" + string(t) }
func alertAttr(t licadmin.Tier) string     { return "alert_" + string(t) }

// isUserPK reports whether pk names a user item.
func isUserPK(pk string) bool { return strings.HasPrefix(pk, "USER#") }

// Usage, logs and exports (see the table above).
const (
	skExport      = "EXPORT"
	skStatsPrefix = "STATS#"
	purgePKPrefix = "PURGE#"
	usagePKPrefix = "USAGE#"
	skEventPrefix = "EVENT#"
)

// eventKey keys a usage event's claim in its user's usage partition: the
// table's stream delivers one partition's records in order, which the
// monthly counters rely on.
func eventKey(userID, eventID string) key {
	return mkKey(usagePKPrefix+userID, skEventPrefix+eventID)
}

const logPKPrefix = "LOG#"

func logPK(userID string, gen int64) string {
	return logPKPrefix + userID + "#" + strconv.FormatInt(gen, 10)
}

// logGeneration returns the generation of a log partition key.
func logGeneration(pk string) (int64, bool) {
	i := strings.LastIndexByte(pk, '#')
	if !strings.HasPrefix(pk, logPKPrefix) || i < len(logPKPrefix) {
		return 0, false
	}
	gen, err := strconv.ParseInt(pk[i+1:], 10, 64)
	return gen, err == nil
}

func logSK(at time.Time, eventID string) string { return formatTime(at) + "#" + eventID }

func statsKey(userID, month string) key { return mkKey(userPK(userID), skStatsPrefix+month) }

func exportKey(exportID string) key { return mkKey("EXPORT#"+exportID, skExport) }

// Bulk imports (see the table above). An import is read through the
// caller's account, so another account's import id is not found; its report
// rows and dry-run markers live in the import's own partition, listed in
// line order by one Query.
const (
	skImportRowPrefix  = "ROW#"
	skImportSeenPrefix = "SEEN#"
)

func importKey(accountID, importID string) key {
	return mkKey(accountPK(accountID), "IMPORT#"+importID)
}

func importPK(importID string) string { return "IMPORT#" + importID }

// importsGSI1PK lists an account's imports in gsi1, by creation time.
func importsGSI1PK(accountID string) string { return "ACCT#" + accountID + "#IMPORTS" }

func importRowKey(importID string, line int64) key {
	n := strconv.FormatInt(line, 10)
	return mkKey(importPK(importID), skImportRowPrefix+strings.Repeat("0", max(0, 12-len(n)))+n)
}

func importSeenKey(importID, email string) key {
	return mkKey(importPK(importID), skImportSeenPrefix+email)
}
