package logs_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"licenseadmin/shared/apitest"
	"licenseadmin/shared/logs"
	"licenseadmin/shared/store"
)

// purgeStore is an in-memory PurgeStore: a number of log entries left per
// generation, and the markers saved.
type purgeStore struct {
	left  map[int64]int
	saved []store.PurgeJob
}

func (s *purgeStore) PurgeLogs(_ context.Context, _ string, gen int64, budget int) (int, bool, error) {
	n := min(budget, s.left[gen])
	s.left[gen] -= n
	return n, s.left[gen] == 0, nil
}

func (s *purgeStore) PurgeUsage(context.Context, string, int) (int, bool, error) { return 0, true, nil }

func (s *purgeStore) SavePurge(_ context.Context, j *store.PurgeJob, _ time.Time) error {
	s.saved = append(s.saved, *j)
	return nil
}

func (s *purgeStore) DeletePurge(context.Context, *store.PurgeJob) error { return nil }

// TestPurgeStopsAtDeadline ensures a purge call whose invocation is near
// its deadline stops after one step and saves a marker to continue,
// instead of running into the function's timeout; without a deadline it
// goes on to its budget.
func TestPurgeStopsAtDeadline(t *testing.T) {
	for _, tc := range []struct {
		name       string
		deadline   time.Duration // 0: none
		wantLeft   int
		wantMarker bool
	}{
		{"no deadline", 0, 0, false},
		{"deadline far", time.Hour, 0, false},
		{"deadline within the margin", 5 * time.Second, 4000 - 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &purgeStore{left: map[int64]int{0: 4000}}
			p := &logs.Purger{Store: st, Now: time.Now, Margin: 10 * time.Second}
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			if err := p.UserChanged(ctx, "a1", "u1", 0, 1, false); err != nil {
				t.Fatal(err)
			}
			if st.left[0] != tc.wantLeft || (len(st.saved) > 0) != tc.wantMarker {
				t.Fatalf("%d entries left, markers %+v; want %d left, marker %v", st.left[0], st.saved, tc.wantLeft, tc.wantMarker)
			}
		})
	}
}

// jobQueue keeps what is sent to it, as the export queue would.
type jobQueue struct{ bodies []string }

func (q *jobQueue) Send(_ context.Context, body []byte) error {
	q.bodies = append(q.bodies, string(body))
	return nil
}

// prefixObjects records the prefixes deleted; the other operations are
// not used here.
type prefixObjects struct {
	logs.Objects
	deleted []string
}

func (o *prefixObjects) DeletePrefix(_ context.Context, prefix string) (int, error) {
	o.deleted = append(o.deleted, prefix)
	return 1, nil
}

// TestPurgeQueuesExportFiles ensures the purge hands the export files of
// the purged generations (every file of a deleted user) to the export
// function, as a job on the export queue, and that the export function
// deletes exactly those prefixes; a purge job that names no account or
// user is dropped rather than deleting anything.
func TestPurgeQueuesExportFiles(t *testing.T) {
	for _, tc := range []struct {
		name           string
		oldGen, newGen int64
		deleted        bool
		want           []string
	}{
		{"license removed", 2, 3, false, []string{"exports/a1/u1/2/"}},
		{"two generations", 2, 4, false, []string{"exports/a1/u1/2/", "exports/a1/u1/3/"}},
		{"user deleted", 5, 0, true, []string{"exports/a1/u1/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, objects := &jobQueue{}, &prefixObjects{}
			x := &logs.Exports{Queue: q, Objects: objects, Now: time.Now}
			p := &logs.Purger{Store: &purgeStore{left: map[int64]int{}}, Files: x, Now: time.Now}
			if err := p.UserChanged(context.Background(), "a1", "u1", tc.oldGen, tc.newGen, tc.deleted); err != nil {
				t.Fatal(err)
			}
			if len(q.bodies) != 1 || len(objects.deleted) != 0 {
				t.Fatalf("%d jobs queued, %d prefixes deleted by the purge itself; want 1 job, none", len(q.bodies), len(objects.deleted))
			}
			resp, err := x.HandleSQS(context.Background(), apitest.SQSEvent(q.bodies...))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("HandleSQS: %v, %v", resp, err)
			}
			if !slices.Equal(objects.deleted, tc.want) {
				t.Errorf("deleted %v, want %v", objects.deleted, tc.want)
			}
		})
	}
	objects := &prefixObjects{}
	x := &logs.Exports{Objects: objects, Now: time.Now}
	for _, body := range []string{`{"purge":{"accountId":"a1"}}`, `{"purge":{"userId":"u1"}}`, `{"exportId":"e1","purge":{"accountId":"a1","userId":"u1"}}`} {
		if resp, err := x.HandleSQS(context.Background(), apitest.SQSEvent(body)); err != nil || len(resp.BatchItemFailures) != 0 || len(objects.deleted) != 0 {
			t.Errorf("%s: %v, %v, deleted %v; want dropped", body, resp, err, objects.deleted)
		}
	}
}
