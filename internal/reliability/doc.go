// Package reliability holds the fault and crash tests that exercise the
// real binaries and servers together: processes killed with SIGKILL at
// random points and restarted, checked against ficsim's ground truth.
// Figures are recorded in RELIABILITY.md. Test-only.
package reliability
