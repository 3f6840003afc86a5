// Package snowsim is a faithful ServiceNow simulator: an http.Handler (and a
// small Server wrapper) that behaves like a ServiceNow instance for the parts
// daytwo and third-party clients use, quirks included. It is built from
// shared/SERVICENOW.md, not from what our client sends.
//
// # What it serves
//
//   - POST /oauth_token.do: form-encoded password, refresh_token and
//     client_credentials grants; expires_in 1799; the same access token until
//     it expires; every failure is 401
//     {"error_description":"access_denied","error":"server_error"}.
//   - Table API /api/now/table/{table}[/{sys_id}] (also /api/now/v1/table and
//     /api/now/v2/table) for change_request, incident, sysapproval_approver,
//     sysapproval_group, sys_user, sys_user_group, sys_user_grmember, cmdb_ci,
//     sys_journal_field, sys_audit_delete, std_change_record_producer,
//     std_change_producer_version, cmn_schedule, cmn_schedule_span,
//     sys_attachment, task_ci (affected CIs: task, ci_item) and
//     task_cmdb_ci_service (impacted services: task, cmdb_ci_service).
//   - Change Management API /api/sn_chg_rest[/v1]/change/...
//   - Attachment API /api/now/attachment...
//   - A minimal Aggregate API: GET /api/now/stats/{table}?sysparm_count=true.
//   - Loopback-only admin endpoints under /__admin/ (see serveAdmin).
//
// # Decisions where the reference is silent or ambiguous
//
//   - Link header: modern behaviour. No Link header when the whole result
//     fits in one page; otherwise first and last always, prev only after the
//     first page and next only before the last page (never negative offsets).
//   - sysparm_no_count=true omits X-Total-Count.
//   - Accept is required (400 when missing, 406 when it excludes JSON);
//     Content-Type application/json is required on Table API writes (400
//     when missing, 415 otherwise). The Change API accepts an empty POST body
//     without Content-Type.
//   - Setting a change to the state it is already in is a no-op, not an
//     illegal transition: the platform's state-transition rule only runs when
//     the state changes (OCTO-9545 was a customer workflow racing the client).
//   - Illegal transitions (strict): Table API 403 "Operation Failed" with the
//     business-rule detail; Change API 403 with the "Change Request record
//     could not be updated. ..." message and detail "". Lenient: 200, the
//     other fields are written, state stays. A change must be created in New.
//   - Moves that belong to the approval workflow (normal Assess→Authorize,
//     Assess→Scheduled, Authorize→Scheduled; emergency →Scheduled) are
//     refused to clients like illegal jumps; nextstates lists them as
//     automatic transitions.
//   - Approvals: per stage one sysapproval_group row plus one requested
//     sysapproval_approver row per group member; the first approval of a group
//     approves it (the others become not_required, "No Longer Required"), as in
//     the base normal workflow's group approvals; any rejection rejects. A
//     normal change entering Assess asks its assignment group; then Authorize
//     asks "CAB Approval" when risk is 1/2/3 (Very High/High/Moderate; default
//     risk is 3), otherwise the assignment group's manager — skipped when that
//     manager approved Assess. All approved → Scheduled with approval=approved.
//     Rejection → New, approval=rejected, pending approvals cancelled.
//     Emergency New→Authorize asks "CAB Approval". A stage with nobody to
//     ask passes at once. Standard changes are created with approval=approved.
//   - Incident priority is recomputed from impact × urgency on every write;
//     change priority is kept as written (default 4), as on a real instance.
//   - Conflict checks run in the background: POST answers with the worker's
//     sys_id; the check completes Options.ConflictDelay later (default 2s),
//     when the worker or the results are next read. GET describes a running
//     check (job_status "1", the previous results) or the last completed one
//     (job_status "2"); status is "Conflict" after any run, even with an
//     empty list, as documented. The worker's state is 2 In-Progress,
//     3 Complete or 4 Error. conflict_status on the change is "Conflict" or
//     "No Conflict" from the list; blackout schedules are
//     cmn_schedule rows of type blackout whose condition (an encoded query on
//     cmdb_ci, empty = every CI) matches the change's CI; spans repeat
//     none/daily/weekdays/weekly/monthly/yearly in UTC. Maintenance windows
//     are not checked.
//   - CI associations (POST /change/{id}/ci) run in the background, as
//     documented: 202 with the worker in state 1 Waiting; the rows appear
//     Options.AssociateDelay later (default 1s). A CI already associated
//     gets no second row (an info message names it); an unknown CI sys_id
//     is a warning naming it, and when no CI is valid the worker ends in
//     4 Error. GET /change/{id}/ci requires association_type (affected or
//     impacted; offering is not simulated). Table API inserts into task_ci
//     are not de-duplicated. Options.NoChangeCIEndpoint plays an older
//     release without the endpoint. See changeCIs.
//   - Change API values are strings by default; Options.TypedChangeValues
//     switches to typed values (booleans, numbers like 3.0) as in the samples.
//     Create and PATCH answers carry __meta.ignoredFields inside the record.
//   - ACL: admin writes everything; itil/change_manager write change_request,
//     incident, cmdb_ci, task_ci, task_cmdb_ci_service and attachments (delete of changes needs
//     change_manager), update sysapproval_approver rows where they are the
//     approver, and change_manager writes cmn_schedule/cmn_schedule_span;
//     sn_change_read only reads. Every other write is the ACL 403.
//
// # Faults
//
// See ParseFaults for the --faults grammar. Faults apply to /api/ only,
// never to /__admin/ or /oauth_token.do.
package snowsim
