package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"licenseadmin/shared/licadmin"
)

// CreateUser writes a new user of c's account with its email claim. When
// domain is not empty, the domain must be approved for the account when the
// transaction commits (EDOMAINNOTAPPROVED); public webmail domains pass "".
// It fails with EEMAILTAKEN when any user already has the email, the
// caller included.
func (s *Store) CreateUser(ctx context.Context, c *licadmin.Caller, u *licadmin.User, domain string, now time.Time) (*licadmin.User, error) {
	if u.Email == c.Email {
		return nil, ownEmailTaken(u.Email)
	}
	t, p := s.begin(ctx, now)
	if domain != "" {
		s.checkDomainApproved(t, u.AccountID, domain, func(Item) error { return domainNotApproved(domain) })
	}
	s.putNewUser(t, u)
	if u.Role == licadmin.RoleAdmin {
		e := newExpr()
		t.update(s.Table, accountKey(u.AccountID), fmt.Sprintf("ADD %s %s", e.n("adminCount"), e.v(num(1))),
			fmt.Sprintf("attribute_exists(%s)", e.n(attrPK)), e,
			func(Item) error { return licadmin.Errorf(licadmin.ENOTFOUND, "account not found") })
	}
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: u.AccountID, Actor: c.Email, Action: ActionUserCreate, Target: u.ID,
		Details: map[string]string{"email": u.Email, "role": string(u.Role)}, At: now})
	if err := s.commit(ctx, t, p, u, now); err != nil {
		return nil, err
	}
	return u, nil
}

func emailTaken(email string) error {
	return licadmin.Errorf(licadmin.EEMAILTAKEN, "a user with the email %s already exists", email)
}

// ownEmailTaken answers a write that would give another user the caller's
// own email. The caller's claim is in the transaction already (its admin
// check) and a transaction may name an item once, so the answer, which the
// claim's existence decides, is given without sending.
func ownEmailTaken(email string) error { return emailTaken(email) }

// putNewUser appends the user item and its email claim, both required to
// be new: the claim is what makes an email belong to one user (docs/api.md, rule 3).
func (s *Store) putNewUser(t *txn, u *licadmin.User) {
	t.putNew(s.Table, emailClaim(u), func(Item) error {
		return emailTaken(u.Email)
	})
	t.putNew(s.Table, userItem(u), func(Item) error {
		return fmt.Errorf("user id %s collides with an existing user", u.ID)
	})
}

// ListUsers returns up to limit users of an account in creation order,
// starting after the position after (nil for the first page), and the
// position to continue from, nil when there are no more. It reads at most
// MaxItemsRead items: filters that drop many may answer fewer than limit
// users (none, even) with a position.
// Positions are opaque to callers; one of another account is refused.
// f.Search must be empty: SearchUsers searches (search.go).
func (s *Store) ListUsers(ctx context.Context, accountID string, f licadmin.UserFilter, limit int, after []byte) ([]*licadmin.User, []byte, error) {
	if f.Search != "" {
		return nil, nil, errors.New("list users: a search is SearchUsers'")
	}
	from, err := decodePosition(after, usersGSI1PK(accountID))
	if err != nil {
		return nil, nil, err
	}
	e := newExpr()
	in := s.queryIndex(e, usersGSI1PK(accountID))
	in.ExclusiveStartKey = from
	in.FilterExpression = userFilter(e, f)
	var users []*licadmin.User
	next, err := s.queryUsers(ctx, in, f, limit, encodePosition, func(it Item) bool {
		users = append(users, userFromItem(it))
		return true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("query users of %s: %w", accountID, err)
	}
	return users, next, nil
}

// queryUsers sends in, a Query of users (the list's or the search's) with
// f's filter, continued until take has taken limit of the items read (it
// reports whether it took one), and returns the position after them (by
// encode), nil when no item follows. It reads at most MaxItemsRead items,
// and then returns the position after the last one read.
func (s *Store) queryUsers(ctx context.Context, in *dynamodb.QueryInput, f licadmin.UserFilter, limit int, encode func(Item) []byte, take func(Item) bool) ([]byte, error) {
	taken := 0
	var last Item
	budget := s.budget()
	for {
		// Without a filter one extra item tells whether a next page exists;
		// with one, read in larger steps since some items are dropped (a
		// search also skips a user's other entries: few).
		want := limit - taken + 1
		if f.License != "" || f.Status != "" {
			want = max(want, 100)
		}
		in.Limit = budget.limit(want)
		out, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, it := range out.Items {
			if taken == limit {
				// More items follow: continue after the last one returned.
				return encode(last), nil
			}
			last = it
			if take(it) {
				taken++
			}
		}
		if out.LastEvaluatedKey == nil {
			return nil, nil
		}
		if budget.spent(out) {
			// Continue after the last item read, returned or not.
			return encode(out.LastEvaluatedKey), nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// userFilter returns the filter expression of f's license and status, nil
// when f filters neither.
func userFilter(e *expr, f licadmin.UserFilter) *string {
	var filters []string
	switch f.License {
	case "":
	case "none":
		filters = append(filters, fmt.Sprintf("attribute_not_exists(%s)", e.n("tier")))
	default:
		filters = append(filters, fmt.Sprintf("%s = %s", e.n("tier"), e.v(str(f.License))))
	}
	if f.Status != "" {
		filters = append(filters, fmt.Sprintf("%s = %s", e.n("status"), e.v(str(f.Status))))
	}
	if len(filters) == 0 {
		return nil
	}
	return aws.String(strings.Join(filters, " AND "))
}

// encodePosition returns the GSI1 key of an item as bytes; decodePosition
// turns them back into an ExclusiveStartKey.
func encodePosition(it Item) []byte {
	b, _ := json.Marshal([4]string{getS(it, attrPK), getS(it, attrSK), getS(it, attrGSI1PK), getS(it, attrGSI1SK)})
	return b
}

func decodePosition(b []byte, gsi1pk string) (Item, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var k [4]string
	if err := json.Unmarshal(b, &k); err != nil || k[2] != gsi1pk {
		return nil, licadmin.Invalid("cursor", "invalid_cursor", "the cursor is not valid for this list; start again without it")
	}
	return Item{attrPK: str(k[0]), attrSK: str(k[1]), attrGSI1PK: str(k[2]), attrGSI1SK: str(k[3])}, nil
}

// CursorKey returns the key that signs pagination cursors, creating it on
// first use. It lives in the table so that every function shares it and no
// secret has to be configured or committed.
func (s *Store) CursorKey(ctx context.Context) ([]byte, error) {
	k := configKey("CURSOR_KEY")
	it, err := s.getItem(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("get cursor key: %w", err)
	}
	if b := getB(it, "value"); len(b) > 0 {
		return b, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	k["value"] = bin(secret)
	created, err := s.putNew(ctx, k, "create cursor key")
	switch {
	case err != nil:
		return nil, err
	case !created:
		// Another function created it first: use theirs.
		return s.CursorKey(ctx)
	}
	return secret, nil
}
