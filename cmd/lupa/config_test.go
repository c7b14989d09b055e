package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestConfigRefusesUnusableValues: a value Lupa cannot work with — a burst of 0 that answers
// every public request 429, a pool or a batch of 0 or past its greatest value, an interval
// that would run its job in a loop or hardly ever, a log level or format it does not know —
// stops every command with exit code 2 and the variable's name, instead of being used or
// silently replaced.
func TestConfigRefusesUnusableValues(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"LUPA_RATE_BURST", "0", "at least 1"},
		{"LUPA_RATE_BURST", "-1", "at least 1"},
		{"LUPA_DB_MAX_CONNS", "0", "at least 1"},
		{"LUPA_WRITER_MAX_BATCH", "0", "at least 1"},
		{"LUPA_WRITER_WORKERS", "-2", "at least 0"},
		{"LUPA_CONNECTOR_INSTANCES", "0", "at least 1"},
		// Past its greatest value a setting only costs: memory, connections, a limit that
		// no longer limits.
		{"LUPA_WRITER_MAX_BATCH", "10001", "at most 10000"},
		{"LUPA_WRITER_WORKERS", "33", "at most 32"},
		{"LUPA_DB_MAX_CONNS", "1001", "at most 1000"},
		{"LUPA_RATE_BURST", "1000001", "at most 1000000"},
		{"LUPA_RATE_LIMIT", "1000001", "at most 1000000"},
		{"LUPA_CONNECTOR_INSTANCES", "1001", "at most 1000"},
		// An interval of a nanosecond runs its job in a loop; one of years never runs it.
		{"LUPA_SWEEP_INTERVAL", "1ns", "between 1s and 24h0m0s"},
		{"LUPA_SWEEP_INTERVAL", "0s", "between 1s and 24h0m0s"},
		{"LUPA_SWEEP_INTERVAL", "-1m", "between 1s and 24h0m0s"},
		{"LUPA_ROOT_INTERVAL", "25h", "between 1s and 24h0m0s"},
		{"LUPA_SHUTDOWN_TIMEOUT", "2h", "between 1s and 1h0m0s"},
		{"LUPA_RECONCILE_INTERVAL", "10s", "between 1m0s and 24h0m0s"},
		{"LUPA_DELIVERY_LOG_RETENTION", "1m", "between 1h0m0s and 87600h0m0s"},
		{"LUPA_LOG_LEVEL", "verbose", "debug, info, warn or error"},
		{"LUPA_LOG_FORMAT", "xml", "json or text"},
		// Facebook's endpoints get the app's proof and the person's tokens: https, or plain
		// http only on the loopback host a test's fake Facebook listens on.
		{"LUPA_FACEBOOK_GRAPH_URL", "http://graph.facebook.com/v19.0", "https URL"},
		{"LUPA_FACEBOOK_DIALOG_URL", "http://www.facebook.com/v19.0/dialog/oauth", "https URL"},
		{"LUPA_FACEBOOK_DIALOG_URL", "ftp://www.facebook.com/dialog/oauth", "https URL"},
		{"LUPA_FACEBOOK_GRAPH_URL", "https://graph.facebook.com/v19.0#x", "https URL"},
	} {
		for _, cmd := range []string{"serve", "migrate"} {
			dataDir := t.TempDir()
			env := map[string]string{c.name: c.value, "LUPA_DATA_DIR": dataDir, "LUPA_ADDR": freeAddr(t), "LUPA_METRICS_ADDR": "off"}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a serve that wrongly starts stops at once
			code, _, stderr := runCmd(ctx, func(k string) string { return env[k] }, cmd)
			if code != 2 || !strings.Contains(stderr, c.name) || !strings.Contains(stderr, c.want) {
				t.Errorf("%s %s=%q: exit %d, stderr %q", cmd, c.name, c.value, code, stderr)
			}
			if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
				t.Errorf("%s %s=%q touched the data directory before refusing", cmd, c.name, c.value)
			}
		}
	}
	// Values no machine could hold are refused by loadConfig before anything is sized by
	// them (a batch of 1e18 would make a queue of 2e18 slots), and so are NaN and Inf.
	for _, c := range []struct{ name, value, want string }{
		{"LUPA_WRITER_MAX_BATCH", "1e18", "at most 10000"},
		{"LUPA_WRITER_MAX_BATCH", "Inf", "at most 10000"},
		{"LUPA_WRITER_MAX_BATCH", "NaN", "whole number"},
		{"LUPA_DB_MAX_CONNS", "9223372036854775807", "at most 1000"},
		{"LUPA_RATE_LIMIT", "Inf", "at most 1000000"},
		{"LUPA_RATE_LIMIT", "NaN", "positive number"},
	} {
		if _, err := loadConfig(func(k string) string { return map[string]string{c.name: c.value}[k] }); err == nil ||
			!strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%s: %v", c.name, c.value, err)
		}
	}
	// Each greatest value is still taken.
	most := map[string]string{"LUPA_WRITER_MAX_BATCH": "10000", "LUPA_WRITER_WORKERS": "32", "LUPA_DB_MAX_CONNS": "1000",
		"LUPA_RATE_BURST": "1000000", "LUPA_RATE_LIMIT": "1e6", "LUPA_CONNECTOR_INSTANCES": "1000",
		"LUPA_SWEEP_INTERVAL": "24h", "LUPA_ROOT_INTERVAL": "24h", "LUPA_SHUTDOWN_TIMEOUT": "1h", "LUPA_RECONCILE_INTERVAL": "24h",
		"LUPA_DELIVERY_LOG_RETENTION": "87600h"}
	if cfg, err := loadConfig(func(k string) string { return most[k] }); err != nil || cfg.WriterMaxBatch != 10000 ||
		cfg.WriterWorkers != 32 || cfg.DBMaxConns != 1000 || cfg.RateBurst != 1_000_000 || cfg.RateLimit != 1e6 || cfg.ConnectorInstances != 1000 ||
		cfg.SweepInterval != 24*time.Hour || cfg.RootInterval != 24*time.Hour || cfg.ShutdownTimeout != time.Hour ||
		cfg.ReconcileInterval != 24*time.Hour || cfg.DeliveryLogRetention != 87600*time.Hour {
		t.Fatalf("the greatest values: %+v, %v", cfg, err)
	}
	// And each least value.
	least := map[string]string{"LUPA_SWEEP_INTERVAL": "1s", "LUPA_ROOT_INTERVAL": "1s", "LUPA_SHUTDOWN_TIMEOUT": "1s",
		"LUPA_RECONCILE_INTERVAL": "1m", "LUPA_DELIVERY_LOG_RETENTION": "1h"}
	if cfg, err := loadConfig(func(k string) string { return least[k] }); err != nil || cfg.SweepInterval != time.Second ||
		cfg.RootInterval != time.Second || cfg.ShutdownTimeout != time.Second || cfg.ReconcileInterval != time.Minute ||
		cfg.DeliveryLogRetention != time.Hour {
		t.Fatalf("the least durations: %+v, %v", cfg, err)
	}
	// A fake Facebook on loopback, as the login tests run one, is taken.
	fake := map[string]string{"LUPA_FACEBOOK_DIALOG_URL": "http://127.0.0.1:4711/dialog/oauth", "LUPA_FACEBOOK_GRAPH_URL": "http://localhost:4711/"}
	if cfg, err := loadConfig(func(k string) string { return fake[k] }); err != nil || cfg.FacebookDialogURL != fake["LUPA_FACEBOOK_DIALOG_URL"] ||
		cfg.FacebookGraphURL != "http://localhost:4711" {
		t.Fatalf("a fake Facebook on loopback: %+v, %v", cfg, err)
	}
	// What works is still taken, in any case.
	env := map[string]string{"LUPA_LOG_LEVEL": "WARN", "LUPA_LOG_FORMAT": "Text", "LUPA_WRITER_WORKERS": "0", "LUPA_RATE_BURST": "1"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.RateBurst != 1 || cfg.WriterWorkers != 0 {
		t.Fatalf("usable settings: %+v, %v", cfg, err)
	}
}
