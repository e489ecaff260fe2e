package dunning_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/interest"
	"github.com/incasso-io/incasso/internal/memstore"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// timerWakeups is the durable timers' contract (one wake-up per case, a new
// schedule replaces the old one) on the bubble's clock.
type timerWakeups struct {
	mu     sync.Mutex
	wake   func(cid, id int64)
	timers map[[2]int64]*time.Timer
}

func (w *timerWakeups) Schedule(_ context.Context, cid, id int64, at time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]int64{cid, id}
	if t := w.timers[k]; t != nil {
		t.Stop()
	}
	if !at.IsZero() {
		w.timers[k] = time.AfterFunc(time.Until(at), func() { w.wake(cid, id) })
	}
	return nil
}

// stillOwed answers the freshness check: the invoice is unpaid.
type stillOwed struct{ inv rcv.Invoice }

func (s stillOwed) Invoice(context.Context, int64, int64) (rcv.Invoice, error) { return s.inv, nil }

// sendLog records when each stage went out.
type sendLog struct {
	mu   sync.Mutex
	sent []sentAt
}

type sentAt struct {
	stage string
	at    time.Time
}

func (l *sendLog) Send(_ context.Context, m dunning.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, sentAt{m.Stage, time.Now()})
	return nil
}

// The engine wakes itself at the right instants, on its own timers and
// nothing else: every stage at the start of the send window on a business
// day, a promise to pay holds the reminders until it expires and the
// workflow resumes by itself the next morning, formal steps enter the
// approval queue at their instant (the hand-off only once the notice's
// term has expired) and go out when approved. Time is the synctest
// bubble's (it starts on Saturday 1 January 2000, UTC).
func TestEngineWakesItselfOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := func(s string) time.Time {
			v, err := time.ParseInLocation("2006-01-02 15:04", s, rcv.Rome)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		sleepUntil := func(s string) { time.Sleep(time.Until(at(s))); synctest.Wait() }
		cal, err := calendar.New("09:00", "18:00")
		if err != nil {
			t.Fatal(err)
		}
		inv := rcv.Invoice{CompanyID: 1, ID: 10, Kind: rcv.KindInvoice, Number: "7", Date: rcv.MustDate("1999-12-20"),
			Gross: decimal.NewFromInt(1220), Client: rcv.Client{ID: 5, Name: "Rossi S.r.l.", Email: "amm@rossi.example", PEC: "rossi@pec.example"},
			Installments: []rcv.Installment{{ID: 1, DueDate: rcv.MustDate("2000-01-19"), Amount: decimal.NewFromInt(1220), Status: rcv.NotPaid}}}
		log := &sendLog{}
		wakeups := &timerWakeups{timers: map[[2]int64]*time.Timer{}}
		eng := &dunning.Engine{
			Cases: &memstore.Cases{}, Clients: &memstore.Clients{}, Outbox: &memstore.Outbox{}, Audit: &memstore.Audit{},
			Outcomes: &outcomes{}, Wakeups: wakeups,
			Fresh:    func(int64) (dunning.Fresh, error) { return stillOwed{inv}, nil },
			Senders:  map[policy.Channel]dunning.Sender{policy.Email: log, policy.PEC: log, policy.Webhook: log},
			Policies: policy.Default(), Calendar: cal, Rates: interest.Default(),
		}
		wakeups.wake = func(cid, id int64) {
			if err := eng.Wake(context.Background(), cid, id); err != nil {
				t.Errorf("wake at %v: %v", time.Now().In(rcv.Rome), err)
			}
		}
		ctx := context.Background()

		sleepUntil("2000-01-03 10:00") // Monday
		if err := eng.HandleEvent(ctx, rcv.InvoiceCreated, inv); err != nil {
			t.Fatal(err)
		}
		sleepUntil("2000-01-21 10:00") // after the first reminder
		if _, err := eng.SetState(ctx, 1, 10, dunning.Promised, rcv.MustDate("2000-01-31"), "maria", "promised by phone"); err != nil {
			t.Fatal(err)
		}
		// The formal notice: 15 days after the due date, but at least 5
		// after the last reminder (1 February): Sunday 6th, so Monday 7th,
		// where it waits for approval.
		sleepUntil("2000-02-07 12:00")
		approve := func(stage string, since string) {
			t.Helper()
			q, err := eng.Approvals(ctx, 1)
			if err != nil || len(q) != 1 || q[0].Awaiting.Stage != stage || !q[0].Awaiting.Since.Equal(at(since)) {
				t.Fatalf("approval queue: %+v, %v; want %s since %s", q, err, stage, since)
			}
			if _, err := eng.DecideApproval(ctx, 1, 10, dunning.Approve, rcv.Date{}, "maria", "checked"); err != nil {
				t.Fatal(err)
			}
		}
		approve("formal_notice", "2000-02-07 09:00")
		// The hand-off: its day is 30 days after the due date (18
		// February), but the notice gave 15 days from its delivery: the
		// day after they expire, Wednesday 23rd.
		sleepUntil("2000-02-23 10:00")
		approve("handoff", "2000-02-23 09:00")
		sleepUntil("2000-03-31 10:00")

		log.mu.Lock()
		defer log.mu.Unlock()
		for _, s := range log.sent {
			t.Logf("%-16s %v", s.stage, s.at.In(rcv.Rome).Format("Mon 2006-01-02 15:04"))
		}
		want := []sentAt{
			{"courtesy", at("2000-01-17 09:00")},        // 3 days before the due date is a Sunday: Monday
			{"first_reminder", at("2000-01-20 09:00")},  // due date + 1
			{"second_reminder", at("2000-02-01 09:00")}, // held by the promise (until 31 January), then the next morning
			{"formal_notice", at("2000-02-07 12:00")},   // approved at noon
			{"handoff", at("2000-02-23 10:00")},         // approved at ten
		}
		if len(log.sent) != len(policy.Default().For(1).Stages) {
			t.Fatalf("sent %v, want one message per stage", log.sent)
		}
		for i, w := range want {
			if g := log.sent[i]; g.stage != w.stage || !g.at.Equal(w.at) {
				t.Errorf("message %d: %s at %v, want %s at %v", i, g.stage, g.at.In(rcv.Rome), w.stage, w.at)
			}
		}
		for i, s := range log.sent {
			local := s.at.In(rcv.Rome)
			if !cal.IsBusinessDay(rcv.DateIn(s.at, rcv.Rome)) || !cal.InWindow(s.at) {
				t.Errorf("%s sent at %v: not in the send window of a business day", s.stage, local)
			}
			if i > 0 && s.at.Sub(log.sent[i-1].at) < 3*24*time.Hour {
				t.Errorf("%s sent %v after %s: closer than the minimum gap", s.stage, s.at.Sub(log.sent[i-1].at), log.sent[i-1].stage)
			}
		}
	})
}
