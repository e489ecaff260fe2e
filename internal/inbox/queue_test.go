package inbox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

type fakeMsg struct {
	acks, naks, progress atomic.Int32
}

func (m *fakeMsg) Ack() error        { m.acks.Add(1); return nil }
func (m *fakeMsg) Nak() error        { m.naks.Add(1); return nil }
func (m *fakeMsg) InProgress() error { m.progress.Add(1); return nil }

func run(t *testing.T, q *Queue) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// One company's burst does not hold up another company's notification
// (issue #12, repro 4: a 1-id notification waited behind one with 3,000).
func TestQueueServesCompaniesFairly(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(map[bool]string{false: "one by one", true: "batched"}[batched], func(t *testing.T) {
			const fetch = 2 * time.Millisecond
			var mu sync.Mutex
			handledB := time.Time{}
			q := &Queue{Workers: 4, PerCompany: 2, Refresh: func(ctx context.Context, cid, id int64) error {
				time.Sleep(fetch)
				if cid == 2 {
					mu.Lock()
					handledB = time.Now()
					mu.Unlock()
				}
				return nil
			}}
			if batched {
				q.RefreshMany = func(ctx context.Context, cid int64, ids []int64) ([]int64, error) {
					time.Sleep(time.Duration(len(ids)/100) * fetch) // a page per 100 documents
					return ids, nil
				}
			}
			run(t, q)
			big := make([]int64, 3000)
			for i := range big {
				big[i] = int64(i + 1)
			}
			a, b := &fakeMsg{}, &fakeMsg{}
			q.Add(a, 1, big)
			time.Sleep(5 * fetch)
			sent := time.Now()
			q.Add(b, 2, []int64{9})
			waitUntil(t, "company 2's notification", 10*time.Second, func() bool { return b.acks.Load() == 1 })
			mu.Lock()
			wait := handledB.Sub(sent)
			mu.Unlock()
			if wait > 20*fetch {
				t.Errorf("company 2 waited %v behind company 1's burst", wait)
			}
			waitUntil(t, "company 1's notification", 30*time.Second, func() bool { return a.acks.Load() == 1 })
			t.Logf("company 2 handled %v after it arrived", wait)
		})
	}
}

// 5,000 notifications about 500 documents cost 500 fetches, and each
// notification is acknowledged once its documents are handled (repro 4:
// 5,000 GETs).
func TestQueueCoalescesPendingDocuments(t *testing.T) {
	var calls atomic.Int32
	q := &Queue{Workers: 4, Refresh: func(ctx context.Context, cid, id int64) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}}
	msgs := make([]*fakeMsg, 5000)
	for i := range msgs {
		msgs[i] = &fakeMsg{}
		q.Add(msgs[i], 7, []int64{int64(i%500 + 1)})
	}
	run(t, q)
	waitUntil(t, "every notification acknowledged", 20*time.Second, func() bool {
		for _, m := range msgs {
			if m.acks.Load() != 1 {
				return false
			}
		}
		return true
	})
	if n := calls.Load(); n != 500 {
		t.Errorf("%d fetches for 500 documents", n)
	}
}

// A notification that arrives while its document is being fetched gets a
// fetch of its own: the one in flight may predate the change.
func TestQueueRefetchesDocumentAnnouncedWhileInFlight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	q := &Queue{Workers: 2, Refresh: func(ctx context.Context, cid, id int64) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}}
	run(t, q)
	first, second := &fakeMsg{}, &fakeMsg{}
	q.Add(first, 1, []int64{5})
	<-started
	q.Add(second, 1, []int64{5})
	close(release)
	waitUntil(t, "both acknowledged", 5*time.Second, func() bool { return first.acks.Load() == 1 && second.acks.Load() == 1 })
	if calls.Load() != 2 {
		t.Errorf("%d fetches, want 2", calls.Load())
	}
}

// Failures are retried with backoff; a quota error pauses the company
// until its reset; nothing is acknowledged before it is handled; stopping
// Naks what is left for another replica.
func TestQueueRetriesPausesAndHandsBackOnStop(t *testing.T) {
	var calls atomic.Int32
	quota := errors.New("quota")
	q := &Queue{Workers: 1, RetryAfter: func(err error) (time.Duration, bool) {
		if errors.Is(err, quota) {
			return 200 * time.Millisecond, true
		}
		return 0, false
	}, Refresh: func(ctx context.Context, cid, id int64) error {
		switch calls.Add(1) {
		case 1:
			return errors.New("HTTP 503")
		case 2:
			return &rcv.QuotaError{Err: quota}
		}
		return nil
	}}
	q.RetryAfter = func(err error) (time.Duration, bool) {
		var qe *rcv.QuotaError
		if errors.As(err, &qe) {
			return 200 * time.Millisecond, true
		}
		return 0, false
	}
	cancel := run(t, q)
	m := &fakeMsg{}
	start := time.Now()
	q.Add(m, 3, []int64{1, 2})
	waitUntil(t, "acknowledged", 10*time.Second, func() bool { return m.acks.Load() == 1 })
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the quota pause was not honoured (%v)", d)
	}
	if m.naks.Load() != 0 || calls.Load() != 4 {
		t.Errorf("naks %d calls %d", m.naks.Load(), calls.Load())
	}
	// A notification still pending when the queue stops is handed back.
	block := make(chan struct{})
	q.Refresh = func(ctx context.Context, cid, id int64) error {
		if id == 99 {
			<-block
		}
		return errors.New("down")
	}
	left := &fakeMsg{}
	q.Add(left, 3, []int64{98})
	cancel()
	close(block)
	waitUntil(t, "handed back", 5*time.Second, func() bool { return left.naks.Load() == 1 })
	if left.acks.Load() != 0 {
		t.Error("an unhandled notification was acknowledged")
	}
	late := &fakeMsg{}
	q.Add(late, 3, []int64{1})
	if late.naks.Load() != 1 {
		t.Error("a notification added after stop was not handed back")
	}
}

// A burst of small notifications (1,000 of one document each, over half a
// second) is gathered into batches instead of 1,000 single fetches.
func TestQueueGathersABurstIntoBatches(t *testing.T) {
	var singles, batches, batched atomic.Int32
	q := &Queue{Workers: 4, Linger: 300 * time.Millisecond,
		Refresh: func(ctx context.Context, cid, id int64) error {
			singles.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		},
		RefreshMany: func(ctx context.Context, cid int64, ids []int64) ([]int64, error) {
			batches.Add(1)
			batched.Add(int32(len(ids)))
			time.Sleep(20 * time.Millisecond)
			return ids, nil
		}}
	run(t, q)
	msgs := make([]*fakeMsg, 1000)
	for i := range msgs {
		msgs[i] = &fakeMsg{}
		q.Add(msgs[i], 5, []int64{int64(i + 1)})
		if i%100 == 99 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil(t, "every notification acknowledged", 20*time.Second, func() bool {
		for _, m := range msgs {
			if m.acks.Load() != 1 {
				return false
			}
		}
		return true
	})
	if singles.Load() > 40 || batched.Load() < 960 {
		t.Fatalf("%d single fetches, %d batches of %d documents", singles.Load(), batches.Load(), batched.Load())
	}
	t.Logf("%d single fetches, %d batches (%d documents)", singles.Load(), batches.Load(), batched.Load())
}
