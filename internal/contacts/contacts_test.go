package contacts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/contacts"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// The cache over the real KV bucket: one FIC read per client until the
// TTL or a webhook's invalidation, a stale answer when FIC fails, an error
// only when nothing was ever read.
func TestCacheReadsThroughAndInvalidates(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	store, err := kvstore.NewContacts(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	email, reads := "a@example.it", 0
	var fail error
	c := &contacts.Cache{Store: store, TTL: time.Hour, Now: func() time.Time { return now },
		Fetch: func(_ context.Context, cid, id int64) (rcv.Client, error) {
			reads++
			if fail != nil {
				return rcv.Client{}, fail
			}
			return rcv.Client{ID: id, Name: "Rossi S.r.l.", Email: email}, nil
		}}
	get := func() rcv.Client {
		t.Helper()
		cl, err := c.Get(ctx, 7, 42)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	steps := []struct {
		name      string
		do        func()
		wantEmail string
		wantReads int
	}{
		{"first read goes to FIC", func() {}, "a@example.it", 1},
		{"then cached", func() { email = "b@example.it" }, "a@example.it", 1},
		{"invalidated by the webhook", func() {
			if err := c.Invalidate(ctx, 7, 42); err != nil {
				t.Fatal(err)
			}
		}, "b@example.it", 2},
		{"expired after the TTL", func() { email, now = "c@example.it", now.Add(61*time.Minute) }, "c@example.it", 3},
		{"FIC down: the stale entry", func() { fail, now = errors.New("fic down"), now.Add(2*time.Hour) }, "c@example.it", 4},
	}
	for _, s := range steps {
		s.do()
		if got := get(); got.Email != s.wantEmail || reads != s.wantReads {
			t.Fatalf("%s: e-mail %q after %d FIC reads, want %q after %d", s.name, got.Email, reads, s.wantEmail, s.wantReads)
		}
	}
	// Never read and FIC down: an error, so the caller keeps the invoice's.
	if _, err := c.Get(ctx, 7, 43); err == nil {
		t.Error("no entry and FIC down: want an error")
	}
}

func TestWithContactsOfTakesTodays(t *testing.T) {
	snap := rcv.Client{ID: 1, Name: "Rossi S.r.l.", Email: "old@example.it", PEC: "old@pec.it", Address: "Via Vecchia 1", City: "Milano"}
	got := snap.WithContactsOf(rcv.Client{ID: 1, Name: "Rossi Group", Email: "new@example.it", Address: "Via Nuova 2", PostalCode: "20100", City: "Milano"})
	want := rcv.Client{ID: 1, Name: "Rossi S.r.l.", Email: "new@example.it", Address: "Via Nuova 2", PostalCode: "20100", City: "Milano"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
