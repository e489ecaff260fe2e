// Package safehttp is the HTTP client for every request Incasso sends to
// an address someone configured or a message named (collection-platform
// hand-offs, subscriber webhooks): it will not be turned against the
// network it runs in. A redirect to another origin is not followed; the
// address a host name resolves to is checked when the connection is made
// (after DNS, so a name that resolves to 127.0.0.1 or to the cloud
// metadata address is refused, whatever it is called); the scheme and the
// port are checked before anything is sent.
package safehttp

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// ErrRefused wraps every request the guard refuses.
var ErrRefused = errors.New("safehttp: refused")

// Policy says what a client may reach.
type Policy struct {
	// AllowHTTP permits http:// (default: https only).
	AllowHTTP bool
	// Ports permitted (default: 443, and 80 with AllowHTTP).
	Ports []int
	// AllowNets are networks reachable although private, loopback or
	// link-local (e.g. 127.0.0.1/32 for a local demo platform). Nothing
	// else in those ranges is.
	AllowNets []netip.Prefix
	// Timeout of a whole request (default 15s).
	Timeout time.Duration
}

// blocked are the ranges a request must not reach unless allowed: this
// host, private networks, link-local (the cloud metadata endpoint
// 169.254.169.254 included), carrier-grade NAT, multicast, unspecified.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Allowed reports whether p lets a connection reach addr.
func (p Policy) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range p.AllowNets {
		if n.Contains(addr) {
			return true
		}
	}
	for _, b := range blocked {
		if b.Contains(addr) {
			return false
		}
	}
	return true
}

func (p Policy) ports() []int {
	if len(p.Ports) > 0 {
		return p.Ports
	}
	if p.AllowHTTP {
		return []int{443, 80}
	}
	return []int{443}
}

// CheckURL refuses a URL the policy does not let a request go to (scheme,
// port, a literal address); names are checked again once resolved.
func (p Policy) CheckURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	default:
		return fmt.Errorf("%w: scheme %q", ErrRefused, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrRefused)
	}
	port := 443
	if u.Scheme == "http" {
		port = 80
	}
	if s := u.Port(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%w: port %q", ErrRefused, s)
		}
		port = n
	}
	if !slices.Contains(p.ports(), port) {
		return fmt.Errorf("%w: port %d", ErrRefused, port)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !p.Allowed(a) {
		return fmt.Errorf("%w: address %s", ErrRefused, a)
	}
	return nil
}

// Client returns an HTTP client that enforces p on every request and
// every connection.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		// The address actually dialled, after DNS: a name that resolves to
		// a refused range is refused here.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: address %q", ErrRefused, address)
			}
			if !p.Allowed(ap.Addr()) {
				return fmt.Errorf("%w: %s resolves to a refused address (%s)", ErrRefused, address, ap.Addr())
			}
			return nil
		}}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		Proxy:                 nil, // a proxy would dial on our behalf, past the check
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	return &http.Client{Timeout: timeout, Transport: guarded{p, tr},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			first := via[0].URL
			if r.URL.Scheme != first.Scheme || r.URL.Host != first.Host {
				return fmt.Errorf("%w: redirect from %s to another origin (%s://%s)", ErrRefused, first.Host, r.URL.Scheme, r.URL.Host)
			}
			if len(via) >= 3 {
				return fmt.Errorf("%w: too many redirects", ErrRefused)
			}
			return nil
		}}
}

// guarded checks each request's URL before the transport sees it.
type guarded struct {
	p  Policy
	rt http.RoundTripper
}

func (g guarded) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := g.p.CheckURL(r.URL); err != nil {
		return nil, err
	}
	return g.rt.RoundTrip(r)
}

// ParseNets parses a comma list of CIDRs or addresses (an address is its
// /32 or /128).
func ParseNets(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("safehttp: %q is neither a CIDR nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
