// Package layout holds no code: its test keeps the import rules that make
// the layout readable (see the README's Layout section). The domain
// (receivables) depends on nothing of ours and on no transport; the use
// cases (poller, dunning) depend only on the domain and its pure helpers;
// ficsim is never built from the client it is used to test; only the
// commands wire the app packages.
package layout
