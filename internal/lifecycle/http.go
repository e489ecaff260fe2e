package lifecycle

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound what one HTTP listener gives its clients, so that slow or
// many connections cannot hold the service: a client that sends its
// headers or its body too slowly is cut, an idle keep-alive connection is
// closed, and past MaxConns new connections wait in the kernel's backlog
// until one is freed instead of using up file descriptors.
type Limits struct {
	ReadHeader time.Duration // default 5s
	Read       time.Duration // the whole request, body included (default 10s)
	Write      time.Duration // default 30s
	Idle       time.Duration // default 60s
	MaxHeader  int           // bytes (default 64 KiB)
	MaxConns   int           // open connections (default 512)
}

func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.ReadHeader, 5*time.Second)
	def(&l.Read, 10*time.Second)
	def(&l.Write, 30*time.Second)
	def(&l.Idle, 60*time.Second)
	if l.MaxHeader <= 0 {
		l.MaxHeader = 64 << 10
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 512
	}
	return l
}

// HTTPServer is an http.Server for h with the limits' timeouts.
func HTTPServer(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeader, ReadTimeout: l.Read, WriteTimeout: l.Write,
		IdleTimeout: l.Idle, MaxHeaderBytes: l.MaxHeader}
}

// Limit caps the open connections of ln at the limits' MaxConns.
func Limit(ln net.Listener, l Limits) net.Listener {
	return netutil.LimitListener(ln, l.withDefaults().MaxConns)
}
