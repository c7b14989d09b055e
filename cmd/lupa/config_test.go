package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestConfigRefusesUnusableValues: a value Lupa cannot work with — a burst of 0 that answers
// every public request 429, a pool or a batch of 0, a log level or format it does not know —
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
		{"LUPA_LOG_LEVEL", "verbose", "debug, info, warn or error"},
		{"LUPA_LOG_FORMAT", "xml", "json or text"},
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
	// What works is still taken, in any case.
	env := map[string]string{"LUPA_LOG_LEVEL": "WARN", "LUPA_LOG_FORMAT": "Text", "LUPA_WRITER_WORKERS": "0", "LUPA_RATE_BURST": "1"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.RateBurst != 1 || cfg.WriterWorkers != 0 {
		t.Fatalf("usable settings: %+v, %v", cfg, err)
	}
}
