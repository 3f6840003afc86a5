package snowsim

// fieldKind is the dictionary type of a column; it decides how values are
// compared, rendered as display values and validated on write.
type fieldKind int

const (
	kString   fieldKind = iota
	kInt                // integer (compared numerically)
	kBool               // "true"/"false"
	kChoice             // choice list, value stored
	kRef                // reference to another table, sys_id stored
	kDateTime           // UTC "YYYY-MM-DD HH:MM:SS"
	kDate               // "YYYY-MM-DD"
	kJournal            // write-only journal (work_notes, comments)
	kPassword           // never rendered
)

// choice is one entry of a choice list.
type choice struct{ value, label string }

// field is one column of a table.
type field struct {
	name    string
	kind    fieldKind
	ref     string   // referenced table for kRef
	choices []choice // for kChoice
	numeric bool     // choice values compare as numbers (state, impact...)
	def     string   // default on insert
	system  bool     // sys_* and other fields clients may not write
}

func (f *field) label(v string) string {
	for _, c := range f.choices {
		if c.value == v {
			return c.label
		}
	}
	return v
}

// choiceByLabel maps a label (case-insensitive) or a value to the stored value.
func (f *field) choiceByLabel(s string) (string, bool) {
	for _, c := range f.choices {
		if c.value == s {
			return c.value, true
		}
	}
	for _, c := range f.choices {
		if equalFold(c.label, s) {
			return c.value, true
		}
	}
	return "", false
}

// schema is the dictionary of one table.
type schema struct {
	name    string
	prefix  string // number prefix, e.g. CHG
	display string // display field for references
	fields  []*field
	idx     map[string]int
}

func (s *schema) field(name string) *field {
	i, ok := s.idx[name]
	if !ok {
		return nil
	}
	return s.fields[i]
}

func newSchema(name, prefix, display string, fields ...*field) *schema {
	all := append([]*field{
		{name: "sys_id", kind: kString, system: true},
	}, fields...)
	all = append(all,
		&field{name: "sys_created_on", kind: kDateTime, system: true},
		&field{name: "sys_created_by", kind: kString, system: true},
		&field{name: "sys_updated_on", kind: kDateTime, system: true},
		&field{name: "sys_updated_by", kind: kString, system: true},
		&field{name: "sys_mod_count", kind: kInt, system: true},
	)
	s := &schema{name: name, prefix: prefix, display: display, fields: all, idx: make(map[string]int, len(all))}
	for i, f := range all {
		s.idx[f.name] = i
	}
	return s
}

func str(name string) *field              { return &field{name: name, kind: kString} }
func integer(name, def string) *field     { return &field{name: name, kind: kInt, def: def} }
func boolean(name, def string) *field     { return &field{name: name, kind: kBool, def: def} }
func ref(name, table string) *field       { return &field{name: name, kind: kRef, ref: table} }
func datetime(name string) *field         { return &field{name: name, kind: kDateTime} }
func journal(name string) *field          { return &field{name: name, kind: kJournal} }
func sysField(f *field) *field            { f.system = true; return f }
func withDef(f *field, def string) *field { f.def = def; return f }
func choices(name, def string, numeric bool, cs ...string) *field {
	f := &field{name: name, kind: kChoice, def: def, numeric: numeric}
	for i := 0; i+1 < len(cs); i += 2 {
		f.choices = append(f.choices, choice{cs[i], cs[i+1]})
	}
	return f
}

// Change request states (§4.2).
const (
	stNew       = "-5"
	stAssess    = "-4"
	stAuthorize = "-3"
	stScheduled = "-2"
	stImplement = "-1"
	stReview    = "0"
	stClosed    = "3"
	stCanceled  = "4"
)

var changeStates = []string{
	stNew, "New", stAssess, "Assess", stAuthorize, "Authorize", stScheduled, "Scheduled",
	stImplement, "Implement", stReview, "Review", stClosed, "Closed", stCanceled, "Canceled",
}

func impactField(name string) *field {
	return choices(name, "3", true, "1", "1 - High", "2", "2 - Medium", "3", "3 - Low")
}

// buildSchemas returns the dictionary of every table the simulator serves.
func buildSchemas() map[string]*schema {
	list := []*schema{
		newSchema("change_request", "CHG", "number",
			sysField(str("number")),
			str("short_description"), str("description"),
			choices("type", "normal", false, "normal", "Normal", "standard", "Standard", "emergency", "Emergency"),
			str("chg_model"),
			choices("state", stNew, true, changeStates...),
			choices("approval", "not requested", false, "not requested", "Not Yet Requested", "requested", "Requested",
				"approved", "Approved", "rejected", "Rejected"),
			choices("risk", "3", true, "1", "Very High", "2", "High", "3", "Moderate", "4", "Low"),
			impactField("impact"), impactField("urgency"),
			choices("priority", "4", true, "1", "1 - Critical", "2", "2 - High", "3", "3 - Moderate", "4", "4 - Low", "5", "5 - Planning"),
			str("category"),
			ref("assignment_group", "sys_user_group"), ref("assigned_to", "sys_user"),
			ref("requested_by", "sys_user"), ref("opened_by", "sys_user"), datetime("opened_at"),
			ref("closed_by", "sys_user"), datetime("closed_at"),
			ref("cmdb_ci", "cmdb_ci"),
			// parent is task's reference to another task (SERVICENOW.md
			// §1.4's change_request sample carries it); the simulator has
			// no task table, so it points at change_request.
			ref("parent", "change_request"),
			datetime("start_date"), datetime("end_date"), datetime("work_start"), datetime("work_end"),
			choices("close_code", "", false, "successful", "Successful", "successful_issues", "Successful with issues",
				"unsuccessful", "Unsuccessful"),
			str("close_notes"),
			journal("work_notes"), journal("comments"), journal("comments_and_work_notes"),
			boolean("on_hold", "false"), str("on_hold_reason"),
			choices("conflict_status", "Not Run", false, "Not Run", "Not Run", "Conflict", "Conflict", "No Conflict", "No Conflict"),
			datetime("conflict_last_run"),
			ref("std_change_producer_version", "std_change_producer_version"),
			boolean("cab_required", "false"), &field{name: "cab_date", kind: kDate},
			str("justification"), str("implementation_plan"), str("backout_plan"), str("test_plan"),
			str("risk_impact_analysis"), str("reason"),
			str("correlation_id"), str("correlation_display"),
			boolean("active", "true"),
			choices("upon_approval", "proceed", false, "proceed", "Proceed to Next Task", "do_nothing", "Wait for a User to Close this task"),
			choices("upon_reject", "cancel", false, "cancel", "Cancel all future Tasks", "goto", "Go to a previous Task"),
			boolean("production_system", "false"), boolean("outside_maintenance_schedule", "false"),
			boolean("unauthorized", "false"),
			sysField(withDef(str("sys_class_name"), "change_request")),
		),
		newSchema("incident", "INC", "number",
			sysField(str("number")),
			str("short_description"), str("description"),
			ref("caller_id", "sys_user"),
			choices("state", "1", true, "1", "New", "2", "In Progress", "3", "On Hold", "6", "Resolved", "7", "Closed", "8", "Canceled"),
			impactField("impact"), impactField("urgency"),
			choices("priority", "5", true, "1", "1 - Critical", "2", "2 - High", "3", "3 - Moderate", "4", "4 - Low", "5", "5 - Planning"),
			choices("severity", "3", true, "1", "1 - High", "2", "2 - Medium", "3", "3 - Low"),
			str("category"), str("subcategory"),
			ref("assignment_group", "sys_user_group"), ref("assigned_to", "sys_user"),
			ref("cmdb_ci", "cmdb_ci"),
			choices("hold_reason", "", true, "1", "Awaiting Caller", "3", "Awaiting Problem", "4", "Awaiting Vendor", "5", "Awaiting Change"),
			str("close_code"), str("close_notes"),
			journal("work_notes"), journal("comments"), journal("comments_and_work_notes"),
			boolean("active", "true"),
			ref("opened_by", "sys_user"), datetime("opened_at"),
			ref("resolved_by", "sys_user"), datetime("resolved_at"),
			ref("closed_by", "sys_user"), datetime("closed_at"),
			ref("parent", "incident"), ref("caused_by", "change_request"), ref("rfc", "change_request"),
			str("correlation_id"), str("correlation_display"),
			sysField(withDef(str("sys_class_name"), "incident")),
		),
		newSchema("sysapproval_approver", "", "sys_id",
			ref("sysapproval", "change_request"), str("document_id"), str("source_table"),
			ref("approver", "sys_user"), ref("group", "sysapproval_group"),
			choices("state", "requested", false, "not requested", "Not Yet Requested", "requested", "Requested",
				"approved", "Approved", "rejected", "Rejected", "cancelled", "Cancelled",
				"not_required", "No Longer Required", "duplicate", "Duplicate"),
			journal("comments"), datetime("due_date"), datetime("expected_start"),
			str("approval_source"),
		),
		newSchema("sysapproval_group", "", "sys_id",
			ref("parent", "change_request"), ref("assignment_group", "sys_user_group"),
			choices("approval", "requested", false, "not requested", "Not Yet Requested", "requested", "Requested",
				"approved", "Approved", "rejected", "Rejected", "cancelled", "Cancelled"),
		),
		newSchema("sys_user", "", "name",
			str("user_name"), &field{name: "user_password", kind: kPassword},
			str("name"), str("first_name"), str("last_name"), str("email"), str("title"),
			withDef(str("time_zone"), "UTC"), str("roles"),
			boolean("active", "true"), boolean("locked_out", "false"), boolean("web_service_access_only", "false"),
		),
		newSchema("sys_user_group", "", "name",
			str("name"), str("description"), ref("manager", "sys_user"), str("email"), str("type"),
			boolean("active", "true"),
		),
		newSchema("sys_user_grmember", "", "sys_id", ref("group", "sys_user_group"), ref("user", "sys_user")),
		newSchema("cmdb_ci", "", "name",
			str("name"), withDef(str("sys_class_name"), "cmdb_ci"), str("short_description"),
			choices("operational_status", "1", true, "1", "Operational", "2", "Non-Operational", "3", "Repair in Progress",
				"4", "DR Standby", "5", "Ready", "6", "Retired", "7", "Pipeline", "8", "Catalog"),
			choices("install_status", "1", true, "1", "Installed", "2", "On Order", "3", "In Maintenance", "6", "In Stock",
				"7", "Retired", "100", "Absent"),
			str("environment"), ref("support_group", "sys_user_group"), ref("managed_by", "sys_user"),
			ref("owned_by", "sys_user"), str("ip_address"), str("fqdn"),
			ref("maintenance_schedule", "cmn_schedule"),
		),
		newSchema("sys_journal_field", "", "sys_id",
			str("element_id"), str("element"), str("name"), str("value"),
		),
		newSchema("sys_audit_delete", "", "sys_id",
			str("tablename"), str("documentkey"), str("display_value"), str("payload"),
		),
		newSchema("std_change_record_producer", "", "name",
			str("name"), str("short_description"), str("category"), boolean("active", "true"),
			ref("current_version", "std_change_producer_version"),
		),
		newSchema("std_change_producer_version", "", "name",
			str("name"), integer("version", "1"), ref("std_change_producer", "std_change_record_producer"),
			str("template"), boolean("active", "true"),
		),
		newSchema("cmn_schedule", "", "name",
			str("name"), choices("type", "", false, "blackout", "Blackout", "maintenance", "Maintenance", "excluded", "Excluded"),
			withDef(str("time_zone"), "UTC"), str("description"), str("condition"),
		),
		newSchema("cmn_schedule_span", "", "name",
			str("name"), ref("schedule", "cmn_schedule"),
			choices("type", "", false, "blackout", "Blackout", "maintenance", "Maintenance", "exclude", "Excluded"),
			str("show_as"), str("start_date_time"), str("end_date_time"), boolean("all_day", "false"),
			choices("repeat_type", "", false, "daily", "Daily", "weekdays", "Every Weekday", "weekly", "Weekly",
				"monthly", "Monthly", "yearly", "Yearly"),
			str("days_of_week"), str("repeat_until"),
		),
		// task_ci is the Affected CIs related list: one row per (task,
		// CI); task_cmdb_ci_service the Impacted Services/CIs one. The
		// base system's task column references task; the simulator has
		// only change_request as a task table.
		newSchema("task_ci", "", "sys_id", ref("task", "change_request"), ref("ci_item", "cmdb_ci")),
		newSchema("task_cmdb_ci_service", "", "sys_id",
			ref("task", "change_request"), ref("cmdb_ci_service", "cmdb_ci"), boolean("manually_added", "true"),
		),
		newSchema("sys_attachment", "", "file_name",
			str("table_name"), str("table_sys_id"), str("file_name"), str("content_type"),
			integer("size_bytes", "0"), integer("size_compressed", "0"), boolean("compressed", "false"),
			str("hash"),
		),
	}
	m := make(map[string]*schema, len(list))
	for _, s := range list {
		m[s.name] = s
	}
	return m
}
