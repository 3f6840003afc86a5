package ops

import (
	"errors"
	"strings"
	"testing"
)

func TestResolveEnvironment(t *testing.T) {
	envs := []Environment{
		{Name: "checkout/staging", Service: "checkout", Stage: "staging"},
		{Name: "checkout/production", Service: "checkout", Stage: "production"},
		{Name: "payments/production", Service: "payments", Stage: "production"},
	}
	for _, c := range []struct{ service, name, want, err string }{
		{"", "checkout/production", "checkout/production", ""},
		{"", "staging", "checkout/staging", ""},
		{"payments", "production", "payments/production", ""},
		{"checkout", "checkout/production", "checkout/production", ""},
		{"", "production", "", "2 services run in \"production\" (checkout, payments): name one, e.g. checkout/production"},
		{"search", "production", "", "no service named \"search\" (configured: checkout, payments)"},
		{"payments", "staging", "", "service payments does not run in \"staging\" (it runs in: production)"},
		{"", "dev", "", "no environment named \"dev\""},
		{"payments", "checkout/production", "", "service payments does not run in \"checkout/production\""},
	} {
		e, err := ResolveEnvironment(envs, c.service, c.name)
		if c.err == "" {
			if err != nil || e.Name != c.want {
				t.Errorf("%q %q = %q, %v; want %q", c.service, c.name, e.Name, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrNotFound) {
			t.Errorf("%q %q: err = %v; want %q", c.service, c.name, err, c.err)
		}
	}
}
