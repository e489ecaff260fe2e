package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/delivery"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// EndpointsBucket keeps the HTTP delivery endpoints (package delivery).
const EndpointsBucket = "incasso_endpoints"

// Endpoints implements delivery.Store.
type Endpoints struct{ KV jetstream.KeyValue }

var _ delivery.Store = (*Endpoints)(nil)

// NewEndpoints opens the bucket.
func NewEndpoints(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Endpoints, error) {
	kv, err := bucket(ctx, js, EndpointsBucket, "HTTP delivery endpoints: URL, filter, signing secrets, state", c)
	return &Endpoints{KV: kv}, err
}

// List implements delivery.Store, ordered by creation.
func (s *Endpoints) List(ctx context.Context) ([]delivery.Endpoint, error) {
	keys, err := listKeys(ctx, s.KV)
	if err != nil {
		return nil, err
	}
	var out []delivery.Endpoint
	for _, k := range keys {
		var e delivery.Endpoint
		rev, err := getJSON(ctx, s.KV, k, &e)
		if err != nil {
			return nil, err
		}
		if rev != 0 {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b delivery.Endpoint) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get implements delivery.Store.
func (s *Endpoints) Get(ctx context.Context, id string) (delivery.Endpoint, error) {
	var e delivery.Endpoint
	rev, err := getJSON(ctx, s.KV, id, &e)
	if err == nil && rev == 0 {
		err = fmt.Errorf("%w: %s", delivery.ErrNotFound, id)
	}
	return e, err
}

// Create implements delivery.Store.
func (s *Endpoints) Create(ctx context.Context, e delivery.Endpoint) error {
	_, err := putJSON(ctx, s.KV, e.ID, e, 0)
	return err
}

// Update implements delivery.Store.
func (s *Endpoints) Update(ctx context.Context, id string, f func(*delivery.Endpoint) error) (delivery.Endpoint, error) {
	for attempt := 0; attempt < 20; attempt++ {
		var e delivery.Endpoint
		rev, err := getJSON(ctx, s.KV, id, &e)
		if err != nil {
			return e, err
		}
		if rev == 0 {
			return e, fmt.Errorf("%w: %s", delivery.ErrNotFound, id)
		}
		if err := f(&e); err != nil {
			return e, err
		}
		if _, err = putJSON(ctx, s.KV, id, e, rev); err == nil {
			return e, nil
		}
		if !errors.Is(err, rcv.ErrConflict) {
			return e, err
		}
	}
	return delivery.Endpoint{}, fmt.Errorf("kvstore: endpoint %s: too many concurrent updates", id)
}

// Delete implements delivery.Store.
func (s *Endpoints) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	if err := s.KV.Delete(ctx, id); err != nil {
		return fmt.Errorf("kvstore: delete endpoint %s: %w", id, err)
	}
	return nil
}

// DeliveryLogStream keeps each endpoint's recent attempts.
const DeliveryLogStream = "INCASSO_DELIVERIES"

// DeliveryLog implements delivery.Log on a stream with subject
// incasso.deliveries.<endpoint>: the last 1,000 attempts per endpoint, for
// 30 days.
type DeliveryLog struct {
	JS     jetstream.JetStream
	Stream jetstream.Stream
}

var _ delivery.Log = (*DeliveryLog)(nil)

// NewDeliveryLog ensures the stream.
func NewDeliveryLog(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*DeliveryLog, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: DeliveryLogStream, Subjects: []string{"incasso.deliveries.>"},
		Description: "HTTP delivery attempts per endpoint", Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
		MaxMsgsPerSubject: 1000, MaxAge: 30 * 24 * time.Hour, Discard: jetstream.DiscardOld})
	if err != nil {
		return nil, fmt.Errorf("kvstore: stream %s: %w", DeliveryLogStream, err)
	}
	return &DeliveryLog{JS: js, Stream: st}, nil
}

// Append implements delivery.Log.
func (l *DeliveryLog) Append(ctx context.Context, id string, a delivery.Attempt) error {
	b, _ := json.Marshal(a)
	if _, err := l.JS.PublishMsg(ctx, &nats.Msg{Subject: "incasso.deliveries." + id, Data: b}); err != nil {
		return fmt.Errorf("kvstore: delivery log of %s: %w", id, err)
	}
	return nil
}

// Recent implements delivery.Log: the last limit attempts, oldest first.
func (l *DeliveryLog) Recent(ctx context.Context, id string, limit int) ([]delivery.Attempt, error) {
	subj := "incasso.deliveries." + id
	info, err := l.Stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("kvstore: delivery log of %s: %w", id, err)
	}
	pending := int(info.State.Subjects[subj])
	if pending == 0 {
		return nil, nil
	}
	oc, err := l.Stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, err
	}
	var out []delivery.Attempt
	for read := 0; read < pending; {
		batch, err := oc.Fetch(min(pending-read, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var a delivery.Attempt
			if json.Unmarshal(m.Data(), &a) == nil {
				out = append(out, a)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		read += n
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}
