// Package ficsim is a sandbox that speaks Fatture in Cloud API v2: OAuth2
// (authorization code with PKCE, refresh-token rotation), the issued-document
// list with FIC's pagination envelope, fieldsets and `q` filters, the bin,
// webhook subscriptions with the verification handshake and ES256-signed
// CloudEvents deliveries, FIC's quota model (429 short-term, 403 +
// Retry-After hourly/monthly) and faults injected on demand.
//
// It keeps all state in memory, seeded deterministically from a seed, and is
// driven by tests and demos through an admin API under /_sim/, a prefix FIC
// does not use. Its document model is its own (not internal/fic's types), so
// the client is tested against an independent rendering of the spec.
package ficsim
