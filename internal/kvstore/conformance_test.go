package kvstore_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/storetest"
)

// open runs a fresh JetStream server per subtest and opens one store on it.
func open[S any](mk func(context.Context, jetstream.JetStream, kvstore.BucketConfig) (S, error)) func(t *testing.T) S {
	return func(t *testing.T) S {
		t.Helper()
		_, _, js := natstest.MustRunJetStream(t)
		s, err := mk(context.Background(), js, kvstore.BucketConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func as[I, S any](f func(t *testing.T) S) func(t *testing.T) I {
	return func(t *testing.T) I { return any(f(t)).(I) }
}

// The KV stores keep the contracts of the ports they implement.
func TestConformance(t *testing.T) {
	t.Run("Snapshots", func(t *testing.T) { storetest.SnapshotStore(t, as[rcv.SnapshotStore](open(kvstore.NewSnapshots))) })
	t.Run("Holds", func(t *testing.T) { storetest.HoldStore(t, as[rcv.HoldStore](open(kvstore.NewHolds))) })
	t.Run("Owners", func(t *testing.T) { storetest.Owners(t, as[rcv.Owners](open(kvstore.NewOwners))) })
	t.Run("Batches", func(t *testing.T) { storetest.Batches(t, as[rcv.Batches](open(kvstore.NewBatches))) })
	t.Run("Cases", func(t *testing.T) { storetest.CaseStore(t, as[dunning.CaseStore](open(kvstore.NewCases))) })
	t.Run("Clients", func(t *testing.T) { storetest.ClientIndex(t, as[dunning.ClientIndex](open(kvstore.NewClients))) })
	t.Run("Outbox", func(t *testing.T) { storetest.Outbox(t, as[dunning.Outbox](open(kvstore.NewOutbox))) })
	t.Run("Modes", func(t *testing.T) { storetest.ModeStore(t, as[dunning.ModeStore](open(kvstore.NewModes))) })
}
