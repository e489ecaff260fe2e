// Package poller turns Fatture in Cloud documents into receivables events.
//
// Where an event is born: Diff (pure) compares the stored snapshot of a
// document with what FIC returns now. Poller.Apply runs it and then, in this
// order, publishes the events, schedules the document's next time-based
// wake-up, and saves the snapshot with compare-and-set. A crash between
// publishing and saving re-runs the same diff later and re-publishes the same
// event ids, which JetStream deduplicates: every transition lands exactly
// once. A lost CAS (a webhook fetch and a scan racing) re-reads and re-diffs.
//
// Three paths feed Apply: a reconciliation Scan (streamed page by page), a
// webhook-triggered Refresh (one GET), and a fired timer (Fire, no FIC
// request at all). Deletions are announced only after a complete scan and a
// confirmation against the bin or a single GET: a failed or partial scan,
// or a page shifted by a concurrent delete, never produces a false delete.
//
// This package imports the domain only; FIC, NATS and KV come in through the
// receivables interfaces.
package poller
