// Package audit keeps each dunning case's timeline in a JetStream stream,
// one subject per case (incasso.audit.<company>.<invoice>): every change is
// appended, and a timeline is read back in order from the subject.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/dunning"
)

// StreamName is the audit stream.
const StreamName = "INCASSO_AUDIT"

// Stream implements dunning.Audit.
type Stream struct{ JS jetstream.JetStream }

var _ dunning.Audit = (*Stream)(nil)

// New creates or updates the audit stream.
func New(ctx context.Context, js jetstream.JetStream, replicas int) (*Stream, error) {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: StreamName, Description: "dunning case timelines",
		Subjects: []string{"incasso.audit.>"}, Storage: jetstream.FileStorage, Replicas: max(1, replicas)})
	if err != nil {
		return nil, fmt.Errorf("audit: ensure stream: %w", err)
	}
	return &Stream{JS: js}, nil
}

func subject(cid, id int64) string {
	return "incasso.audit." + strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10)
}

// Append implements dunning.Audit.
func (s *Stream) Append(ctx context.Context, cid, id int64, e dunning.AuditEntry) error {
	b, _ := json.Marshal(e)
	if _, err := s.JS.Publish(ctx, subject(cid, id), b); err != nil {
		return fmt.Errorf("audit: append %d/%d: %w", cid, id, err)
	}
	return nil
}

// Timeline implements dunning.Audit.
func (s *Stream) Timeline(ctx context.Context, cid, id int64) ([]dunning.AuditEntry, error) {
	c, err := s.JS.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject(cid, id)}})
	if err != nil {
		return nil, err
	}
	st, err := s.JS.Stream(ctx, StreamName)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject(cid, id)))
	if err != nil {
		return nil, err
	}
	n := int(info.State.Subjects[subject(cid, id)])
	var out []dunning.AuditEntry
	for len(out) < n {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, err
		}
		got := 0
		for m := range batch.Messages() {
			var e dunning.AuditEntry
			if json.Unmarshal(m.Data(), &e) == nil {
				out = append(out, e)
			}
			got++
		}
		if got == 0 {
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				return out, err
			}
			break
		}
	}
	return out, nil
}
