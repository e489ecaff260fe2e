// Command ficsim runs the Fatture in Cloud API v2 sandbox: a seeded,
// in-memory FIC with OAuth, pagination, quotas, webhooks and faults, for
// tests, the demo and anyone trying Incasso without an FIC account.
//
//	go run ./cmd/ficsim -addr 127.0.0.1:8090 -seed 1 -companies 2 -invoices 500 -token demo-token
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // Europe/Rome without a system zoneinfo (FROM scratch images)

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/lifecycle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ficsim:", err)
		os.Exit(2)
	}
}

// run parses flags, starts the sandbox and blocks until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ficsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr        = fs.String("addr", "127.0.0.1:8090", "listen address")
		seed        = fs.Uint64("seed", 1, "seed of the deterministic data")
		companies   = fs.Int("companies", 2, "number of companies")
		invoices    = fs.Int("invoices", 500, "invoices per company")
		creditNotes = fs.Int("credit-notes", 0, "credit notes per company (default invoices/20)")
		token       = fs.String("token", "demo-token", "manual token accepted for every company")
		clientID    = fs.String("client-id", "ficsim-client", "OAuth client id")
		secretFile  = fs.String("client-secret-file", "", "file holding the OAuth client secret (default: ficsim-secret)")
		redirects   = fs.String("redirect-urls", "", "comma-separated allowed OAuth redirect URLs (default: any)")
		accessTTL   = fs.Duration("access-ttl", 24*time.Hour, "OAuth access token lifetime")
		perPage     = fs.Int("default-per-page", 50, "per_page when the request omits it (docs: 50, spec: 5)")
		lax         = fs.Bool("lax-filters", false, "accept q filters and sorts on undocumented fields")
		lenient     = fs.Bool("lenient", false, "turn off behaviours observed on FIC but not documented (implies -lax-filters; see docs/fic-facts.md)")
		strict      = fs.Bool("strict", true, "the default: behave as FIC is documented and observed to (-strict=false is -lenient)")
		httpSinks   = fs.Bool("allow-http-sinks", false, "accept http:// webhook sinks (FIC refuses them; for a local poller)")
		filesURL    = fs.String("files-url", "", "base URL of documents' PDF links (url), as clients reach the sandbox (default: the spec example's bare file name)")
		keyFile     = fs.String("webhook-key", "", "PEM EC P-256 private key for webhook JWTs (default: generated)")
		retryBase   = fs.Duration("webhook-retry", 2*time.Second, "first retry interval of a failed webhook delivery")
		quotasOff   = fs.Bool("quotas-off", false, "disable quotas")
		hourly      = fs.Int("hourly-limit", 1000, "requests per hour per company")
		hourWindow  = fs.Duration("hourly-window", time.Hour, "length of the 'hourly' window (shorten for tests)")
		monthly     = fs.Int("monthly-limit", 40000, "requests per month per company")
		short       = fs.Int("short-limit", 300, "short-term requests per window per company (unverified FIC number)")
		shortWindow = fs.Duration("short-window", 5*time.Minute, "short-term sliding window")
		latency     = fs.Int("latency-ms", 0, "fault: added latency per API request")
		errRatio    = fs.Float64("error-ratio", 0, "fault: share of API requests answered 5xx")
		rlRatio     = fs.Float64("ratelimit-ratio", 0, "fault: share answered 429")
		dropRatio   = fs.Float64("drop-ratio", 0, "fault: share whose connection is dropped")
		malformed   = fs.Float64("malformed-ratio", 0, "fault: share answered with malformed JSON")
		truncate    = fs.Float64("truncate-ratio", 0, "fault: share whose body is cut half way")
		dupHooks    = fs.Float64("duplicate-webhook-ratio", 0, "fault: share of webhooks delivered twice")
		jsonLogs    = fs.Bool("json-logs", false, "log as JSON")
		health      = fs.Bool("healthcheck", false, "probe a running ficsim at -addr and exit (container health checks)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *health {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + strings.Replace(*addr, "0.0.0.0:", "127.0.0.1:", 1) + "/_sim/clock")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	cfg := ficsim.Config{
		Seed: *seed, Companies: *companies, Invoices: *invoices, CreditNotes: *creditNotes, Token: *token,
		ClientID: *clientID, AccessTTL: *accessTTL, DefaultPerPage: *perPage, LaxFilters: *lax,
		Lenient: *lenient || !*strict, AllowHTTPSinks: *httpSinks, WebhookRetryBase: *retryBase, FilesURL: *filesURL,
		Quotas: ficsim.QuotaConfig{Off: *quotasOff, Hourly: *hourly, HourlyWindow: *hourWindow, Monthly: *monthly, ShortTerm: *short, ShortWindow: *shortWindow},
		Faults: ficsim.Faults{LatencyMS: *latency, ErrorRatio: *errRatio, RateLimitRatio: *rlRatio, DropRatio: *dropRatio,
			MalformedRatio: *malformed, TruncateRatio: *truncate, DuplicateWebhookRatio: *dupHooks},
	}
	if *redirects != "" {
		cfg.RedirectURLs = strings.Split(*redirects, ",")
	}
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("-client-secret-file: %w", err)
		}
		cfg.ClientSecret = strings.TrimSpace(string(b))
	}
	if *keyFile != "" {
		k, err := readECKey(*keyFile)
		if err != nil {
			return fmt.Errorf("-webhook-key: %w", err)
		}
		cfg.WebhookKey = k
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		h = slog.NewJSONHandler(stderr, nil)
	}
	cfg.Logger = slog.New(h)
	sim, err := ficsim.New(cfg)
	if err != nil {
		return err
	}
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "ficsim: Fatture in Cloud API v2 sandbox\n")
	fmt.Fprintf(stdout, "  base URL:   %s\n", base)
	fmt.Fprintf(stdout, "  token:      %s\n", cfg.Token)
	fmt.Fprintf(stdout, "  companies: ")
	for _, id := range sim.CompanyIDs() {
		fmt.Fprintf(stdout, " %d", id)
	}
	fmt.Fprintf(stdout, "\n  oauth:      client_id=%s  %s/oauth/authorize\n", *clientID, base)
	fmt.Fprintf(stdout, "  admin:      %s/_sim/companies\n", base)
	fmt.Fprintf(stdout, "  try:        curl -H 'Authorization: Bearer %s' '%s/c/%d/issued_documents?type=invoice&per_page=5'\n", cfg.Token, base, sim.CompanyIDs()[0])

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	var g lifecycle.Group
	g.Signal(ctx)
	g.Serve("ficsim "+ln.Addr().String(), srv, ln, 5*time.Second)
	return g.Run()
}

func readECKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an EC key")
	}
	return ek, nil
}
