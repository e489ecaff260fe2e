// Package dunning chases unpaid invoices the way a careful credit
// controller would: never a reminder to someone who already paid, never the
// same reminder twice, nothing lost on a crash.
//
// Where a reminder is decided: Apply (an event changes a case) and Decide
// (what is due now, or when to wake up) are pure. The Engine executes the
// decision: right before any send it re-reads the invoice from FIC (one GET);
// it records an outbox entry per (invoice, stage, channel) with a
// compare-and-set create *before* sending and completes it after; a crash in
// between leaves the entry pending, which is surfaced to ops as "possibly
// sent" and never re-sent silently. Reminders to one client due the same day
// go out as one message. Time is only an input: the engine's wake-ups are
// durable JetStream message schedules per case, superseded whenever the case
// changes.
//
// This package imports the domain, the policy and the calendar; channels,
// stores and FIC come in through small interfaces.
package dunning
