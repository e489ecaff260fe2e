package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
)

// ReplayStatus is the progress of a replay.
type ReplayStatus struct {
	From      uint64    `json:"from_seq"`
	To        uint64    `json:"to_seq"` // the stream's last sequence when the replay started
	At        uint64    `json:"at_seq"` // the last sequence handled
	Delivered int       `json:"delivered"`
	Started   time.Time `json:"started"`
	Done      bool      `json:"done"`
	Error     string    `json:"error,omitempty"`
}

// ReplayFrom says where a replay starts: a stream sequence, or (Seq 0) a
// time.
type ReplayFrom struct {
	Seq  uint64
	Time time.Time
}

// Replay re-delivers an endpoint's events from a stream sequence or a
// time up to the stream's end when it was asked, in stream order, with the
// same ids (receivers that dedupe on webhook-id ignore what they already
// have). It runs in the background; Replays reports progress. An event
// that still fails after three quick attempts stops the replay there.
func (m *Manager) Replay(ctx context.Context, id string, from ReplayFrom) (ReplayStatus, error) {
	ep, err := m.Store.Get(ctx, id)
	if err != nil {
		return ReplayStatus{}, err
	}
	if from.Seq == 0 && from.Time.IsZero() {
		return ReplayStatus{}, fmt.Errorf("%w: replay needs a stream sequence or a time", ErrInvalid)
	}
	st, err := m.JS.Stream(ctx, m.stream())
	if err != nil {
		return ReplayStatus{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return ReplayStatus{}, err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: ep.Subjects(m.prefix())}
	if from.Seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.Seq
	} else {
		t := from.Time
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	status := &ReplayStatus{From: from.Seq, To: info.State.LastSeq, Started: m.now().UTC()}
	m.mu.Lock()
	if m.replays == nil {
		m.replays = map[string]*ReplayStatus{}
	}
	if r := m.replays[id]; r != nil && !r.Done {
		m.mu.Unlock()
		return *r, fmt.Errorf("%w: a replay of %s is running", ErrInvalid, id)
	}
	m.replays[id] = status
	snapshot := *status
	m.mu.Unlock()
	if info.State.LastSeq == 0 || (from.Seq > info.State.LastSeq) {
		m.finish(id, nil)
		return snapshot, nil
	}
	oc, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		m.finish(id, err)
		return snapshot, err
	}
	go m.replay(context.WithoutCancel(ctx), ep, oc, status.To)
	return snapshot, nil
}

func (m *Manager) replay(ctx context.Context, ep Endpoint, oc jetstream.Consumer, to uint64) {
	for {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := oc.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			m.finish(ep.ID, fmt.Errorf("reading the stream: %w", err))
			return
		}
		md, err := msg.Metadata()
		if err != nil {
			m.finish(ep.ID, err)
			return
		}
		seq := md.Sequence.Stream
		if seq > to {
			m.finish(ep.ID, nil)
			return
		}
		e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		cid, _, _ := events.CompanyFromSubject(msg.Subject())
		if err == nil && ep.Matches(cid, e.Type()) {
			var res Result
			for attempt := 1; attempt <= 3; attempt++ {
				if cur, err := m.Store.Get(ctx, ep.ID); err == nil {
					ep = cur // secrets rotated meanwhile
				}
				now := m.now()
				res = Send(ctx, m.Client(mustURL(ep.URL)), ep, e, now)
				a := attemptOf(e, seq, attempt, now, res, "replayed")
				if !res.Delivered() {
					a.Outcome = "replay_failed"
				}
				if m.Log != nil {
					_ = m.Log.Append(ctx, ep.ID, a)
				}
				if res.Delivered() {
					break
				}
				time.Sleep(time.Duration(attempt) * time.Second)
			}
			if !res.Delivered() {
				m.finish(ep.ID, fmt.Errorf("event %s (stream sequence %d) not accepted: %s", e.ID(), seq, res))
				return
			}
			m.mu.Lock()
			m.replays[ep.ID].Delivered++
			m.mu.Unlock()
		}
		m.mu.Lock()
		m.replays[ep.ID].At = seq
		m.mu.Unlock()
		if seq >= to {
			m.finish(ep.ID, nil)
			return
		}
	}
}

func (m *Manager) finish(id string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.replays[id]
	r.Done = true
	if err != nil {
		r.Error = err.Error()
		m.log().Warn("replay stopped", "endpoint", id, "error", err)
	}
}

// Replays returns the status of an endpoint's last replay on this process.
func (m *Manager) Replays(id string) (ReplayStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.replays[id]
	if !ok {
		return ReplayStatus{}, false
	}
	return *r, true
}

// TestEventType is the type of "send test event".
const TestEventType = "incasso.test"

// SendTest sends one signed test event (type incasso.test) to an endpoint,
// enabled or not, and records it in the log.
func (m *Manager) SendTest(ctx context.Context, id string) (Attempt, error) {
	ep, err := m.Store.Get(ctx, id)
	if err != nil {
		return Attempt{}, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	e := event.New()
	e.SetID("test_" + hex.EncodeToString(b))
	e.SetSource("/incasso")
	e.SetType(TestEventType)
	now := m.now()
	e.SetTime(now.UTC())
	if err := e.SetData(event.ApplicationJSON, map[string]string{"message": "Incasso test event: if you can read this, the endpoint works and the signature verifies."}); err != nil {
		return Attempt{}, err
	}
	res := Send(ctx, m.Client(mustURL(ep.URL)), ep, e, now)
	a := attemptOf(e, 0, 1, now, res, "test")
	if m.Log != nil {
		_ = m.Log.Append(ctx, id, a)
	}
	if !res.Delivered() {
		return a, errors.New("the endpoint did not accept the test event: " + res.String())
	}
	return a, nil
}
