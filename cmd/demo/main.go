// Command demo runs the whole Incasso pipeline on one machine with nothing
// installed but Go: an embedded NATS server with JetStream, ficsim (a
// Fatture in Cloud sandbox with two seeded companies), the poller, the
// dunning service and a local mail catcher. It prints events as they flow
// and reminders as they are "sent"; the mails are at the catcher's URL.
//
//	go run ./cmd/demo
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	_ "time/tzdata"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/delivery"
	"github.com/incasso-io/incasso/internal/dunningapp"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/lifecycle"
	"github.com/incasso-io/incasso/internal/mailcatcher"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
	"github.com/incasso-io/incasso/internal/pollerapp"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type counts struct {
	mu       sync.Mutex
	events   map[string]int
	mails    int
	handoffs int
	overHTTP int // events received by the demo's HTTP endpoint
	waiting  int // reminders waiting for approval, last seen
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		invoices = fs.Int("invoices", 150, "invoices per company")
		duration = fs.Duration("duration", 0, "stop after this long and check that events and reminders flowed (0: until Ctrl-C)")
		dataDir  = fs.String("data", "", "data directory (default: a fresh temporary one)")
		simAddr  = fs.String("ficsim", "127.0.0.1:8090", "ficsim address")
		natsAddr = fs.String("nats", "127.0.0.1:4222", "embedded NATS address (nats CLI: nats sub 'incasso.events.>')")
		pollAddr = fs.String("poller", "127.0.0.1:8080", "poller HTTP (webhooks, metrics)")
		opsAddr  = fs.String("ops", "127.0.0.1:8081", "dunning ops API")
		mailSMTP = fs.String("smtp", "127.0.0.1:1025", "mail catcher SMTP")
		mailHTTP = fs.String("mail", "127.0.0.1:8025", "mail catcher web page")
		verbose  = fs.Bool("v", false, "service logs on stderr")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "incasso-demo")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dataDir = d
	}
	logw := io.Discard
	if *verbose {
		logw = os.Stderr
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	// Business clock: inside the send window of a business day, so that
	// reminders go out during the demo whatever the hour.
	now, shifted := time.Now, false
	if c := calendar.DemoClock("send-window"); c != nil {
		now, shifted = c, true
	}

	// ficsim, seeded: its clock follows the business clock.
	sim, err := ficsim.New(ficsim.Config{Seed: 1, Companies: 2, Invoices: *invoices, Now: now, WebhookRetryBase: time.Second, AllowHTTPSinks: true})
	if err != nil {
		return err
	}
	defer sim.Close()
	simLn, err := net.Listen("tcp", *simAddr)
	if err != nil {
		return fmt.Errorf("-ficsim %s: %w", *simAddr, err)
	}
	simURL := "http://" + simLn.Addr().String()
	sim.SetFilesURL(simURL) // letters attach the invoices' PDFs
	// The sandbox and the local servers are one group, running from now on
	// (the OAuth connection below needs ficsim); the services and loops are
	// another, started last. The first actor of either to fail stops the
	// demo with its name.
	var infra lifecycle.Group
	infraCtx, stopInfra := context.WithCancel(context.Background())
	defer stopInfra()
	infra.Signal(infraCtx)
	server := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	}
	infra.Serve("ficsim "+simLn.Addr().String(), server(sim.Handler()), simLn, 5*time.Second)

	// Mail catcher.
	cnt := &counts{events: map[string]int{}}
	catcher := &mailcatcher.Catcher{OnMessage: func(m mailcatcher.Message) {
		cnt.mu.Lock()
		cnt.mails++
		cnt.mu.Unlock()
		fmt.Fprintf(out, "  ✉  %s → %s: %s\n", m.From, strings.Join(m.To, ", "), m.Subject)
	}}
	smtpLn, err := net.Listen("tcp", *mailSMTP)
	if err != nil {
		return fmt.Errorf("-smtp %s: %w", *mailSMTP, err)
	}
	infra.Add("mail catcher SMTP", func() error { return catcher.ServeSMTP(smtpLn) }, func(error) { catcher.Close() })
	mailLn, err := net.Listen("tcp", *mailHTTP)
	if err != nil {
		return fmt.Errorf("-mail %s: %w", *mailHTTP, err)
	}
	infra.Serve("mail catcher "+mailLn.Addr().String(), server(catcher.Handler()), mailLn, 5*time.Second)

	// Collection platform receiving hand-offs, verifying their Standard
	// Webhooks signature.
	platformSecret := delivery.NewSecret()
	platformKey, _ := standardwebhooks.NewWebhook(platformSecret)
	platLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	infra.Serve("collection platform", server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Signature timestamps are wall-clock time, not the business clock.
		if err := platformKey.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		cnt.mu.Lock()
		cnt.handoffs++
		cnt.mu.Unlock()
		fmt.Fprintf(out, "  ⚖  hand-off to the collection platform (signature verified, %d bytes)\n", len(body))
		w.WriteHeader(http.StatusAccepted)
	})), platLn, 5*time.Second)
	// An accounting tool receiving the event stream over HTTP (an endpoint
	// registered through the ops API below), verifying each signature.
	var hookKey atomic.Pointer[standardwebhooks.Webhook]
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	infra.Serve("HTTP event endpoint", server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := hookKey.Load()
		if key == nil || key.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ce struct{ Type, Subject string }
		_ = json.Unmarshal(body, &ce)
		cnt.mu.Lock()
		cnt.overHTTP++
		n := cnt.overHTTP
		cnt.mu.Unlock()
		if n <= 3 || (!strings.HasSuffix(ce.Type, ".created") && n%10 == 0) {
			fmt.Fprintf(out, "  ⇢ over HTTP: %-22s %-18s webhook-id %s (signature verified)\n", ce.Type, ce.Subject, trim(r.Header.Get("webhook-id"), 40))
		}
		w.WriteHeader(http.StatusNoContent)
	})), hookLn, 5*time.Second)
	infraDone := make(chan error, 1)
	go func() { infraDone <- infra.Run() }()

	// NATS with JetStream, embedded, with a password (as every Incasso NATS).
	natsPassword := randHex(16)
	ns, err := natsrv.Start(natsrv.Config{Host: hostOf(*natsAddr), Port: portOf(*natsAddr), StoreDir: filepath.Join(*dataDir, "nats"),
		Users: []natsrv.User{{Name: natsrv.EmbeddedUser, Password: natsPassword}}})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(natsrv.EmbeddedUser, natsPassword))
	if err != nil {
		return err
	}
	defer nc.Close()

	// Authorize Incasso on ficsim (OAuth, as `poller connect` does) and
	// store the connection, encrypted.
	secretKey := randHex(32)
	if err := connect(ctx, nc, simURL, secretKey, sim.CompanyIDs()); err != nil {
		return err
	}

	pollerLn := *pollAddr
	penv := []string{"NATS_URL=" + ns.ClientURL(), "NATS_PASSWORD=" + natsPassword, "FIC_BASE_URL=" + simURL, "FIC_CLIENT_ID=ficsim-client", "FIC_CLIENT_SECRET=ficsim-secret",
		"INCASSO_SECRET_KEY=" + secretKey, "POLLER_HTTP_ADDR=" + pollerLn, "POLLER_PUBLIC_URL=http://" + pollerLn, "POLLER_ALLOW_HTTP_SINK=true",
		"POLLER_MIN_INTERVAL=2m", "POLLER_LEASE_TTL=10s", "LOG_FORMAT=text"}
	if pem, err := sim.WebhookPublicKeyPEM(); err == nil {
		penv = append(penv, "FIC_WEBHOOK_PUBLIC_KEY="+pem, "FIC_WEBHOOK_APP_ID=ficsim-app")
	}
	pcfg, err := pollerapp.ParseConfig(penv)
	if err != nil {
		return err
	}
	if err := pcfg.Validate(false); err != nil {
		return err
	}
	opsToken := randHex(16)
	// The demo's policy: the default one with the creditor's registered
	// office and signature, which FIC does not provide (name, VAT number
	// and IBAN come from the sandbox's FIC API).
	policyFile := filepath.Join(*dataDir, "policy.yaml")
	demoPolicy := strings.Replace(string(policy.DefaultYAML()), "creditor: {}",
		`creditor: {address: "Via dei Mille 12, 20129 Milano (MI)", signature: "Ufficio crediti", phone: "+39 02 5550123", reply_to: "crediti@officinelombarde.it"}`, 1)
	if err := os.WriteFile(policyFile, []byte(demoPolicy), 0o600); err != nil {
		return err
	}
	denv := []string{"DUNNING_POLICY_FILE=" + policyFile, "NATS_URL=" + ns.ClientURL(), "NATS_PASSWORD=" + natsPassword, "FIC_BASE_URL=" + simURL, "FIC_ACCESS_TOKEN=" + sim.Token(),
		"SMTP_HOST=" + hostOf(*mailSMTP), fmt.Sprintf("SMTP_PORT=%d", portOf(*mailSMTP)), "SMTP_TLS=none", "SMTP_FROM=crediti@officinelombarde.it",
		"DUNNING_OPS_ADDR=" + *opsAddr, "DUNNING_OPS_TOKEN=" + opsToken, "LOG_FORMAT=text", "DUNNING_GROUP_DELAY=3s",
		"DUNNING_PLATFORM_URL=http://" + platLn.Addr().String() + "/handoff", "DUNNING_PLATFORM_SECRET=" + platformSecret, "DUNNING_ALLOWED_HOSTS=127.0.0.1", "DUNNING_OUTBOUND_ALLOW_NETS=127.0.0.1"}
	dcfg, err := dunningapp.ParseConfig(denv)
	if err != nil {
		return err
	}
	if err := dcfg.Validate(); err != nil {
		return err
	}

	// Watch the stream.
	sub, err := nc.Subscribe("incasso.events.>", func(m *nats.Msg) {
		e, err := events.Decode(m)
		if err != nil {
			return
		}
		cnt.mu.Lock()
		cnt.events[e.Type()]++
		n := cnt.events[e.Type()]
		cnt.mu.Unlock()
		if strings.HasSuffix(e.Type(), ".created") || n > 12 {
			if n == 13 {
				fmt.Fprintf(out, "  ● %-24s … (more: see the running totals)\n", e.Type())
			}
			return // the initial sync is summarised in the totals
		}
		d, _ := events.ParseData(e)
		due := "-"
		if a, err := decimal.NewFromString(d.Document.AmountDue); err == nil {
			due = notify.Euro(a)
		}
		fmt.Fprintf(out, "  ● %-24s company %d %-20s %-28s due € %s\n", e.Type(), d.Document.CompanyID, e.Subject(), trim(d.Document.Client.Name, 28), due)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	fmt.Fprintf(out, `Incasso demo
  ficsim (FIC sandbox)   %s   token %s, companies %v
  NATS + JetStream       %s   try: nats sub 'incasso.events.>' --user incasso --password %s
  poller                 http://%s/metrics
  console                http://%s/console/   sign in with the token %s and your name
  dunning ops API        http://%s   DUNNING_OPS_TOKEN=%s DUNNING_OPS_URL=http://%s go run ./cmd/dunning cases
  mail catcher           http://%s/   (reminders land here)
  business clock         %s (Europe/Rome)%s
`, simURL, sim.Token(), sim.CompanyIDs(), ns.ClientURL(), natsPassword, pollerLn, *opsAddr, opsToken, *opsAddr, opsToken, *opsAddr, mailLn.Addr(), now().In(rcv.Rome).Format("Mon 2 Jan 2006 15:04"),
		map[bool]string{true: " — shifted into the send window", false: ""}[shifted])

	pm := &pollerapp.Main{Config: pcfg, Log: slog.New(slog.NewTextHandler(logw, nil)), Out: progress{out}, Now: now}
	dm := &dunningapp.Main{Config: dcfg, Log: slog.New(slog.NewTextHandler(logw, nil)), Out: io.Discard, Now: now}
	var g lifecycle.Group
	g.Signal(ctx)
	g.Add("local servers", func() error { return <-infraDone }, func(error) { stopInfra() })
	g.Loop("poller", pm.Run)
	g.Loop("dunning", dm.Run)
	// Some activity, as in a real ledger: payments and new invoices arrive
	// through FIC's webhooks.
	g.Loop("activity", func(ctx context.Context) error { activity(ctx, sim, out); return nil })
	g.Loop("HTTP endpoint", func(ctx context.Context) error {
		secret, err := registerEndpoint(ctx, *opsAddr, opsToken, "http://"+hookLn.Addr().String()+"/incasso")
		if err != nil {
			fmt.Fprintf(out, "  ! HTTP endpoint not registered: %v\n", err)
			return nil
		}
		key, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return err
		}
		hookKey.Store(key)
		fmt.Fprintf(out, "  ⇢ HTTP endpoint registered: events go to http://%s/incasso, signed per Standard Webhooks (dunning endpoints lists it)\n", hookLn.Addr())
		<-ctx.Done()
		return nil
	})
	g.Loop("totals", func(ctx context.Context) error {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				waiting := approvals(ctx, *opsAddr, opsToken)
				cnt.mu.Lock()
				cnt.waiting = waiting
				fmt.Fprintf(out, "  … %d invoices created, %d overdue, %d paid, %d reminders e-mailed, %d hand-offs, %d waiting for approval, %d events delivered over HTTP\n",
					cnt.events["invoice.created"], cnt.events["invoice.overdue"], cnt.events["invoice.paid"]+cnt.events["invoice.partially_paid"], cnt.mails, cnt.handoffs, waiting, cnt.overHTTP)
				cnt.mu.Unlock()
			}
		}
	})
	if err := g.Run(); err != nil {
		return err
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	total := 0
	for _, n := range cnt.events {
		total += n
	}
	fmt.Fprintf(out, "demo stopped: %d events, %d reminders e-mailed, %d hand-offs\n", total, cnt.mails, cnt.handoffs)
	fmt.Fprintf(out, `The backlog found by the first sync and every formal step wait for approval; while the demo runs:
  DUNNING_OPS_TOKEN=%s DUNNING_OPS_URL=http://%s go run ./cmd/dunning approvals
  … approve COMPANY INVOICE -operator NAME   (or reject, postpone -until YYYY-MM-DD)
Read a letter before it goes out: go run ./cmd/dunning render -stage formal_notice
`, opsToken, *opsAddr)
	if *duration > 0 && (cnt.events["invoice.created"] == 0 || (cnt.mails == 0 && cnt.waiting <= 0) || cnt.overHTTP == 0) {
		return fmt.Errorf("expected events, reminders (sent or waiting for approval) and HTTP deliveries within %v: %d events, %d reminders, %d waiting, %d over HTTP",
			*duration, total, cnt.mails, cnt.waiting, cnt.overHTTP)
	}
	return nil
}

// progress prints the poller's scan progress, one line per page.
type progress struct{ w io.Writer }

func (p progress) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, "scan ") {
			fmt.Fprintf(p.w, "  ↻ %s\n", l)
		}
	}
	return len(b), nil
}

func activity(ctx context.Context, sim *ficsim.Server, out io.Writer) {
	r := mrand.New(mrand.NewPCG(2, 3))
	t := time.NewTicker(4 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids := sim.CompanyIDs()
		cid := ids[r.IntN(len(ids))]
		docs, _ := sim.Documents(cid)
		var open []int64
		for _, d := range docs {
			if d.Type == "invoice" && d.Open() {
				open = append(open, d.ID)
			}
		}
		if r.IntN(3) == 0 || len(open) == 0 {
			if m, err := sim.CreateDocument(cid, ficsim.NewDocument{}); err == nil {
				fmt.Fprintf(out, "  + ficsim: new invoice %d for company %d\n", m.ID, cid)
			}
			continue
		}
		id := open[r.IntN(len(open))]
		if _, err := sim.Pay(cid, id, ficsim.PaymentSpec{}); err == nil {
			fmt.Fprintf(out, "  + ficsim: payment recorded on invoice %d of company %d\n", id, cid)
		}
	}
}

func connect(ctx context.Context, nc *nats.Conn, simURL, secretHex string, companies []int64) error {
	o := fic.NewOAuth(simURL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/oauth/callback", nil)
	tok, err := o.AuthorizeAutoApproved(ctx)
	if err != nil {
		return err
	}
	js, err := jetstreamNew(nc)
	if err != nil {
		return err
	}
	key, _ := kvstore.ParseSecretKey(secretHex)
	tokens, err := kvstore.NewTokens(ctx, js, key, kvstore.BucketConfig{})
	if err != nil {
		return err
	}
	_, err = tokens.Put(ctx, "demo", kvstore.Connection{Token: tok, Companies: slices.Clone(companies)}, 0)
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

func trim(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// approvals counts the stages waiting in the approval queue (-1: unknown).
func approvals(ctx context.Context, addr, token string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/approvals", nil)
	if err != nil {
		return -1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var out struct {
		Approvals []json.RawMessage `json:"approvals"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return -1
	}
	return len(out.Approvals)
}

// registerEndpoint registers the demo's HTTP endpoint through the ops API
// once dunning answers, and returns its signing secret.
func registerEndpoint(ctx context.Context, addr, token, url string) (string, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "description": "demo accounting tool", "operator": "demo"})
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/endpoints", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err == nil {
			var out struct {
				Secret string `json:"secret"`
				Error  string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return out.Secret, nil
			}
			if resp.StatusCode < 500 {
				return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, out.Error)
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
