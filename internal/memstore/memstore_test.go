package memstore_test

import (
	"testing"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/memstore"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/storetest"
)

// The memory stores keep the same contracts as the KV ones (the same
// suites run in kvstore).
func TestConformance(t *testing.T) {
	t.Run("Snapshots", func(t *testing.T) {
		storetest.SnapshotStore(t, func(*testing.T) rcv.SnapshotStore { return &memstore.Snapshots{} })
	})
	t.Run("Holds", func(t *testing.T) {
		storetest.HoldStore(t, func(*testing.T) rcv.HoldStore { return &memstore.Holds{} })
	})
	t.Run("Owners", func(t *testing.T) { storetest.Owners(t, func(*testing.T) rcv.Owners { return &memstore.Owners{} }) })
	t.Run("Batches", func(t *testing.T) { storetest.Batches(t, func(*testing.T) rcv.Batches { return &memstore.Batches{} }) })
	t.Run("Cases", func(t *testing.T) {
		storetest.CaseStore(t, func(*testing.T) dunning.CaseStore { return &memstore.Cases{} })
	})
	t.Run("Clients", func(t *testing.T) {
		storetest.ClientIndex(t, func(*testing.T) dunning.ClientIndex { return &memstore.Clients{} })
	})
	t.Run("Outbox", func(t *testing.T) { storetest.Outbox(t, func(*testing.T) dunning.Outbox { return &memstore.Outbox{} }) })
	t.Run("Modes", func(t *testing.T) {
		storetest.ModeStore(t, func(*testing.T) dunning.ModeStore { return &memstore.Modes{} })
	})
}
