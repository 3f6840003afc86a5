package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/daytwo/daytwo/store"
	"github.com/daytwo/daytwo/store/storetest"
)

// TestContract runs the store contract (store/storetest) on SQLite.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) storetest.Store {
		path := filepath.Join(t.TempDir(), "daytwo.db")
		if o.Same != nil {
			path = o.Same.(*store.DB).Path()
		}
		db, err := store.Open(context.Background(), path, store.Options{Clock: o.Clock, AuditKey: o.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
