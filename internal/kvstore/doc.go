// Package kvstore holds every JetStream-KV-backed store of Incasso:
// document snapshots, OAuth tokens (encrypted at rest), and per-company
// leases. Compare-and-set lives here, in one place: a write names the
// revision it read, and jetstream.ErrKeyRevisionMismatch / ErrKeyExists
// become receivables.ErrConflict so nothing above sees a JetStream error.
package kvstore
