package dunning_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/audit"
	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/interest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// mailbox is a real SMTP server (emersion/go-smtp) collecting messages.
type mailbox struct {
	mu       sync.Mutex
	msgs     []mailMsg
	fail     int // next N deliveries are refused with 550 (a bounce)
	tempFail int // next N deliveries are deferred with 451 (try again later)
}

type mailMsg struct {
	To   []string
	Data string
}

type session struct {
	mb *mailbox
	m  mailMsg
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{mb: b}, nil }
func (s *session) Mail(string, *smtp.MailOptions) error        { return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	if s.mb.fail > 0 {
		s.mb.fail--
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if s.mb.tempFail > 0 {
		s.mb.tempFail--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.m.To = append(s.m.To, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.m.Data = string(b)
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, s.m)
	s.mb.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.m = mailMsg{} }
func (s *session) Logout() error { return nil }

func (b *mailbox) all() []mailMsg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]mailMsg(nil), b.msgs...)
}

func startSMTP(t *testing.T) (*mailbox, notify.SMTPConfig) {
	mb := &mailbox{}
	s := smtp.NewServer(mb)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	return mb, notify.SMTPConfig{Host: "127.0.0.1", Port: port, From: "crediti@example.it", TLS: "none"}
}

type outcomes struct {
	mu  sync.Mutex
	got []dunning.Outcome
}

func (o *outcomes) Publish(_ context.Context, x dunning.Outcome) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, x)
	return nil
}

func (o *outcomes) of(typ string) []dunning.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []dunning.Outcome
	for _, x := range o.got {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

func (o *outcomes) types() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, x := range o.got {
		out = append(out, x.Type)
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func rome(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, rcv.Rome)
	if err != nil {
		panic(err)
	}
	return t
}

type flakyOutbox struct {
	dunning.Outbox
	failComplete bool
	onSent       func() // called once a delivery is recorded as sent
}

func (f *flakyOutbox) Complete(ctx context.Context, key string, r dunning.OutboxRecord) error {
	if f.failComplete && r.State == dunning.OutboxSent {
		return errors.New("simulated crash after send, before the outbox record")
	}
	err := f.Outbox.Complete(ctx, key, r)
	if err == nil && r.State == dunning.OutboxSent && f.onSent != nil {
		f.onSent()
	}
	return err
}

type env struct {
	sim  *ficsim.Server
	cid  int64
	eng  *dunning.Engine
	mail *mailbox
	pec  *mailbox
	out  *outcomes
	clk  *clock
	obox *flakyOutbox
	src  *fic.Source
}

// kvStores are the engine's stores on JetStream KV, as the service runs them.
type kvStores struct {
	cases   *kvstore.Cases
	clients *kvstore.Clients
	outbox  *kvstore.Outbox
	audit   *audit.Stream
}

func openStores(tb testing.TB, js jetstream.JetStream) kvStores {
	tb.Helper()
	ctx := context.Background()
	var (
		st  kvStores
		err error
	)
	for _, open := range []func() error{
		func() error { st.cases, err = kvstore.NewCases(ctx, js, kvstore.BucketConfig{}); return err },
		func() error { st.clients, err = kvstore.NewClients(ctx, js, kvstore.BucketConfig{}); return err },
		func() error { st.outbox, err = kvstore.NewOutbox(ctx, js, kvstore.BucketConfig{}); return err },
		func() error { st.audit, err = audit.New(ctx, js, 1); return err },
	} {
		if err := open(); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 9, Companies: 1, Invoices: 5})
	client, _ := fic.New(fic.Config{BaseURL: srv.URL, RetryBase: time.Millisecond, Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, nil)}, fic.StaticToken(sim.Token()))
	_, _, js := natstest.MustRunJetStream(t)
	st := openStores(t, js)
	mb, smtpCfg := startSMTP(t)
	pec, pecCfg := startSMTP(t)
	cal, _ := calendar.New("09:00", "18:00")
	e := &env{sim: sim, cid: sim.CompanyIDs()[0], mail: mb, pec: pec, out: &outcomes{}, clk: &clock{}, obox: &flakyOutbox{Outbox: st.outbox}, src: &fic.Source{Client: client}}
	hook := httptest.NewServer(nil)
	t.Cleanup(hook.Close)
	e.eng = &dunning.Engine{
		Cases: st.cases, Clients: st.clients, Outbox: e.obox, Audit: st.audit, Outcomes: e.out,
		Fresh:    func(int64) (dunning.Fresh, error) { return e.src, nil },
		Senders:  map[policy.Channel]dunning.Sender{policy.Email: &notify.Email{Config: smtpCfg}, policy.PEC: &notify.Email{Config: pecCfg, PEC: true}, policy.Webhook: &capture{}},
		Policies: policy.Default(), Calendar: cal, Rates: interest.Default(), Now: e.clk.Now,
		Creditors: func(context.Context, int64) (dunning.Creditor, error) { return testCreditor, nil },
	}
	return e
}

// testCreditor is who the test letters are from.
var testCreditor = dunning.Creditor{Name: "Officine Lombarde S.r.l.", VATNumber: "IT09876543210", Address: "Via dei Mille 12, 20129 Milano (MI)",
	IBAN: "IT60X0542811101000000123456", Signature: "Ufficio crediti"}

// capture is a hand-off channel recording messages.
type capture struct {
	mu   sync.Mutex
	msgs []dunning.Message
}

func (c *capture) Send(_ context.Context, m dunning.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

// invoice creates an invoice in ficsim due on due and feeds invoice.created.
func (e *env) invoice(t *testing.T, due string, clientID int64) rcv.Invoice {
	t.Helper()
	return e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{due}, Date: rcv.MustDate(due).AddDays(-30).String(), ClientID: clientID})
}

// approve checks that a case waits for approval of stage and approves it.
func (e *env) approve(t *testing.T, id int64, stage string) {
	t.Helper()
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, id)
	if c.Awaiting == nil || c.Awaiting.Stage != stage {
		t.Fatalf("at %v: awaiting %+v, want %s in the approval queue", e.clk.Now().In(rcv.Rome), c.Awaiting, stage)
	}
	if _, err := e.eng.DecideApproval(context.Background(), e.cid, id, dunning.Approve, rcv.Date{}, "maria", "checked"); err != nil {
		t.Fatalf("approve %s: %v", stage, err)
	}
}

func (e *env) wake(t *testing.T, at string, id int64) {
	t.Helper()
	e.clk.Set(rome(at))
	if err := e.eng.Wake(context.Background(), e.cid, id); err != nil {
		t.Fatalf("wake at %s: %v", at, err)
	}
}

func TestStageProgressionWithCalendar(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	// Due Friday 2027-01-15: courtesy -3 = Tue 12th; +1 = Sat 16th -> Mon 18th;
	// +8 = Sat 23rd -> Mon 25th; +15 = Sat 30th -> Mon Feb 1st (PEC);
	// +30 = Sun Feb 14th -> Mon 15th (hand-off).
	inv := e.invoice(t, "2027-01-15", 0)
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if c.State != dunning.Active || !c.WakeAt.Equal(rome("2027-01-12 09:00")) {
		t.Fatalf("case %+v", c)
	}
	steps := []struct {
		at         string
		mails, pec int
		approve    string // the stage that waits for approval at this step, approved then
	}{
		{"2027-01-12 08:59", 0, 0, ""},              // before the window
		{"2027-01-12 09:00", 1, 0, ""},              // courtesy
		{"2027-01-12 15:00", 1, 0, ""},              // not twice
		{"2027-01-16 10:00", 1, 0, ""},              // Saturday: nothing
		{"2027-01-18 09:30", 2, 0, ""},              // first reminder, shifted to Monday
		{"2027-01-25 20:00", 2, 0, ""},              // quiet hours
		{"2027-01-26 09:00", 3, 0, ""},              // second reminder (the evening before was outside the window)
		{"2027-02-01 11:00", 3, 1, "formal_notice"}, // formal notice by PEC, once approved
	}
	for _, s := range steps {
		e.wake(t, s.at, inv.ID)
		if s.approve != "" {
			e.approve(t, inv.ID, s.approve)
		}
		if got := len(e.mail.all()); got != s.mails {
			t.Fatalf("at %s: %d e-mails, want %d", s.at, got, s.mails)
		}
		if got := len(e.pec.all()); got != s.pec {
			t.Fatalf("at %s: %d PEC, want %d", s.at, got, s.pec)
		}
	}
	mail := e.mail.all()[0].Data
	for _, want := range []string{"Auto-Submitted: auto-generated", "Message-ID: <dunning-", "in scadenza", "Promemoria"} {
		if !strings.Contains(mail, want) {
			t.Errorf("courtesy e-mail lacks %q", want)
		}
	}
	pec := e.pec.all()[0]
	if !strings.Contains(pec.Data, "diffidiamo") || !strings.Contains(pec.Data, "231/2002") || pec.To[0] != inv.Client.PEC {
		t.Errorf("formal notice: to %v\n%.600s", pec.To, pec.Data)
	}
	// The hand-off's day is 15 February, but the notice gave 15 days from
	// its delivery (1 February): it may go only from the 17th.
	e.wake(t, "2027-02-15 09:00", inv.ID)
	if c, _, _ = e.eng.Cases.Get(context.Background(), e.cid, inv.ID); c.Awaiting != nil || !c.WakeAt.Equal(rome("2027-02-17 09:00")) {
		t.Fatalf("hand-off before the notice's term expired: awaiting %+v, wake %v", c.Awaiting, c.WakeAt.In(rcv.Rome))
	}
	e.wake(t, "2027-02-17 09:00", inv.ID)
	e.approve(t, inv.ID, "handoff")
	c, _, _ = e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if c.State != dunning.Escalated {
		t.Fatalf("after hand-off: %s", c.State)
	}
	ho := e.eng.Senders[policy.Webhook].(*capture)
	if len(ho.msgs) != 1 || !ho.msgs[0].Items[0].Interest.IsPositive() || ho.msgs[0].Items[0].Compensation.String() != "40" || len(ho.msgs[0].History) != 4 {
		t.Errorf("hand-off dossier: %+v", ho.msgs)
	}
	types := strings.Join(e.out.types(), ",")
	if strings.Count(types, "dunning.reminder_sent") != 4 || !strings.Contains(types, "dunning.escalated") {
		t.Errorf("outcomes: %s", types)
	}
	tl, err := e.eng.Audit.Timeline(context.Background(), e.cid, inv.ID)
	if err != nil || len(tl) < 6 {
		t.Errorf("timeline: %d entries, %v", len(tl), err)
	}
}

func TestNeverRemindAPaidInvoice(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	a := e.invoice(t, "2027-01-15", 0)
	b := e.invoice(t, "2027-01-22", 0)
	// a: paid and the event arrives before the stage -> closed, nothing sent.
	paid, _ := e.sim.Pay(e.cid, a.ID, ficsim.PaymentSpec{PaidDate: "2027-01-10"})
	_ = paid
	inv, _ := e.src.Invoice(context.Background(), e.cid, a.ID)
	if err := e.eng.HandleEvent(context.Background(), rcv.InvoicePaid, inv); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-12 09:00", a.ID)
	// b: paid in FIC but the event has not arrived: the freshness GET aborts.
	if _, err := e.sim.Pay(e.cid, b.ID, ficsim.PaymentSpec{}); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-19 09:00", b.ID)
	if n := len(e.mail.all()); n != 0 {
		t.Fatalf("%d reminders to a client who paid", n)
	}
	for _, id := range []int64{a.ID, b.ID} {
		c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, id)
		if c.State != dunning.Closed || c.ClosedReason != dunning.ReasonPaid {
			t.Errorf("case %d: %s %s", id, c.State, c.ClosedReason)
		}
	}
}

func TestCrashBetweenSendAndRecordNeverResends(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	e.obox.failComplete = true
	e.clk.Set(rome("2027-01-12 09:00"))
	if err := e.eng.Wake(context.Background(), e.cid, inv.ID); err == nil {
		t.Fatal("want the simulated crash")
	}
	e.obox.failComplete = false
	e.wake(t, "2027-01-12 09:05", inv.ID) // redelivery after the crash
	e.wake(t, "2027-01-12 10:00", inv.ID)
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("%d e-mails, want exactly 1", n)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if len(c.Attention) != 1 || !strings.Contains(c.Attention[0], "possibly sent") {
		t.Errorf("ops not told: %v", c.Attention)
	}
	// The delivery is in the case, the timeline and the event stream, once
	// (issue #14: a reminder delivered just before a SIGKILL was never
	// published).
	if len(c.Sent) != 1 || c.Sent[0].Outcome != "possibly_sent" || c.Sent[0].Stage != "courtesy" {
		t.Errorf("case deliveries: %+v", c.Sent)
	}
	sent := e.out.of("dunning.reminder_sent")
	if len(sent) != 1 || !sent[0].Delivery.PossiblySent {
		t.Errorf("reminder_sent events: %+v", sent)
	}
	tl, _ := e.eng.Audit.Timeline(context.Background(), e.cid, inv.ID)
	if !slices.ContainsFunc(tl, func(a dunning.AuditEntry) bool { return a.Action == "reminder_possibly_sent" }) {
		t.Errorf("timeline: %+v", tl)
	}
}

// failingCases fails case writes while on (a crash after the outbox said
// "sent", before the case and the event stream knew).
type failingCases struct {
	dunning.CaseStore
	on bool
}

func (f *failingCases) Put(ctx context.Context, c dunning.Case, rev uint64) (uint64, error) {
	if f.on {
		return 0, errors.New("simulated crash before the case write")
	}
	return f.CaseStore.Put(ctx, c, rev)
}

// A delivery the outbox recorded as sent but the case never heard of is
// recorded and published by the next run, without a second send.
func TestSentButUnrecordedDeliveryIsPublished(t *testing.T) {
	e := newEnv(t)
	fc := &failingCases{CaseStore: e.eng.Cases}
	e.eng.Cases = fc
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	e.clk.Set(rome("2027-01-12 09:00"))
	e.obox.onSent = func() { fc.on = true }
	if err := e.eng.Wake(context.Background(), e.cid, inv.ID); err == nil {
		t.Fatal("want the simulated crash")
	}
	fc.on, e.obox.onSent = false, nil
	e.wake(t, "2027-01-12 09:05", inv.ID)
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("%d e-mails, want 1", n)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if len(c.Sent) != 1 || c.Sent[0].Outcome != "sent" {
		t.Fatalf("case deliveries: %+v", c.Sent)
	}
	if sent := e.out.of("dunning.reminder_sent"); len(sent) != 1 || sent[0].Delivery.PossiblySent {
		t.Fatalf("reminder_sent events: %+v", sent)
	}
}

// possiblySent is a channel whose connection drops after the message went
// out.
type possiblySent struct{ n int }

func (p *possiblySent) Send(context.Context, dunning.Message) error {
	p.n++
	return fmt.Errorf("%w: connection dropped after DATA", dunning.ErrPossiblySent)
}

// A send whose outcome is unknown is never retried by itself: ops are told,
// and it is published as possibly sent.
func TestPossiblySentIsNeverResent(t *testing.T) {
	e := newEnv(t)
	ch := &possiblySent{}
	e.eng.Senders[policy.Email] = ch
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	e.wake(t, "2027-01-12 09:00", inv.ID)
	e.wake(t, "2027-01-12 11:00", inv.ID)
	if ch.n != 1 {
		t.Fatalf("%d attempts, want 1", ch.n)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if len(c.Sent) != 1 || c.Sent[0].Outcome != "possibly_sent" || !slices.ContainsFunc(c.Attention, func(a string) bool { return strings.Contains(a, "possibly sent") }) {
		t.Fatalf("case: sent %+v, attention %v", c.Sent, c.Attention)
	}
	if sent := e.out.of("dunning.reminder_sent"); len(sent) != 1 || !sent[0].Delivery.PossiblySent {
		t.Fatalf("reminder_sent events: %+v", sent)
	}
}

func TestGroupingOneMessagePerClient(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	docs, _ := e.sim.Documents(e.cid)
	client := docs[0].Client.ID
	a := e.invoice(t, "2027-01-15", client)
	b := e.invoice(t, "2027-01-15", client)
	e.wake(t, "2027-01-12 09:00", a.ID)
	e.wake(t, "2027-01-12 09:01", b.ID)
	msgs := e.mail.all()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Data, a.Number) || !strings.Contains(msgs[0].Data, b.Number) {
		t.Fatalf("%d messages; want one listing both invoices", len(msgs))
	}
}

func TestPauseDisputePromiseAndResume(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Paused, rcv.MustDate("2027-01-20"), "maria", "client on holiday"); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-12 09:00", inv.ID)
	if len(e.mail.all()) != 0 {
		t.Fatal("sent while paused")
	}
	e.wake(t, "2027-01-21 09:00", inv.ID) // pause over: resumes by itself and runs the due stage
	if len(e.mail.all()) != 1 {
		t.Fatalf("after the pause: %d e-mails", len(e.mail.all()))
	}
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Disputed, rcv.Date{}, "maria", "contested"); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-26 09:00", inv.ID)
	if len(e.mail.all()) != 1 {
		t.Fatal("sent while disputed")
	}
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Promised, rcv.MustDate("2027-01-28"), "maria", "promised by phone"); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-29 09:00", inv.ID)
	if len(e.mail.all()) != 2 {
		t.Fatalf("promise expired unpaid: %d e-mails, want 2", len(e.mail.all()))
	}
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Paused, rcv.MustDate("2020-01-01"), "maria", ""); !errors.Is(err, dunning.ErrInvalid) {
		t.Errorf("pause in the past: %v", err)
	}
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Active, rcv.Date{}, "", ""); !errors.Is(err, dunning.ErrInvalid) {
		t.Errorf("no operator: %v", err)
	}
	types := strings.Join(e.out.types(), ",")
	for _, w := range []string{"dunning.paused", "dunning.resumed"} {
		if !strings.Contains(types, w) {
			t.Errorf("no %s in %s", w, types)
		}
	}
}

func TestBounceBecomesDeliveryFailed(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	e.mail.fail = 1
	e.wake(t, "2027-01-12 09:00", inv.ID)
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if len(c.Attention) != 1 || !strings.Contains(c.Attention[0], "delivery failed") {
		t.Errorf("attention: %v", c.Attention)
	}
	if !strings.Contains(strings.Join(e.out.types(), ","), "dunning.delivery_failed") {
		t.Errorf("outcomes: %v", e.out.types())
	}
}

// A temporary SMTP refusal (4xx) is not a bounce: nothing is recorded as
// sent or failed, the wake fails so that its timer is retried, and the
// retry delivers the reminder exactly once.
func TestTemporarySMTPErrorIsRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	e.mail.mu.Lock()
	e.mail.tempFail = 1
	e.mail.mu.Unlock()
	e.clk.Set(rome("2027-01-12 09:00"))
	if err := e.eng.Wake(ctx, e.cid, inv.ID); err == nil {
		t.Fatal("a deferred delivery must fail the wake, so that its timer retries it")
	}
	if c, _, _ := e.eng.Cases.Get(ctx, e.cid, inv.ID); len(c.Sent) != 0 || len(c.Attention) != 0 || len(e.mail.all()) != 0 {
		t.Fatalf("after a 451: sent %v, attention %v, %d messages; want nothing recorded", c.Sent, c.Attention, len(e.mail.all()))
	}
	e.wake(t, "2027-01-12 09:05", inv.ID) // the timer's redelivery
	c, _, _ := e.eng.Cases.Get(ctx, e.cid, inv.ID)
	if n := len(e.mail.all()); n != 1 || len(c.Sent) != 1 || c.Sent[0].Outcome != "sent" {
		t.Fatalf("after the retry: %d messages, sent %v; want exactly one", n, c.Sent)
	}
	if strings.Contains(strings.Join(e.out.types(), ","), "dunning.delivery_failed") {
		t.Errorf("a temporary refusal was reported as a failed delivery: %v", e.out.types())
	}
}

func TestCreditNoteClosesTheCase(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	cn := inv
	cn.ID, cn.Kind, cn.Number, cn.RefNumber = inv.ID+1000, rcv.KindCreditNote, "1/NC", inv.Number
	cn.Gross = inv.AmountDue().Div(decimal.NewFromInt(2))
	if err := e.eng.HandleEvent(context.Background(), rcv.CreditNoteCreated, cn); err != nil {
		t.Fatal(err)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if c.State != dunning.Active || len(c.Credits) != 1 || !c.Outstanding().Equal(inv.AmountDue().Sub(cn.Gross)) {
		t.Fatalf("partial credit: %s, credits %v, outstanding %s", c.State, c.Credits, c.Outstanding())
	}
	cn.ID, cn.Number, cn.Gross = cn.ID+1, "2/NC", inv.Gross
	if err := e.eng.HandleEvent(context.Background(), rcv.CreditNoteCreated, cn); err != nil {
		t.Fatal(err)
	}
	c, _, _ = e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if c.State != dunning.Closed || c.ClosedReason != dunning.ReasonCredited {
		t.Fatalf("full credit: %s %s", c.State, c.ClosedReason)
	}
	e.wake(t, "2027-01-12 09:00", inv.ID)
	if len(e.mail.all()) != 0 {
		t.Error("reminder for a credited invoice")
	}
	if !strings.Contains(strings.Join(e.out.types(), ","), "dunning.closed") {
		t.Errorf("outcomes %v", e.out.types())
	}
}

func TestStageOnAHolidayMovesToTheNextWorkingDay(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-09-20 10:00"))
	// Due Friday 2027-10-01: first reminder +1 = Sat 2nd -> Mon 4th is San
	// Francesco (national holiday from 2026) -> Tue 5th.
	inv := e.invoice(t, "2027-10-01", 0)
	e.wake(t, "2027-09-28 09:00", inv.ID) // courtesy
	e.wake(t, "2027-10-04 10:00", inv.ID)
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("sent on the holiday: %d", n)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if !c.WakeAt.Equal(rome("2027-10-05 09:00")) {
		t.Errorf("wake at %v, want Tuesday 5 October 09:00", c.WakeAt)
	}
	e.wake(t, "2027-10-05 09:00", inv.ID)
	if n := len(e.mail.all()); n != 2 {
		t.Fatalf("after the holiday: %d", n)
	}
}

func TestPreviewIsADryRunAndAging(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	items, err := e.eng.Preview(context.Background(), e.cid, rcv.MustDate("2027-01-12"))
	if err != nil || len(items) != 1 || items[0].Stage != "courtesy" || items[0].InvoiceID != inv.ID {
		t.Fatalf("preview: %+v %v", items, err)
	}
	if none, _ := e.eng.Preview(context.Background(), e.cid, rcv.MustDate("2027-01-16")); len(none) != 0 {
		t.Errorf("preview on a Saturday: %+v", none)
	}
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if len(e.mail.all()) != 0 || len(c.Sent) != 0 || c.Stage != 0 {
		t.Error("preview changed something")
	}
	ag, err := e.eng.AgingReport(context.Background(), e.cid, rcv.MustDate("2027-02-20"))
	if err != nil || ag.Invoices != 1 || ag.Buckets["31-60"] != inv.AmountDue().StringFixed(2) || ag.Source != "cases" {
		t.Errorf("aging of the cases: %+v %v", ag, err)
	}
}

// ficLedger is the sandbox's ledger read through the FIC API.
type ficLedger struct{ src *fic.Source }

func (l ficLedger) Documents(ctx context.Context, cid int64) ([]rcv.Invoice, error) {
	var out []rcv.Invoice
	for _, kind := range []rcv.Kind{rcv.KindInvoice, rcv.KindCreditNote} {
		for page, err := range l.src.Pages(ctx, cid, kind) {
			if err != nil {
				return nil, err
			}
			out = append(out, page.Invoices...)
		}
	}
	return out, nil
}

// Aging and DSO count every invoice of the period, not only those that had
// a case (issue #14): paid invoices weigh in the DSO, unchased open ones
// in the buckets.
func TestAgingCountsEveryInvoice(t *testing.T) {
	e := newEnv(t)
	e.eng.Ledger = ficLedger{e.src}
	ctx := context.Background()
	day := rcv.MustDate("2026-12-01")
	docs, _ := e.sim.Documents(e.cid)
	open, invoiced := decimal.Zero, decimal.Zero
	withOpen := 0
	for _, d := range docs {
		payable := decimal.Zero
		had := false
		for _, p := range d.Payments {
			payable = payable.Add(p.Amount)
			if d.Type == "invoice" && p.Status != "paid" {
				open, had = open.Add(p.Amount), true
			}
		}
		date := rcv.MustDate(d.Date)
		if !date.Before(day.AddDays(-90)) && !date.After(day) {
			if d.Type == "credit_note" {
				invoiced = invoiced.Sub(payable)
			} else {
				invoiced = invoiced.Add(payable)
			}
		}
		if had {
			withOpen++
		}
	}
	if withOpen < 2 {
		t.Fatalf("the seed has %d open invoices", withOpen)
	}
	ag, err := e.eng.AgingReport(ctx, e.cid, day)
	if err != nil {
		t.Fatal(err)
	}
	wantDSO, _ := open.Div(invoiced).Mul(decimal.NewFromInt(90)).Round(1).Float64()
	if ag.Source != "ledger" || ag.Invoices != withOpen || ag.Open != open.StringFixed(2) || (invoiced.IsPositive() && ag.DSO != wantDSO) {
		t.Fatalf("aging %+v, want %d invoices, %s open, DSO %.1f (no case was ever opened)", ag, withOpen, open.StringFixed(2), wantDSO)
	}
}

func TestWriteOff(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	if _, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Closed, rcv.Date{}, "maria", ""); !errors.Is(err, dunning.ErrInvalid) {
		t.Errorf("write-off without reason: %v", err)
	}
	c, err := e.eng.SetState(ctx, e.cid, inv.ID, dunning.Closed, rcv.Date{}, "maria", "client insolvent")
	if err != nil || c.State != dunning.Closed || c.ClosedReason != dunning.ReasonWrittenOff {
		t.Fatalf("write-off: %+v %v", c, err)
	}
	e.wake(t, "2027-01-12 09:00", inv.ID)
	if len(e.mail.all()) != 0 {
		t.Error("reminder after a write-off")
	}
}

// A hand-off that cannot be delivered (no collection platform configured)
// does not mark the case escalated: the stage stays due, an ops task says
// why, it is retried every business day and goes out once a platform is
// there (issue #14: the case was marked escalated although nobody had it).
func TestUndeliveredHandoffIsNotEscalated(t *testing.T) {
	e := newEnv(t)
	pols, err := policy.Parse("handoff.yaml", []byte(`
platform: collection
catch_up: start
stages:
  - {name: handoff, offset_days: 1, channels: [webhook], template: handoff, escalate: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	e.eng.Policies = pols
	platform := e.eng.Senders[policy.Webhook]
	delete(e.eng.Senders, policy.Webhook)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2026-12-20", 0)
	e.wake(t, "2027-01-04 10:00", inv.ID)
	c, _, _ := e.eng.Cases.Get(context.Background(), e.cid, inv.ID)
	if c.State == dunning.Escalated || c.Stage != 0 {
		t.Fatalf("an undelivered hand-off escalated the case: %s, stage %d", c.State, c.Stage)
	}
	if !slices.ContainsFunc(c.Attention, func(a string) bool { return strings.Contains(a, "no webhook channel") }) ||
		!slices.ContainsFunc(c.Attention, func(a string) bool { return strings.Contains(a, "not escalated") }) {
		t.Fatalf("attention: %v", c.Attention)
	}
	if !c.WakeAt.Equal(rome("2027-01-05 09:00")) {
		t.Fatalf("retry at %v, want the next business day", c.WakeAt.In(rcv.Rome))
	}
	if !strings.Contains(strings.Join(e.out.types(), ","), "dunning.delivery_failed") {
		t.Errorf("outcomes: %v", e.out.types())
	}
	e.eng.Senders[policy.Webhook] = platform // the platform is configured
	e.wake(t, "2027-01-05 09:00", inv.ID)
	if c, _, _ = e.eng.Cases.Get(context.Background(), e.cid, inv.ID); c.State != dunning.Escalated {
		t.Fatalf("after configuring the platform: %s", c.State)
	}
	if n := len(platform.(*capture).msgs); n != 1 {
		t.Fatalf("%d hand-offs", n)
	}
	// Paid while escalated: the platform is told to stop, signed, once.
	ficsimtest.PayInFull(t, e.sim, e.cid, inv.ID)
	paid, _ := e.src.Invoice(context.Background(), e.cid, inv.ID)
	for range 2 {
		if err := e.eng.HandleEvent(context.Background(), rcv.InvoicePaid, paid); err != nil {
			t.Fatal(err)
		}
	}
	msgs := platform.(*capture).msgs
	if len(msgs) != 2 || msgs[1].Template != "recall" || msgs[1].Recall != dunning.ReasonPaid {
		t.Fatalf("platform messages after the payment: %+v", msgs)
	}
}

// A client's invoices that become due on events arriving in a burst go out
// in one message once the client has been quiet for GroupDelay: the first
// invoice's wake comes while the burst is still arriving and waits. Without
// the wait it would send alone and the minimum gap would hold the others
// back for days.
func TestBurstWaitsForQuietThenGroups(t *testing.T) {
	e := newEnv(t)
	e.eng.GroupDelay = time.Minute
	ctx := context.Background()
	docs, _ := e.sim.Documents(e.cid)
	client := docs[0].Client.ID
	e.clk.Set(rome("2027-01-12 10:00")) // courtesy day of invoices due 2027-01-15
	a := e.invoice(t, "2027-01-15", client)
	ca, _, _ := e.eng.Cases.Get(ctx, e.cid, a.ID)
	if !ca.WakeAt.Equal(rome("2027-01-12 10:01")) {
		t.Fatalf("due on its event: wakes at %v, want after the group delay", ca.WakeAt)
	}
	e.clk.Set(rome("2027-01-12 10:00").Add(40 * time.Second))
	b := e.invoice(t, "2027-01-15", client) // the burst goes on: quiet until 10:01:40
	e.wake(t, "2027-01-12 10:01", a.ID)
	if n := len(e.mail.all()); n != 0 {
		t.Fatalf("%d messages while the client's events were still arriving", n)
	}
	if ca, _, _ = e.eng.Cases.Get(ctx, e.cid, a.ID); !ca.WakeAt.Equal(rome("2027-01-12 10:01").Add(40 * time.Second)) {
		t.Fatalf("re-planned to %v, want the end of the quiet period", ca.WakeAt)
	}
	e.clk.Set(rome("2027-01-12 10:01").Add(40 * time.Second))
	for _, id := range []int64{a.ID, b.ID} {
		if err := e.eng.Wake(ctx, e.cid, id); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.mail.all()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Data, a.Number) || !strings.Contains(msgs[0].Data, b.Number) {
		t.Fatalf("%d messages; want one listing both invoices", len(msgs))
	}
	// "Remind now" is an operator's decision: it does not wait.
	c := e.invoice(t, "2027-01-15", client)
	if _, err := e.eng.RemindNow(ctx, e.cid, c.ID, "", "", "maria", "asked by the client"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.mail.all()); n != 2 {
		t.Fatalf("remind now during a quiet period: %d messages, want 2", n)
	}
}

// "Remind now" without a stage never sends a formal step (a PEC formal
// notice, a hand-off): an operator who meant "send the reminder again" got
// a formal notice before. Named, it goes, and the delivery records where.
func TestRemindNowNeverSendsAFormalStepByDefault(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	docs, _ := e.sim.Documents(e.cid)
	e.clk.Set(rome("2027-01-12 10:00"))
	inv := e.invoice(t, "2027-01-15", docs[0].Client.ID)
	c, rev, err := e.eng.Cases.Get(ctx, e.cid, inv.ID)
	if err != nil || rev == 0 {
		t.Fatal(err)
	}
	p := e.eng.Policies.For(e.cid)
	formal := slices.IndexFunc(p.Stages, func(s policy.Stage) bool { return slices.Contains(s.Channels, policy.PEC) })
	if formal < 0 {
		t.Fatal("the policy has no PEC stage")
	}
	c.Stage = formal
	if _, err := e.eng.Cases.Put(ctx, c, rev); err != nil {
		t.Fatal(err)
	}
	before := len(e.mail.all())
	if _, err := e.eng.RemindNow(ctx, e.cid, inv.ID, "", "", "maria", "send it again"); !errors.Is(err, dunning.ErrInvalid) || !strings.Contains(err.Error(), p.Stages[formal].Name) {
		t.Fatalf("remind without a stage at a formal step: %v", err)
	}
	if n := len(e.mail.all()); n != before {
		t.Fatalf("%d messages sent", n-before)
	}
	first := p.Stages[0].Name
	if _, err := e.eng.RemindNow(ctx, e.cid, inv.ID, first, "", "maria", "send it again"); err != nil {
		t.Fatal(err)
	}
	c, _, _ = e.eng.Cases.Get(ctx, e.cid, inv.ID)
	last := c.Sent[len(c.Sent)-1]
	if last.Stage != first || last.To == "" || last.To != inv.Client.Email && !strings.Contains(last.To, "@") {
		t.Errorf("recorded delivery %+v", last)
	}
}
