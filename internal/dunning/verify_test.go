package dunning_test

import (
	"context"
	"testing"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// A forged or stale invoice.deleted / invoice.paid does not close a live
// case: dunning asks FIC first, and applies what FIC says (issue #12, item
// 5: a forged deleted on an open NATS closed a live case).
func TestClosingEventsAreCheckedAgainstFIC(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	ctx := context.Background()
	state := func() dunning.Case {
		t.Helper()
		c, _, err := e.eng.Cases.Get(ctx, e.cid, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, typ := range []rcv.EventType{rcv.InvoiceDeleted, rcv.InvoicePaid} {
		forged := inv
		if typ == rcv.InvoicePaid {
			forged.Installments = append([]rcv.Installment(nil), inv.Installments...)
			forged.Installments[0].Status = rcv.Paid
		}
		if err := e.eng.HandleEvent(ctx, typ, forged); err != nil {
			t.Fatal(err)
		}
		if c := state(); c.State == dunning.Closed {
			t.Fatalf("a forged %s closed the live case (%s)", typ, c.ClosedReason)
		}
	}
	// A true one closes it.
	ficsimtest.PayInFull(t, e.sim, e.cid, inv.ID)
	paid, _ := e.src.Invoice(ctx, e.cid, inv.ID)
	if err := e.eng.HandleEvent(ctx, rcv.InvoicePaid, paid); err != nil {
		t.Fatal(err)
	}
	if c := state(); c.State != dunning.Closed || c.ClosedReason != dunning.ReasonPaid {
		t.Fatalf("after the real payment: %s %s", c.State, c.ClosedReason)
	}
}

// A document deleted and restored from FIC's bin reappears downstream as a
// new invoice.created, which reopens its case where the workflow was.
func TestRestoredInvoiceReopensItsCase(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.invoice(t, "2027-01-15", 0)
	ctx := context.Background()
	if err := e.sim.DeleteDocument(e.cid, inv.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.HandleEvent(ctx, rcv.InvoiceDeleted, inv); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := e.eng.Cases.Get(ctx, e.cid, inv.ID); c.State != dunning.Closed || c.ClosedReason != dunning.ReasonDeleted {
		t.Fatalf("after the deletion: %s %s", c.State, c.ClosedReason)
	}
	if _, err := e.sim.RestoreDocument(e.cid, inv.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.HandleEvent(ctx, rcv.InvoiceCreated, inv); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := e.eng.Cases.Get(ctx, e.cid, inv.ID); c.State != dunning.Active {
		t.Fatalf("after the restore: %s %s", c.State, c.ClosedReason)
	}
}
