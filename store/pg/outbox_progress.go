package pg

import (
	"context"
	"encoding/json"
	"fmt"
)

// SaveOutboxProgress keeps what an attempt at a pending item learnt (e.g.
// the sys_id of a created change whose follow-up failed, when a create
// whose outcome is unknown was sent) in its result, for the next attempt.
// Delivery replaces it with the delivery's result.
func (db *DB) SaveOutboxProgress(ctx context.Context, id int64, progress any) error {
	b, err := json.Marshal(progress)
	if err != nil {
		return fmt.Errorf("store: outbox %d progress: %w", id, err)
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE outbox SET result_json = ? WHERE id = ? AND state = 'pending'`, string(b), id); err != nil {
		return fmt.Errorf("store: outbox %d progress: %w", id, mapErr(err))
	}
	return nil
}
