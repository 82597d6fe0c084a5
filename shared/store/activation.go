package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"licenseadmin/shared/licadmin"
)

// Audit actions of activation and alert settings.
const (
	ActionActivationEmail = "user.activation_email"
	ActionUserActivate    = "user.activate"
	ActionAlertThreshold  = "licenses.alert_threshold"
)

// ActivationEmailInterval is the least time between two activation emails
// to one user (docs/api.md: 429 rate_limited if one was sent less than 60 s ago).
const ActivationEmailInterval = 60 * time.Second

// RequestActivationEmail records, in one transaction, that an activation
// email is to be sent to u (as read): the user's activationSentAt, which
// must be absent or at least ActivationEmailInterval old (ERATELIMITED
// otherwise), the outbox item of the email, the caller's admin check and
// the audit record. It fails with ENOTFOUND when u is gone.
func (s *Store) RequestActivationEmail(ctx context.Context, c *licadmin.Caller, u *licadmin.User, now time.Time) error {
	t, p := s.begin(ctx, now)
	e := newExpr()
	sent := e.n("activationSentAt")
	t.update(s.Table, userKey(u.ID), fmt.Sprintf("SET %s = %s", sent, e.v(num(now.UnixMilli()))),
		fmt.Sprintf("%s = %s AND (attribute_not_exists(%s) OR %s <= %s)",
			e.n("accountId"), e.v(str(u.AccountID)), sent, sent, e.v(num(now.Add(-ActivationEmailInterval).UnixMilli()))),
		e, func(old Item) error {
			if old == nil || getS(old, "accountId") != u.AccountID {
				return licadmin.Errorf(licadmin.ENOTFOUND, "user %s not found", u.ID)
			}
			wait := time.UnixMilli(getN(old, "activationSentAt")).Add(ActivationEmailInterval).Sub(now)
			return licadmin.Errorf(licadmin.ERATELIMITED, "an activation email was sent to this user less than 60 seconds ago; retry in %d seconds", max(1, int(wait.Seconds()+0.999)))
		})
	s.putOutbox(t, RecipientOutbox(licadmin.EmailActivation, u, now))
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: u.AccountID, Actor: c.Email, Action: ActionActivationEmail, Target: u.ID, At: now})
	return s.commit(ctx, t, p, ActivationQueued{UserID: u.ID, Status: "queued"}, now)
}

// ActivationQueued is the answer to an activation-email request.
type ActivationQueued struct {
	UserID string `json:"userId"`
	Status string `json:"status"`
}

// ActivationToken is the stored side of an activation link: the SHA-256 of
// the token (never the token itself) and whom it activates.
type ActivationToken struct {
	Hash      []byte
	UserID    string
	AccountID string
	// Email is the address the link was sent to: the link works only while
	// it is still the user's address, so an email change revokes the
	// links sent before it. Empty (tokens minted before it was recorded)
	// checks nothing.
	Email    string
	Language string
	// OutboxID is the outbox item whose delivery minted the token.
	OutboxID  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PutActivationToken stores a new token; its ttl is its expiry, so DynamoDB
// deletes it some time after (reads check ExpiresAt themselves).
func (s *Store) PutActivationToken(ctx context.Context, tok *ActivationToken) error {
	it := tokenKey(hex.EncodeToString(tok.Hash))
	it["userId"] = str(tok.UserID)
	it["accountId"] = str(tok.AccountID)
	it["language"] = str(tok.Language)
	if tok.Email != "" {
		it["email"] = str(tok.Email)
	}
	it["outboxId"] = str(tok.OutboxID)
	it["createdAt"] = timestamp(tok.CreatedAt)
	it["expiresAt"] = num(tok.ExpiresAt.Unix())
	it[attrTTL] = num(tok.ExpiresAt.Unix())
	written, err := s.putNew(ctx, it, "put activation token")
	if err == nil && !written {
		err = errors.New("put activation token: a token with this hash exists")
	}
	return err
}

// GetActivationToken returns the token whose hash is hash, or nil when
// there is none or it expired at now. It changes nothing.
func (s *Store) GetActivationToken(ctx context.Context, hash []byte, now time.Time) (*ActivationToken, error) {
	it, err := s.getItem(ctx, tokenKey(hex.EncodeToString(hash)))
	if err != nil {
		return nil, fmt.Errorf("get activation token: %w", err)
	}
	if it == nil {
		return nil, nil
	}
	tok := &ActivationToken{
		Hash:      hash,
		UserID:    getS(it, "userId"),
		AccountID: getS(it, "accountId"),
		Email:     getS(it, "email"),
		Language:  getS(it, "language"),
		OutboxID:  getS(it, "outboxId"),
		CreatedAt: getTime(it, "createdAt"),
		ExpiresAt: time.Unix(getN(it, "expiresAt"), 0).UTC(),
	}
	if !now.Before(tok.ExpiresAt) {
		return nil, nil
	}
	return tok, nil
}

// ConsumeActivationToken uses tok once: in one transaction it deletes the
// token item on condition that it still exists and has not expired at now,
// sets its user's status to active on condition that the user's email is
// still the one the link was sent to, and writes the audit record (and the
// idempotency record when the request has a key; its answer is Activated).
// Of any number of concurrent calls with one token, one succeeds; the
// others, and any call with a used or expired token, for a user that is
// gone or whose email changed since, fail with ETOKENINVALID.
func (s *Store) ConsumeActivationToken(ctx context.Context, tok *ActivationToken, now time.Time) error {
	invalid := func(Item) error { return errTokenInvalid() }
	t, p := s.begin(ctx, now)
	e := newExpr()
	t.delete(s.Table, tokenKey(hex.EncodeToString(tok.Hash)),
		fmt.Sprintf("attribute_exists(%s) AND %s > %s", e.n(attrPK), e.n("expiresAt"), e.v(num(now.Unix()))), e, invalid)
	ue := newExpr()
	userCond := fmt.Sprintf("%s = %s", ue.n("accountId"), ue.v(str(tok.AccountID)))
	if tok.Email != "" {
		userCond += fmt.Sprintf(" AND %s = %s", ue.n("email"), ue.v(str(tok.Email)))
	}
	t.update(s.Table, userKey(tok.UserID),
		fmt.Sprintf("SET %s = %s, %s = %s, %s = %s ADD %s %s",
			ue.n("status"), ue.v(str(string(licadmin.StatusActive))),
			ue.n("updatedAt"), ue.v(timestamp(now)),
			ue.n("activatedAt"), ue.v(timestamp(now)),
			ue.n("version"), ue.v(num(1))),
		userCond, ue, invalid)
	user, err := s.getItem(ctx, userKey(tok.UserID))
	if err != nil {
		return fmt.Errorf("get user %s: %w", tok.UserID, err)
	}
	s.addAudit(ctx, t, Audit{AccountID: tok.AccountID, Actor: getS(user, "email"), Action: ActionUserActivate, Target: tok.UserID, At: now})
	return s.commit(ctx, t, p, Activated, now)
}

// Activated is the answer to a consumed activation token.
var Activated = map[string]string{"status": string(licadmin.StatusActive)}

func errTokenInvalid() error {
	return licadmin.Errorf(licadmin.ETOKENINVALID, "this activation link is invalid, already used or expired; ask an administrator for a new one")
}

// SetAlertThreshold sets the low-pool alert threshold of a tier of c's
// account (pool as read), with its audit record, and returns the pool with
// the new threshold. It fails with ENOTFOUND when the account has no pool.
func (s *Store) SetAlertThreshold(ctx context.Context, c *licadmin.Caller, pool *licadmin.Pool, tier licadmin.Tier, threshold int64, now time.Time) (*licadmin.Pool, error) {
	after := &licadmin.Pool{Tiers: append([]licadmin.TierPool(nil), pool.Tiers...)}
	for i := range after.Tiers {
		if after.Tiers[i].Tier == tier {
			after.Tiers[i].AlertThreshold = threshold
		}
	}
	t, p := s.begin(ctx, now)
	e := newExpr()
	t.update(s.Table, poolKey(c.AccountID), fmt.Sprintf("SET %s = %s", e.n(alertAttr(tier)), e.v(num(threshold))),
		fmt.Sprintf("attribute_exists(%s)", e.n(attrPK)), e,
		func(Item) error { return licadmin.Errorf(licadmin.ENOTFOUND, "the account has no license pool") })
	s.callerCheck(t, c)
	s.addAudit(ctx, t, Audit{AccountID: c.AccountID, Actor: c.Email, Action: ActionAlertThreshold, Target: string(tier),
		Details: map[string]string{"from": strconv.FormatInt(pool.Tier(tier).AlertThreshold, 10), "to": strconv.FormatInt(threshold, 10)}, At: now})
	if err := s.commit(ctx, t, p, after, now); err != nil {
		return nil, err
	}
	return after, nil
}
