// Package receivables holds Incasso's domain vocabulary: civil dates,
// invoices and installments as the business sees them, independent of Fatture
// in Cloud's wire format and of NATS.
//
// It imports only the standard library and shopspring/decimal. Money is never
// a float: amounts are decimal.Decimal everywhere. Business rules are
// evaluated in Europe/Rome (see Rome); instants on the wire are UTC.
package receivables
