package inbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natstest"
)

// What an earlier version's work-queue inbox still holds is moved to the
// routed stream (once, even if two pollers migrate at the same time) and
// the old stream is deleted.
func TestEnsureMovesTheLegacyInbox(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: legacyStream, Subjects: []string{legacyPrefix + ">"},
		Retention: jetstream.WorkQueuePolicy, Duplicates: 4 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"n1", "n2"} {
		m := &nats.Msg{Subject: legacyPrefix + "1000001", Data: []byte(`{"id":"` + id + `","company_id":1000001,"ids":[` + string(rune('1'+i)) + `]}`), Header: nats.Header{}}
		m.Header.Set(nats.MsgIdHdr, id)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	// A consumer must exist for interest retention to keep the copies.
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{Durable: "poller-webhooks-all", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, js); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, js); err != nil { // a second poller migrating: nothing left to do
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, legacyStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("legacy stream still there: %v", err)
	}
	st, _ := js.Stream(ctx, StreamName)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 2 {
		t.Fatalf("%d notifications moved, want 2", info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, info.State.FirstSeq)
	if err != nil || m.Subject != Subject(1000001) {
		t.Fatalf("moved to %v (%v)", m, err)
	}
}
