// Package itsm is daytwo's ServiceNow client.
//
// It talks to a real ServiceNow instance (or to itsm/snowsim) over the Table,
// Change Management, Attachment and OAuth APIs through one resty client built
// by New. The client is written against the behaviours documented in
// shared/SERVICENOW.md, in particular the traps of its section 10:
//
//   - every value may be a string, a number, a boolean, null or a
//     {value, display_value, link} object, so records decode into the lenient
//     Value type and from there into concrete structs (Change, Approval, ...);
//   - errors become *Error values that match sentinels (ErrUnauthorized,
//     ErrForbidden, ErrBusinessRule, ErrNotFound, ErrRateLimited,
//     ErrUnavailable, ErrBadRequest, ErrOutcomeUnknown) with errors.Is;
//   - idempotent calls are retried with exponential backoff and full jitter on
//     429, 502, 503, 504 and connection errors, bounded in count and total
//     wait; non-idempotent calls (creates, work notes, attachments) are never
//     blindly retried: an unknown outcome is reported as ErrOutcomeUnknown so
//     that the caller (the outbox) can look the correlation id up first;
//   - an HTML answer to a JSON request (hibernating instance, SSO page) is
//     ErrUnavailable, never a decode failure;
//   - the mirror is fed by a keyset pager (SyncTable, SyncChanges) on
//     (sys_updated_on, sys_id) with a frozen upper bound, so rows sharing a
//     second are neither lost nor re-sent forever, and an idle cycle costs one
//     request per table.
//
// Secrets (passwords, client secrets, tokens) never appear in errors or logs.
package itsm
