package itsm

import (
	"errors"
	"testing"
	"time"

	"github.com/daytwo/daytwo/ops"
)

func TestOpsErrClassification(t *testing.T) {
	tests := map[string]struct {
		err       error
		refused   bool
		retryWait time.Duration
	}{
		"business rule": {&Error{Status: 403, Message: "Operation Failed", Err: ErrBusinessRule}, true, 0},
		"acl":           {&Error{Status: 403, Err: ErrForbidden}, true, 0},
		"not found":     {&Error{Status: 404, Err: ErrNotFound}, true, 0},
		"bad request":   {&Error{Status: 400, Err: ErrBadRequest}, true, 0},
		"rate limited":  {&Error{Status: 429, Err: ErrRateLimited, RetryAfter: 90 * time.Second}, false, 90 * time.Second},
		"unavailable":   {&Error{Status: 503, Err: ErrUnavailable}, false, 0},
		"unknown":       {&Error{Err: ErrOutcomeUnknown}, false, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := opsErr(tc.err)
			if errors.Is(got, ops.ErrRefused) != tc.refused || errors.Is(got, ops.ErrUnavailable) == tc.refused {
				t.Fatalf("opsErr(%v) = %v: refused=%v", tc.err, got, errors.Is(got, ops.ErrRefused))
			}
			var later *ops.RetryLaterError
			if errors.As(got, &later) != (tc.retryWait > 0) || (later != nil && later.After != tc.retryWait) {
				t.Fatalf("retry-after: %v", got)
			}
			if !errors.Is(got, tc.err.(*Error).Err) {
				t.Fatalf("the itsm sentinel must survive: %v", got)
			}
		})
	}
}
