package api_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"licenseadmin/shared/api"
	"licenseadmin/shared/apitest"
	"licenseadmin/shared/licadmin"
)

// txnRecorder records the store's transaction metrics.
type txnRecorder struct {
	mu      sync.Mutex
	retried int
	gaveUp  int
}

func (r *txnRecorder) TransactionConflict(retried bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if retried {
		r.retried++
	} else {
		r.gaveUp++
	}
}

// TestTransactionConflictMetrics ensures the store reports each
// transaction attempt cancelled by a conflict: retried ones while it
// retries, and one given up when it answers 503.
func TestTransactionConflictMetrics(t *testing.T) {
	var conflicts atomic.Int32 // TransactWriteItems calls left to cancel
	inject, _ := apitest.Faults(func(op string, _ int) apitest.Fault {
		if op == "TransactWriteItems" && conflicts.Add(-1) >= 0 {
			return apitest.Conflict
		}
		return apitest.NoFault
	})
	env := apitest.New(t, inject)
	env.App.Store.Sleep = func(context.Context, time.Duration) error { return nil }
	rec := &txnRecorder{}
	env.App.Store.Metrics = rec
	acct, _ := env.MustAccount(t, "Acme", "admin@acme.test")
	env.MustLicenses(t, acct, licadmin.Eco, 5)
	create := api.CreateUser(env.App)
	r := apitest.Do(t, create, apitest.Request{Route: "POST /v1/users", Email: "admin@acme.test", Body: newUser("u@acme.test", "user")})
	r.Want(t, http.StatusCreated)
	id := r.User(t).ID
	assign := func() *apitest.Response {
		return apitest.Do(t, api.AssignLicense(env.App), apitest.Request{Route: "POST /v1/users/{userId}/license", Email: "admin@acme.test",
			Params: map[string]string{"userId": id}, Body: map[string]string{"tier": "eco"}})
	}

	conflicts.Store(2)
	assign().Want(t, http.StatusOK)
	if rec.retried != 2 || rec.gaveUp != 0 {
		t.Errorf("after 2 conflicts: retried %d, gave up %d; want 2, 0", rec.retried, rec.gaveUp)
	}

	*rec = txnRecorder{}
	conflicts.Store(1000)
	apitest.Do(t, api.RemoveLicense(env.App), apitest.Request{Route: "DELETE /v1/users/{userId}/license", Email: "admin@acme.test",
		Params: map[string]string{"userId": id}}).WantProblem(t, http.StatusServiceUnavailable, licadmin.EUNAVAILABLE)
	if rec.gaveUp != 1 || rec.retried == 0 {
		t.Errorf("when it gives up: retried %d, gave up %d; want some, 1", rec.retried, rec.gaveUp)
	}
}

// importRecorder sums what the import function reports per invocation.
type importRecorder struct {
	mu           sync.Mutex
	calls        int
	accounts     map[string]bool
	dryRun       bool
	rows, failed int64
	negative     bool
}

func (r *importRecorder) Import(accountID string, dryRun bool, rows, failed int64, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.accounts == nil {
		r.accounts = map[string]bool{}
	}
	r.calls++
	r.accounts[accountID] = true
	r.dryRun = r.dryRun || dryRun
	r.rows += rows
	r.failed += failed
	r.negative = r.negative || rows < 0 || failed < 0
}

// usageRecorder sums what the usage ingestion reports per batch.
type usageRecorder struct {
	mu                        sync.Mutex
	ingested, dropped, failed int
}

func (r *usageRecorder) Usage(ingested, dropped, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ingested += ingested
	r.dropped += dropped
	r.failed += failed
}
