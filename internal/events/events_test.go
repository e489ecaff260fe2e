package events_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/events/eventstest"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func sampleChange() rcv.Change {
	inv := rcv.Invoice{CompanyID: 1234, ID: 98765, Kind: rcv.KindInvoice, Number: "12/A", Numeration: "/A",
		Date: rcv.MustDate("2026-10-01"), Currency: "EUR", Gross: decimal.RequireFromString("1220.00"), Net: decimal.RequireFromString("1000"),
		Client: rcv.Client{ID: 5, Name: "Caffè \"Ré\" 100% S.r.l.", VATNumber: "01234567890", PEC: "caffe@pec.it", Country: "IT"},
		Installments: []rcv.Installment{
			{ID: 1, DueDate: rcv.MustDate("2026-10-31"), Amount: decimal.RequireFromString("610"), Status: rcv.Paid, PaidDate: rcv.MustDate("2026-10-30")},
			{ID: 2, DueDate: rcv.MustDate("2026-11-30"), Amount: decimal.RequireFromString("610"), Status: rcv.NotPaid},
		}}
	in := inv.Installments[1]
	return rcv.Change{Type: rcv.InvoiceOverdue, Seq: 3, Invoice: inv, Installment: &in,
		At: time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)}
}

func TestBuildAndCodecRoundTrip(t *testing.T) {
	subj, e, err := events.Build(sampleChange())
	if err != nil {
		t.Fatal(err)
	}
	if subj != "incasso.events.1234.invoice.overdue" {
		t.Errorf("subject %q", subj)
	}
	if e.Source() != "/fic/companies/1234" || e.Subject() != "invoices/98765" || e.DataSchema() != events.DataSchema {
		t.Errorf("attributes: %v", e)
	}
	e.SetExtension("operator", "Maria Rossi ✓ 100%")
	m, err := events.Encode(subj, e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(nats.MsgIdHdr) != e.ID() || m.Header.Get("ce-id") != e.ID() {
		t.Errorf("Nats-Msg-Id %q ce-id %q want %q", m.Header.Get(nats.MsgIdHdr), m.Header.Get("ce-id"), e.ID())
	}
	if got := m.Header.Get("ce-operator"); got != "Maria%20Rossi%20%E2%9C%93%20100%25" {
		t.Errorf("percent-encoding: %q", got)
	}
	if m.Header.Get("ce-time") != "2026-11-30T23:00:00Z" || m.Header.Get("ce-datacontenttype") != "application/json" {
		t.Errorf("headers: %v", m.Header)
	}
	back, err := events.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != e.ID() || back.Type() != e.Type() || !back.Time().Equal(e.Time()) || back.Extensions()["operator"] != "Maria Rossi ✓ 100%" {
		t.Errorf("round trip: %v", back)
	}
	d, err := events.ParseData(back)
	if err != nil {
		t.Fatal(err)
	}
	if d.Document.AmountDue != "610.00" || d.Document.AmountPaid != "610.00" || d.Document.DaysOverdue != 1 ||
		d.Installment == nil || d.Installment.ID != 2 || d.Document.Client.Name != "Caffè \"Ré\" 100% S.r.l." {
		t.Errorf("data: %+v", d)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := func() *nats.Msg {
		subj, e, _ := events.Build(sampleChange())
		m, _ := events.Encode(subj, e)
		return m
	}
	tests := []struct {
		name string
		mut  func(*nats.Msg)
	}{
		{"no specversion", func(m *nats.Msg) { m.Header.Del("ce-specversion") }},
		{"wrong specversion", func(m *nats.Msg) { m.Header.Set("ce-specversion", "0.3") }},
		{"no id", func(m *nats.Msg) { m.Header.Del("ce-id") }},
		{"bad escape", func(m *nats.Msg) { m.Header.Set("ce-subject", "invoices%2") }},
		{"invalid utf8", func(m *nats.Msg) { m.Header.Set("ce-subject", "%FF%FE") }},
		{"bad time", func(m *nats.Msg) { m.Header.Set("ce-time", "yesterday") }},
		{"bad extension name", func(m *nats.Msg) { m.Header.Set("ce-Bad_Name!", "x") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.mut(m)
			if _, err := events.Decode(m); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestIDsAreDeterministic(t *testing.T) {
	a := events.ID(1, 2, "invoice.paid", "paid:1@2026-01-01")
	if a != events.ID(1, 2, "invoice.paid", "paid:1@2026-01-01") || a == events.ID(1, 2, "invoice.paid", "paid:1@2026-01-02") || len(a) != 32 {
		t.Errorf("ids: %s", a)
	}
	if _, _, err := events.CompanyFromSubject("incasso.events.x.invoice.paid"); err == nil {
		t.Error("bad subject accepted")
	}
	if cid, typ, err := events.CompanyFromSubject("incasso.events.42.dunning.escalated"); err != nil || cid != 42 || typ != "dunning.escalated" {
		t.Errorf("CompanyFromSubject: %d %q %v", cid, typ, err)
	}
}

func TestPublishIsDeduplicated(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, js, events.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var dups int
	p := &events.Publisher{JS: js, OnPublished: func(_ string, dup bool) {
		if dup {
			dups++
		}
	}}
	c := sampleChange()
	paid := c
	paid.Type, paid.Seq = rcv.InvoicePartiallyPaid, c.Seq+1
	for i := 0; i < 3; i++ { // e.g. a crash between publish and snapshot, twice
		if err := p.Publish(ctx, []rcv.Change{c, paid}); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs != 2 || dups != 4 {
		t.Fatalf("stored %d messages, %d duplicates; want 2 and 4", info.State.Msgs, dups)
	}
	// What a subscriber sees decodes back.
	msg, err := st.GetLastMsgForSubject(ctx, "incasso.events.1234.invoice.overdue")
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.Decode(&nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data})
	if err != nil || e.Type() != "invoice.overdue" {
		t.Fatalf("decode stored: %v %v", e, err)
	}
}

// Message schedules work on the embedded server: the timer stream layout the
// poller uses (work-queue retention, schedules on one subject, firing on
// another) is accepted and fires.
func TestMessageScheduleFires(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, AllowMsgSchedules: true, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second) // @at has second precision
	if _, err := js.Publish(ctx, "t.sched.1", []byte("x"), jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget("t.fire.1")); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "f", FilterSubject: "t.fire.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got jetstream.Msg
	for m := range msgs.Messages() {
		got = m
	}
	if got == nil {
		t.Fatal("schedule did not fire")
	}
	if late := time.Since(at); late < 0 {
		t.Errorf("fired %v before the instant", -late)
	} else {
		t.Logf("fired %v after the instant", late)
	}
	if !strings.HasPrefix(got.Subject(), "t.fire.") {
		t.Errorf("subject %s", got.Subject())
	}
}

func TestBuiltEventsMatchSchema(t *testing.T) {
	schema := eventstest.Schema(t, "invoice-event.v1.json")
	c := sampleChange()
	up := c
	up.Type, up.Seq, up.Installment = rcv.InvoiceUpdated, 4, nil
	up.Changes = []rcv.FieldChange{{Field: "amount_gross", Previous: "1000.00", Current: "1220.00"}}
	paid := c
	paid.Type, paid.Installment, paid.Paid = rcv.InvoicePaid, nil, c.Invoice.Installments[:1]
	cn := c
	cn.Type, cn.Installment = rcv.CreditNoteCreated, nil
	cn.Invoice.Kind, cn.Invoice.RefNumber, cn.Invoice.RefDate = rcv.KindCreditNote, "12/A", rcv.MustDate("2026-10-01")
	for _, ch := range []rcv.Change{c, up, paid, cn} {
		_, e, err := events.Build(ch)
		if err != nil {
			t.Fatal(err)
		}
		eventstest.Validate(t, schema, e.Data())
	}
	// The schema does reject a wrong payload.
	bad := []byte(`{"document":{"company_id":1,"id":1,"kind":"invoice","number":"1","date":"2026-01-01","currency":"EUR","amount_gross":12.5,"amount_net":"1.00","amount_payable":"1.00","amount_paid":"0.00","amount_due":"1.00","days_overdue":0,"installments":[],"client":{"name":"x"}}}`)
	v, _ := jsonschemaUnmarshal(bad)
	if err := schema.Validate(v); err == nil {
		t.Error("schema accepted a float amount")
	}
}

func jsonschemaUnmarshal(b []byte) (any, error) { return jsonschema.UnmarshalJSON(bytes.NewReader(b)) }

func TestDocumentInvoiceRoundTrip(t *testing.T) {
	c := sampleChange()
	d := events.DocumentData(&c.Invoice, rcv.MustDate("2026-12-01"))
	inv, err := d.Invoice()
	if err != nil {
		t.Fatal(err)
	}
	if !inv.AmountDue().Equal(c.Invoice.AmountDue()) || inv.Client != c.Invoice.Client || len(inv.Installments) != 2 || inv.NextDue() != c.Invoice.NextDue() {
		t.Errorf("round trip: %+v", inv)
	}
	d.Installments[0].Amount = "1,00"
	if _, err := d.Invoice(); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("bad amount: %v", err)
	}
}

// Dunning events carry typed data that matches the published schema.
func TestDunningEventsMatchSchema(t *testing.T) {
	schema := eventstest.Schema(t, "dunning-event.v1.json")
	c := sampleChange()
	doc := events.DocumentData(&c.Invoice, rcv.MustDate("2026-12-01"))
	for _, d := range []events.DunningData{
		{CompanyID: 1234, InvoiceID: 98765, State: "active", Stage: 2, Document: doc,
			Detail: events.Detail{StageName: "sollecito_1", Channel: "email", MessageID: "<dunning-1@incasso>", InvoicesInMessage: 2}},
		{CompanyID: 1234, InvoiceID: 98765, State: "closed", Stage: 3, ClosedReason: "paid", Document: doc,
			Detail: events.Detail{From: "active", Reason: "paid"}},
		{CompanyID: 1234, InvoiceID: 98765, State: "escalated", Stage: 4, Document: doc,
			Detail: events.Detail{StageName: "affido", Channel: "webhook", MessageID: "x", InvoicesInMessage: 1, Dossier: []byte(`{"total":"1.00"}`)}},
	} {
		subj, e, err := events.BuildDunning(events.DunningReminderSent, events.ID(1234, 98765, events.DunningReminderSent, "k"), time.Now(), d)
		if err != nil {
			t.Fatal(err)
		}
		if subj != "incasso.events.1234.dunning.reminder_sent" || e.DataSchema() != events.DunningDataSchema {
			t.Fatalf("subject %s schema %s", subj, e.DataSchema())
		}
		eventstest.Validate(t, schema, e.Data())
		back, err := events.ParseDunningData(e)
		if err != nil || back.Detail.StageName != d.Detail.StageName || back.State != d.State {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	}
}
