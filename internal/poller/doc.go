// Package poller turns Fatture in Cloud documents into receivables events.
//
// Where an event is born: Diff (pure) compares the stored snapshot of a
// document with what FIC returns now and numbers the transitions with the
// document's sequence (the event id is derived from it: one id per
// occurrence). Poller.Apply runs it under a write-ahead commit protocol:
// set the document's durable timer, save the new snapshot with the
// transitions as pending, publish them, save the snapshot without them.
// Whoever reads a snapshot with pending transitions publishes them first,
// with the same ids, which JetStream deduplicates: whatever fails, every
// transition lands exactly once and never without its state. A lost CAS (a
// webhook fetch and a scan racing) re-reads and re-diffs.
//
// Four paths feed Apply: a reconciliation Scan (streamed page by page), a
// webhook-triggered Refresh (one GET), a burst of webhooks (RefreshMany,
// which lists pages when that costs fewer requests than GETs), and a fired
// timer (Fire, no FIC request at all). Deletions are announced only after
// a complete scan and a confirmation against the bin or a single GET: a
// failed or partial scan, or a page shifted by a concurrent delete, never
// produces a false delete; a scan that would delete too much at once is
// held by the DeleteGuard for a person, and a document already known under
// another company is refused (Owners).
//
// This package imports the domain only; FIC, NATS and KV come in through the
// receivables interfaces.
package poller
