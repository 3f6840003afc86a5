package config

import (
	"strings"
	"testing"
)

const verifyHealth = `
      - http: {url: "{{ .Target.Vars.url }}/healthz"}`

// TestVerifyAfterClose: verify.after_close loads, and on a plain
// environment without a change it is refused at its key (there is no
// change to close before the window).
func TestVerifyAfterClose(t *testing.T) {
	gated := verifyHealth + `
    requires_change: true
    change: {type: normal, cmdb_ci: checkout}
    verify: {window: 30m, on_failure: rollback, after_close: true}`
	cfg, err := loadMetricConfig(t, "0s", gated)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Environments[0].Verify; v == nil || !v.AfterClose || v.Window.String() != "30m0s" || v.OnFailure != "rollback" {
		t.Fatalf("verify = %+v", v)
	}
	cfg, err = loadMetricConfig(t, "0s", verifyHealth+`
    requires_change: true
    change: {type: normal, cmdb_ci: checkout}
    verify: {window: 30m}`)
	if err != nil || cfg.Environments[0].Verify.AfterClose {
		t.Fatalf("after_close defaults to false: %+v, %v", cfg.Environments[0].Verify, err)
	}
	for name, tc := range map[string]struct{ health, want string }{
		"ungated": {verifyHealth + `
    verify: {window: 30m, after_close: true}`, "environments[0].verify.after_close: only applies on a gated environment"},
		"not a bool": {verifyHealth + `
    requires_change: true
    change: {type: normal, cmdb_ci: checkout}
    verify: {window: 30m, after_close: sometimes}`, "after_close"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadMetricConfig(t, "0s", tc.health)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
