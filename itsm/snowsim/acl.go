package snowsim

// readRoles may read every table.
var readRoles = []string{"admin", "itil", "change_manager", "sn_change_read", "approver_user"}

func canRead(u *user) bool { return u.has(readRoles...) }

// canWrite decides table-level write access; row-level rules (approvers on
// sysapproval_approver) are checked by the callers. op is Insert, Update or
// Delete, as in the ACL error text.
func canWrite(u *user, tableName, op string) bool {
	if u.admin() {
		return true
	}
	if !u.has("itil", "change_manager") {
		return false
	}
	switch tableName {
	case "change_request":
		return op != "Delete" || u.has("change_manager")
	case "incident", "cmdb_ci":
		return op != "Delete"
	case "task_ci", "task_cmdb_ci_service":
		return true // itil adds and removes a change's affected CIs
	case "sys_attachment":
		return true
	case "sysapproval_approver":
		return op == "Update"
	case "cmn_schedule", "cmn_schedule_span":
		return u.has("change_manager")
	}
	return false
}
