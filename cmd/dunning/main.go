// Command dunning runs payment-reminder workflows on Incasso's receivables
// events, and is the CLI of its ops API.
//
//	dunning [run]                          run the service
//	dunning cases [-company N] [-state S] [-stage S] [-min-days N]
//	dunning show COMPANY INVOICE
//	dunning remind COMPANY INVOICE [-stage S] [-channel C] -operator NAME [-reason R]
//	dunning pause|promise COMPANY INVOICE -until YYYY-MM-DD -operator NAME [-reason R]
//	dunning resume|dispute COMPANY INVOICE -operator NAME [-reason R]
//	dunning preview -company N [-date YYYY-MM-DD]
//	dunning aging -company N [-date YYYY-MM-DD]
//
// The process lives in internal/dunningapp so the demo can embed it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback" // CA roots in the binary (FROM scratch images)

	"github.com/incasso-io/incasso/internal/dunningapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dunningapp.Command(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "dunning:", err)
		os.Exit(1)
	}
}
