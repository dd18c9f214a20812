package main

import (
	"slices"
	"testing"
)

// TestOpenerEnv: the browser opener's environment is an allowlist.
func TestOpenerEnv(t *testing.T) {
	got := openerEnv([]string{
		"PATH=/bin", "HOME=/h", "DISPLAY=:0", "XDG_RUNTIME_DIR=/run/u", "LC_ALL=C", "BROWSER=firefox",
		"PAN_CLIENT_SECRET=s", "TOKENCACHE_STORE=redis://:pw@h", "DATABASE_URL=postgres://u:pw@h/db", "AWS_SECRET_ACCESS_KEY=k",
	})
	want := []string{"PATH=/bin", "HOME=/h", "DISPLAY=:0", "XDG_RUNTIME_DIR=/run/u", "LC_ALL=C", "BROWSER=firefox"}
	if !slices.Equal(got, want) {
		t.Errorf("openerEnv = %q, want %q", got, want)
	}
}
