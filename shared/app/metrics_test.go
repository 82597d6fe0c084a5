package app_test

import (
	"testing"

	"licenseadmin/shared/app"
)

// TestMetricsOffByDefaultInTests ensures an App built without Config.Metrics
// (tests, the local stack) records nothing, and that METRICS=off turns
// metrics off in Lambda, where they are on by default.
func TestMetricsOffByDefaultInTests(t *testing.T) {
	a := app.NewWithClient(app.Config{TableName: "t"}, nil)
	if a.Metrics != nil || a.API.Metrics != nil || a.Store.Metrics != nil || a.Imports.Metrics != nil || a.Usage.Metrics != nil {
		t.Errorf("metrics wired without Config.Metrics: %v %v %v", a.Metrics, a.API.Metrics, a.Store.Metrics)
	}
	for _, tt := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"TABLE_NAME": "t"}, true},
		{map[string]string{"TABLE_NAME": "t", "METRICS": "off"}, false},
	} {
		cfg, err := app.ConfigFrom(func(k string) string { return tt.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Metrics != tt.want {
			t.Errorf("ConfigFrom(%v).Metrics = %v, want %v", tt.env, cfg.Metrics, tt.want)
		}
	}
	on := app.NewWithClient(app.Config{TableName: "t", Metrics: true}, nil)
	if on.Metrics == nil || on.API.Metrics == nil || on.Store.Metrics == nil || on.Imports.Metrics == nil || on.Usage.Metrics == nil {
		t.Errorf("Config.Metrics on, but not wired: %v %v %v %v %v", on.Metrics, on.API.Metrics, on.Store.Metrics, on.Imports.Metrics, on.Usage.Metrics)
	}
}
