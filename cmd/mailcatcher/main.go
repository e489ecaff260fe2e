// Command mailcatcher is a local SMTP server with a web page listing what it
// received: the stand-in mail provider of the demo and of docker-compose.
//
//	mailcatcher -smtp 127.0.0.1:1025 -http 127.0.0.1:8025
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/incasso-io/incasso/internal/mailcatcher"
)

func main() {
	smtpAddr := flag.String("smtp", "127.0.0.1:1025", "SMTP listen address")
	httpAddr := flag.String("http", "127.0.0.1:8025", "web page listen address")
	health := flag.Bool("healthcheck", false, "probe a running mailcatcher at -http and exit")
	flag.Parse()
	if *health {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + strings.Replace(*httpAddr, "0.0.0.0:", "127.0.0.1:", 1) + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintln(os.Stderr, "mailcatcher: unhealthy:", err)
			os.Exit(1)
		}
		return
	}
	c := &mailcatcher.Catcher{}
	ln, err := net.Listen("tcp", *smtpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailcatcher: -smtp:", err)
		os.Exit(2)
	}
	go func() {
		if err := c.ServeSMTP(ln); err != nil {
			fmt.Fprintln(os.Stderr, "mailcatcher: smtp:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("mailcatcher: SMTP on %s, messages at http://%s/\n", *smtpAddr, *httpAddr)
	srv := &http.Server{Addr: *httpAddr, Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "mailcatcher: -http:", err)
		os.Exit(2)
	}
}
