package licadmin

import (
	"errors"
	"time"
)

// ReminderStatus is where a bulk reminder stands.
type ReminderStatus string

// The statuses of a bulk reminder.
const (
	// ReminderRunning: pending users are still being reminded.
	ReminderRunning ReminderStatus = "running"
	// ReminderDone: every user asked for was reminded or skipped.
	ReminderDone ReminderStatus = "done"
	// ReminderFailed: it stopped before its end (Error says why); the
	// users counted were reminded.
	ReminderFailed ReminderStatus = "failed"
)

// Reminder is a bulk request for activation emails (POST
// /v1/activation-emails): to listed users, or to every pending user of
// the account, which runs in the background a page of users at a time.
type Reminder struct {
	ID     string         `json:"reminderId"`
	Status ReminderStatus `json:"status"`
	// AllPending tells a reminder of every pending user from a list.
	AllPending bool `json:"allPending"`
	// Queued counts the activation emails queued (a fresh link each);
	// Skipped the users who got none: not pending, sent one in the last
	// 60 seconds, or (in a list) unknown.
	Queued  int64 `json:"queued"`
	Skipped int64 `json:"skipped"`
	// Error says why a failed reminder stopped; nil otherwise.
	Error     *string   `json:"error"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	AccountID string `json:"-"`
	// Actor is the admin who asked; every email is audited as its.
	Actor string `json:"-"`
	// Seq counts the pages done and Cursor is where the next one starts
	// (nil before the first): each page's progress is written on the
	// condition that Seq is still the one it read.
	Seq    int64  `json:"-"`
	Cursor []byte `json:"-"`
}

// ErrReminderMoved means another invocation advanced a reminder since it
// was read: the one that found out stops.
var ErrReminderMoved = errors.New("reminder advanced by another invocation")
