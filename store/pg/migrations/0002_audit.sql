-- audit_events.mac: HMAC-SHA256 of the event's hash under a key held
-- outside the database (DAYTWO_AUDIT_KEY or audit.key_file). Events
-- written without a key keep ''. See store/audit.go.
ALTER TABLE audit_events ADD COLUMN mac TEXT NOT NULL DEFAULT '';
