package stack

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"licenseadmin/infra/cli"
	"licenseadmin/infra/template"
	"licenseadmin/shared/app"
)

// scheduledHandlers is the registry of the local scheduler: the work of
// every template function that EventBridge Scheduler runs (a ScheduleV2
// event), keyed by its logical id and built as that function's main builds
// it. `run` refuses to start when one is missing.
func scheduledHandlers(load loader) map[string]func(context.Context) error {
	sweeper := load(app.WithOutboxSweeper)
	return map[string]func(context.Context) error{
		"SweepOutboxFunction": func(ctx context.Context) error { _, err := sweeper.Notify.Sweep(ctx); return err },
	}
}

// scheduleEveryVar names the variable that replaces every schedule's
// period locally (a sweep every 5 minutes is long to wait for on a
// laptop): a Go duration such as 30s.
const scheduleEveryVar = "SCHEDULE_EVERY"

// startSchedules runs each scheduled function of tpl on a timer of its
// schedule's period (or SCHEDULE_EVERY) until ctx ends; wait returns when
// every timer stopped.
func startSchedules(ctx context.Context, e *cli.Env, tpl *template.Template, handlers map[string]func(context.Context) error) (wait func(), err error) {
	override := time.Duration(0)
	if v := e.Getenv(scheduleEveryVar); v != "" {
		if override, err = time.ParseDuration(v); err != nil || override <= 0 {
			return nil, fmt.Errorf("%s %q: want a positive duration such as 30s", scheduleEveryVar, v)
		}
	}
	log := slog.New(slog.NewTextHandler(e.Stderr, nil)).With("component", "scheduler")
	var wg sync.WaitGroup
	for _, fn := range tpl.Functions {
		for _, expr := range fn.Schedules {
			h, ok := handlers[fn.LogicalID]
			if !ok {
				return nil, fmt.Errorf("%s runs on a schedule but is not in infra/stack's scheduledHandlers", fn.LogicalID)
			}
			every, err := template.Every(expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn.LogicalID, err)
			}
			if override > 0 {
				every = override
			}
			wg.Add(1)
			go func(name string) {
				defer wg.Done()
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						if err := h(ctx); err != nil && ctx.Err() == nil {
							log.Error("scheduled run failed", "function", name, "err", err.Error())
						}
					}
				}
			}(fn.LogicalID)
		}
	}
	return wg.Wait, nil
}
