package fic

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Source adapts a Client to receivables.InvoiceSource: FIC documents become
// domain invoices, and FIC errors become domain errors (ErrNotFound,
// *QuotaError) while keeping the FIC detail in the chain.
type Source struct {
	Client *Client
	// Filter, if set, restricts scans of invoices (e.g. to open ones).
	Filter func(kind rcv.Kind) ListOptions
}

var _ rcv.InvoiceSource = (*Source)(nil)

func translate(err error) error {
	var qe *QuotaError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &qe):
		return &rcv.QuotaError{ResetAt: qe.ResetAt, Err: err}
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", rcv.ErrNotFound, err)
	}
	return err
}

func docType(k rcv.Kind) DocumentType {
	if k == rcv.KindCreditNote {
		return TypeCreditNote
	}
	return TypeInvoice
}

// Pages implements receivables.InvoiceSource.
func (s *Source) Pages(ctx context.Context, companyID int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	opt := ListOptions{Type: docType(kind)}
	if s.Filter != nil {
		opt = s.Filter(kind)
	}
	return func(yield func(rcv.Page, error) bool) {
		// The client asks for the next page when yield returns: the time
		// taken then is when that page was requested (or a little before,
		// while the quota budget made it wait), never after.
		at := time.Now()
		for p, err := range s.Client.Pages(ctx, companyID, opt) {
			if err != nil {
				yield(rcv.Page{Number: p.Number}, translate(err))
				return
			}
			out := rcv.Page{Number: p.Number, LastPage: p.LastPage, Errors: p.Errors, Invoices: make([]rcv.Invoice, 0, len(p.Documents)), ReadAt: at}
			for _, d := range p.Documents {
				inv, err := d.Invoice(companyID)
				if err != nil {
					out.Errors = append(out.Errors, err)
					continue
				}
				out.Invoices = append(out.Invoices, inv)
			}
			if !yield(out, nil) {
				return
			}
			at = time.Now()
		}
	}
}

// Invoice implements receivables.InvoiceSource.
func (s *Source) Invoice(ctx context.Context, companyID, id int64) (rcv.Invoice, error) {
	d, err := s.Client.GetIssuedDocument(ctx, companyID, id)
	if err != nil {
		return rcv.Invoice{}, translate(err)
	}
	if d.Type != TypeInvoice && d.Type != TypeCreditNote {
		// Another document type (a quote, a receipt): not a receivable.
		return rcv.Invoice{}, fmt.Errorf("%w: document %d is a %s", rcv.ErrNotFound, id, d.Type)
	}
	return d.Invoice(companyID)
}

// Bin implements receivables.InvoiceSource.
func (s *Source) Bin(ctx context.Context, companyID int64) ([]int64, error) {
	docs, err := s.Client.ListBinIssuedDocuments(ctx, companyID)
	if err != nil {
		return nil, translate(err)
	}
	ids := make([]int64, 0, len(docs))
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	return ids, nil
}
