package pollerapp

import (
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/fic/filter"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// openOnly scans only invoices with an open installment (next_due_date is
// set). Invoices that become paid drop out of the scan; the poller then
// confirms each disappearance with a single GET, which is where the payment
// is detected. Credit notes are scanned whole (few).
func openOnly(kind rcv.Kind) fic.ListOptions {
	if kind == rcv.KindCreditNote {
		return fic.ListOptions{Type: fic.TypeCreditNote}
	}
	return fic.ListOptions{Type: fic.TypeInvoice, Query: filter.Where("next_due_date", filter.IsNotNull, nil)}
}
