package logs_test

import (
	"context"
	"testing"
	"time"

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
			if err := p.UserChanged(ctx, "u1", 0, 1, false); err != nil {
				t.Fatal(err)
			}
			if st.left[0] != tc.wantLeft || (len(st.saved) > 0) != tc.wantMarker {
				t.Fatalf("%d entries left, markers %+v; want %d left, marker %v", st.left[0], st.saved, tc.wantLeft, tc.wantMarker)
			}
		})
	}
}
