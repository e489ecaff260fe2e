package events_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/incasso-io/incasso/internal/events"
)

// FuzzDecode: arbitrary ce-* headers never panic; what decodes re-encodes
// and decodes to the same attributes.
func FuzzDecode(f *testing.F) {
	f.Add("1.0", "abc", "/fic/companies/1", "invoice.paid", "invoices/1", "2026-11-24T10:00:00Z", "x%20y")
	f.Add("1.0", "%ZZ", "s", "t", "", "", "")
	f.Add("0.3", "", "", "", "", "bad", "%E2%9C%93")
	f.Fuzz(func(t *testing.T, sv, id, src, typ, subj, tm, ext string) {
		m := &nats.Msg{Subject: "incasso.events.1.x", Header: nats.Header{}, Data: []byte(`{}`)}
		for k, v := range map[string]string{"ce-specversion": sv, "ce-id": id, "ce-source": src, "ce-type": typ, "ce-subject": subj, "ce-time": tm, "ce-note": ext} {
			if v != "" {
				m.Header.Set(k, v)
			}
		}
		e, err := events.Decode(m)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		m2, err := events.Encode(m.Subject, e)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		e2, err := events.Decode(m2)
		if err != nil || e2.ID() != e.ID() || e2.Type() != e.Type() || e2.Subject() != e.Subject() || !e2.Time().Equal(e.Time()) {
			t.Fatalf("round trip: %v %v", e2, err)
		}
	})
}
