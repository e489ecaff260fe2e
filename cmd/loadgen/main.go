// Command loadgen measures the poller against ficsim: initial sync, then a
// realistic change workload (new invoices, payments, partial payments,
// reversals, deletions), reporting FIC requests per change, detection
// latency, events/s, and the poller's RSS and CPU, next to the baseline of a
// plain periodic full scan. The poller runs as its own process (the real
// binary); ficsim and NATS run in this process.
//
//	go run ./cmd/loadgen -companies 100 -invoices 2000 -changes 300
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/mailcatcher"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type seen struct {
	mu   sync.Mutex
	want map[string]time.Time // key -> when the change was made
	got  map[string]time.Duration
	n    int
}

// wait returns when every wanted change was seen, or at deadline.
func (sn *seen) wait(deadline time.Time) {
	for time.Now().Before(deadline) {
		sn.mu.Lock()
		done := len(sn.got) >= len(sn.want)
		sn.mu.Unlock()
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latencies returns the detection latency percentile function and how
// many changes were detected.
func (sn *seen) latencies() (func(p float64) time.Duration, int) {
	sn.mu.Lock()
	lat := make([]time.Duration, 0, len(sn.got))
	for _, d := range sn.got {
		lat = append(lat, d)
	}
	sn.mu.Unlock()
	slices.Sort(lat)
	return func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}, len(lat)
}

// requests is the sandbox's request count since its last reset.
func requests(sim *ficsim.Server) int {
	n := 0
	for _, m := range sim.Stats() {
		for _, k := range m {
			n += k
		}
	}
	return n
}

func key(cid, id int64, typ string) string { return fmt.Sprintf("%d/%d/%s", cid, id, typ) }

func run() error {
	var (
		companies = flag.Int("companies", 20, "companies")
		invoices  = flag.Int("invoices", 1000, "invoices per company")
		changes   = flag.Int("changes", 200, "changes to apply after the initial sync")
		burst     = flag.Int("burst", 0, "after the workload, pay this many invoices of one company at once (a burst of webhooks) and report its requests and detection")
		rate      = flag.Float64("rate", 20, "changes per second")
		webhooks  = flag.Bool("webhooks", true, "subscribe the poller to ficsim's webhooks")
		bin       = flag.String("poller", "", "poller binary (default: go build ./cmd/poller)")
		openOnly  = flag.Bool("open-only", false, "POLLER_SCAN_OPEN_ONLY")
		interval  = flag.Duration("min-interval", time.Hour, "POLLER_MIN_INTERVAL (scans after the initial sync)")
		seed      = flag.Uint64("seed", 1, "seed")
		withDun   = flag.Bool("dunning", true, "also run the dunning binary (to a local mail catcher) and report reminders/s")
		cpuProf   = flag.String("cpuprofile", "", "write this process's CPU profile (ficsim) to the file")
		natsBin   = flag.String("nats-server", "", "nats-server binary (default: go build github.com/nats-io/nats-server/v2)")
		warm      = flag.Bool("prerender", true, "render ficsim's documents before the initial sync is timed: FIC renders on its own servers, the sandbox would take that CPU from the poller and nats-server on this machine")
		replicas  = flag.Int("replicas", 0, "scale-out mode: run this many poller replicas; report the initial sync, each replica's share, the idle cluster's cost over -idle and the failover after a SIGKILL (no change workload)")
		idle      = flag.Duration("idle", 2*time.Minute, "scale-out mode: how long the idle cost is measured")
		stagger   = flag.Duration("stagger", 0, "scale-out mode: time between two replicas' starts (a rolling start)")
		simGOGC   = flag.Int("sandbox-gogc", 400, "GOGC of this process (ficsim): its large, long-lived ledger makes GC the sandbox's main cost, which in production would be FIC's")
	)
	flag.Parse()
	debug.SetGCPercent(*simGOGC)
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "poller")
		b := exec.Command("go", "build", "-o", *bin, "./cmd/poller")
		b.Stderr = os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build poller: %w", err)
		}
	}
	dunBin := filepath.Join(dir, "dunning")
	if *withDun {
		b := exec.Command("go", "build", "-o", dunBin, "./cmd/dunning")
		b.Stderr = os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build dunning: %w", err)
		}
	}

	fmt.Printf("seeding ficsim: %d companies x %d invoices ...\n", *companies, *invoices)
	sim, err := ficsim.New(ficsim.Config{Seed: *seed, Companies: *companies, Invoices: *invoices, Quotas: ficsim.QuotaConfig{Off: true}, WebhookRetryBase: 200 * time.Millisecond, AllowHTTPSinks: true})
	if err != nil {
		return err
	}
	defer sim.Close()
	if *warm {
		t0 := time.Now()
		n := sim.Prerender()
		runtime.GC()
		fmt.Printf("prerendered %d documents in ficsim in %v (not timed; -prerender=false to include it)\n", n, time.Since(t0).Round(time.Millisecond))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simURL := "http://" + ln.Addr().String()
	go func() { _ = http.Serve(ln, sim.Handler()) }()

	// NATS runs as its own process, as in production: its heap (and GC) is
	// not the sandbox's ledger, and its CPU and RSS are reported apart.
	if *natsBin == "" {
		*natsBin = filepath.Join(dir, "nats-server")
		b := exec.Command("go", "build", "-o", *natsBin, "github.com/nats-io/nats-server/v2")
		b.Stderr = os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build nats-server: %w", err)
		}
	}
	natsAddr := freeAddr()
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	monAddr := freeAddr()
	_, monPort, _ := net.SplitHostPort(monAddr)
	nsCmd := exec.Command(*natsBin, "-js", "-sd", filepath.Join(dir, "nats"), "-a", "127.0.0.1", "-p", natsPort, "-m", monPort)
	if err := nsCmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	defer func() { _ = nsCmd.Process.Signal(os.Interrupt); _ = nsCmd.Wait() }()
	natsURL := "nats://" + natsAddr
	nc, err := nats.Connect(natsURL, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i := 0; ; i++ {
		if _, err := js.AccountInfo(ctx); err == nil {
			break
		} else if i == 100 {
			return fmt.Errorf("nats-server at %s: %w", natsURL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Authorize once through ficsim's OAuth and store the connection.
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	o := fic.NewOAuth(simURL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil)
	tok, err := o.AuthorizeAutoApproved(ctx)
	if err != nil {
		return err
	}
	tokens, err := kvstore.NewTokens(ctx, js, secret, kvstore.BucketConfig{})
	if err != nil {
		return err
	}
	if _, err := tokens.Put(ctx, "load", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		return err
	}
	total := 0
	for _, cid := range sim.CompanyIDs() {
		total += sim.DocumentCount(cid)
	}

	httpAddr := freeAddr()
	pem, _ := sim.WebhookPublicKeyPEM()
	env := append(os.Environ(), "NATS_URL="+natsURL, "FIC_BASE_URL="+simURL, "FIC_CLIENT_ID=ficsim-client",
		"FIC_CLIENT_SECRET=ficsim-secret", "INCASSO_SECRET_KEY="+hex.EncodeToString(secret), "POLLER_HTTP_ADDR="+httpAddr,
		"POLLER_MIN_INTERVAL="+interval.String(), "FIC_CLIENT_LIMITS_DISABLED=true", "LOG_LEVEL=warn", "FIC_WEBHOOK_PUBLIC_KEY="+pem,
		"POLLER_SCAN_OPEN_ONLY="+strconv.FormatBool(*openOnly), "POLLER_PPROF=true")
	if *webhooks {
		env = append(env, "POLLER_PUBLIC_URL=http://"+httpAddr, "POLLER_ALLOW_HTTP_SINK=true")
	}
	if *replicas > 0 {
		var base []string
		for _, e := range env {
			if !strings.HasPrefix(e, "POLLER_HTTP_ADDR=") && !strings.HasPrefix(e, "POLLER_PUBLIC_URL=") && !strings.HasPrefix(e, "POLLER_PPROF=") {
				base = append(base, e)
			}
		}
		so := &scaleOut{bin: *bin, env: base, replicas: *replicas, companies: *companies, total: total, idle: *idle, stagger: *stagger, js: js,
			natsPID: nsCmd.Process.Pid, monitorURL: "http://" + monAddr}
		return so.run(ctx)
	}
	cmd := exec.Command(*bin)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	selfCPU0 := cpu(os.Getpid())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	fmt.Printf("poller pprof: http://%s/debug/pprof/\n", httpAddr)

	// Initial sync.
	var peakRSS, natsPeakRSS int64
	for {
		time.Sleep(200 * time.Millisecond)
		if r := rss(pid); r > peakRSS {
			peakRSS = r
		}
		if r := rss(nsCmd.Process.Pid); r > natsPeakRSS {
			natsPeakRSS = r
		}
		n, err := countCreated(ctx, js)
		if err == nil && n >= total {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return errors.New("initial sync did not finish in 30 minutes")
		}
	}
	syncDur := time.Since(start)
	syncCPU := cpu(pid)
	st := sim.Stats()
	syncReqs := 0
	for _, m := range st {
		syncReqs += m["list_issued_documents"]
	}
	fmt.Printf("initial sync: %d documents in %v (%.0f docs/s), %d list requests, peak RSS %.1f MB, CPU %.1fs\n",
		total, syncDur.Round(time.Millisecond), float64(total)/syncDur.Seconds(), syncReqs, float64(peakRSS)/1e6, syncCPU.Seconds())
	fmt.Printf("  during the sync: nats-server CPU %.1fs, peak RSS %.1f MB; loadgen (ficsim) CPU %.1fs\n",
		cpu(nsCmd.Process.Pid).Seconds(), float64(natsPeakRSS)/1e6, (cpu(os.Getpid()) - selfCPU0).Seconds())
	if *webhooks {
		// Wait for every subscription to be verified.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			v := 0
			for _, d := range sim.Deliveries() {
				if d.Type == "verification" && d.Status == 200 {
					v++
				}
			}
			if v >= *companies {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Watch the stream for the expected transitions.
	sn := &seen{want: map[string]time.Time{}, got: map[string]time.Duration{}}
	sub, err := nc.Subscribe("incasso.events.>", func(m *nats.Msg) {
		e, err := events.Decode(m)
		if err != nil {
			return
		}
		d, err := events.ParseData(e)
		if err != nil {
			return
		}
		k := key(d.Document.CompanyID, d.Document.ID, e.Type())
		sn.mu.Lock()
		sn.n++
		if t, ok := sn.want[k]; ok {
			if _, done := sn.got[k]; !done {
				sn.got[k] = time.Since(t)
			}
		}
		sn.mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	sim.ResetStats()
	cpu0 := cpu(pid)
	r := mrand.New(mrand.NewPCG(*seed, 7))
	ids := sim.CompanyIDs()
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	wstart := time.Now()
	applied := 0
	for applied < *changes {
		<-tick.C
		cid := ids[r.IntN(len(ids))]
		open, paid, _ := sim.InvoiceIDs(cid)
		var id int64
		var typ string
		now := time.Now()
		switch k := r.IntN(100); {
		case k < 25:
			m, err := sim.CreateDocument(cid, ficsim.NewDocument{})
			if err != nil {
				continue
			}
			id, typ = m.ID, "invoice.created"
		case k < 60 && len(open) > 0:
			id = open[r.IntN(len(open))]
			m, err := sim.Pay(cid, id, ficsim.PaymentSpec{})
			if err != nil {
				continue
			}
			typ = "invoice.partially_paid"
			if !m.Open() {
				typ = "invoice.paid"
			}
		case k < 80 && len(open) > 0:
			id = open[r.IntN(len(open))]
			amt := decimal.RequireFromString("10.00")
			if _, err := sim.Pay(cid, id, ficsim.PaymentSpec{Amount: &amt}); err != nil {
				continue
			}
			typ = "invoice.partially_paid"
		case k < 90 && len(paid) > 0:
			id = paid[r.IntN(len(paid))]
			if _, err := sim.Reverse(cid, id, nil); err != nil {
				continue
			}
			typ = "invoice.reopened"
		case len(open) > 0:
			id = open[r.IntN(len(open))]
			if err := sim.DeleteDocument(cid, id); err != nil {
				continue
			}
			typ = "invoice.deleted"
		default:
			continue
		}
		sn.mu.Lock()
		sn.want[key(cid, id, typ)] = now
		sn.mu.Unlock()
		applied++
	}
	// Wait for detection (webhooks: seconds; polling only: up to a scan interval).
	deadline := time.Now().Add(60 * time.Second)
	sn.wait(deadline)
	wdur := time.Since(wstart)
	if r := rss(pid); r > peakRSS {
		peakRSS = r
	}
	reqs := requests(sim)
	pct, detected := sn.latencies()
	sn.mu.Lock()
	wanted, evs := len(sn.want), sn.n
	sn.mu.Unlock()
	hours := wdur.Hours()
	fmt.Printf("\nchanges: %d applied, %d detected in %v; %d events published\n", wanted, detected, wdur.Round(time.Millisecond), evs)
	fmt.Printf("FIC requests during the workload: %d (%.2f per detected change), %.0f per company per hour\n",
		reqs, float64(reqs)/float64(max(1, detected)), float64(reqs)/float64(*companies)/hours)
	fmt.Printf("detection latency: p50 %v, p99 %v, max %v\n", pct(0.5), pct(0.99), pct(1))
	fmt.Printf("poller: peak RSS %.1f MB, CPU %.2fs during the workload\n", float64(peakRSS)/1e6, (cpu(pid) - cpu0).Seconds())
	if *burst > 0 {
		cid := ids[0]
		open, _, _ := sim.InvoiceIDs(cid)
		n := min(*burst, len(open))
		sim.ResetStats()
		sn.mu.Lock()
		sn.want, sn.got = map[string]time.Time{}, map[string]time.Duration{}
		sn.mu.Unlock()
		bstart := time.Now()
		for _, id := range open[:n] {
			now := time.Now()
			m, err := sim.Pay(cid, id, ficsim.PaymentSpec{})
			if err != nil {
				continue
			}
			typ := "invoice.partially_paid"
			if !m.Open() {
				typ = "invoice.paid"
			}
			sn.mu.Lock()
			sn.want[key(cid, id, typ)] = now
			sn.mu.Unlock()
		}
		sn.wait(time.Now().Add(120 * time.Second))
		breqs := requests(sim)
		bp, bdet := sn.latencies()
		fmt.Printf("\nburst: %d invoices of company %d paid at once, %d detected in %v; FIC requests %d (%.3f per change); detection p50 %v, p99 %v\n",
			n, cid, bdet, time.Since(bstart).Round(time.Millisecond), breqs, float64(breqs)/float64(max(1, bdet)), bp(0.5), bp(0.99))
	}
	if *withDun {
		// Dunning starts on the full backlog of events (every open invoice
		// opens a case; cases whose stage is due send at once).
		var dunPid int
		var mails atomic.Int64
		var dunStart time.Time
		if *withDun {
			catcher := &mailcatcher.Catcher{OnMessage: func(mailcatcher.Message) { mails.Add(1) }}
			sln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			go func() { _ = catcher.ServeSMTP(sln) }()
			defer catcher.Close()
			opsAddr, opsToken := freeAddr(), "loadgen-ops-token-0000"
			fmt.Printf("dunning pprof: http://%s/debug/pprof/ (Authorization: Bearer %s)\n", opsAddr, opsToken)
			d := exec.Command(dunBin)
			d.Env = append(os.Environ(), "NATS_URL="+natsURL, "FIC_BASE_URL="+simURL, "FIC_ACCESS_TOKEN="+sim.Token(),
				"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", sln.Addr().(*net.TCPAddr).Port), "SMTP_TLS=none",
				"DUNNING_OPS_ADDR="+opsAddr, "DUNNING_OPS_TOKEN="+opsToken, "DUNNING_PPROF=true", "DUNNING_GROUP_DELAY=5s", "LOG_LEVEL=error", "INCASSO_DEMO_CLOCK=send-window")
			d.Stderr = os.Stderr
			if err := d.Start(); err != nil {
				return err
			}
			defer func() { _ = d.Process.Signal(os.Interrupt); _ = d.Wait() }()
			dunPid, dunStart = d.Process.Pid, time.Now()
		}
		cons, err := js.Consumer(ctx, events.StreamName, "dunning")
		for i := 0; err != nil && i < 100; i++ {
			time.Sleep(100 * time.Millisecond)
			cons, err = js.Consumer(ctx, events.StreamName, "dunning")
		}
		if err != nil {
			return fmt.Errorf("dunning consumer: %w", err)
		}
		var processed uint64
		for time.Since(dunStart) < 10*time.Minute {
			time.Sleep(500 * time.Millisecond)
			ci, err := cons.Info(ctx)
			if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
				processed = ci.Delivered.Consumer
				break
			}
		}
		caught := time.Since(dunStart)
		last, stable := mails.Load(), time.Now()
		for time.Since(stable) < 5*time.Second {
			time.Sleep(250 * time.Millisecond)
			if n := mails.Load(); n != last {
				last, stable = n, time.Now()
			}
		}
		el := stable.Sub(dunStart).Seconds()
		fmt.Printf("dunning: %d events handled in %.1fs (%.0f events/s, one case per open invoice); %d reminders e-mailed (grouped per client) in %.1fs (%.1f reminders/s); RSS %.1f MB, CPU %.1fs\n",
			processed, caught.Seconds(), float64(processed)/caught.Seconds(), last, el, float64(last)/max(el, 0.001), float64(rss(dunPid))/1e6, cpu(dunPid).Seconds())
	}
	pages := (*invoices+99)/100 + (*invoices/20+99)/100
	changesPerCompanyHour := float64(detected) / float64(*companies) / hours
	basePerChange := float64(pages*12) / changesPerCompanyHour
	fmt.Printf("\nbaseline, cron full scan every 5 min: %d requests per scan per company, %d per company-hour, detection p50 150 s / p99 297 s\n", pages, pages*12)
	fmt.Printf("  at this workload's %.0f changes per company-hour: baseline %.2f requests per change, Incasso %.2f (ratio %.2f)\n",
		changesPerCompanyHour, basePerChange, float64(reqs)/float64(max(1, detected)), float64(reqs)/float64(max(1, detected))/basePerChange)
	fmt.Printf("  a cron that fits FIC's 40,000/month at 50%% can scan every %.0f min: detection p50 %.0f min\n",
		float64(pages)/(20000.0/720)*60, float64(pages)/(20000.0/720)*60/2)
	return nil
}

func countCreated(ctx context.Context, js jetstream.JetStream) (int, error) {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("incasso.events.*.*.created"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rss reads the resident set size of a process in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// cpu reads user+system CPU time of a process.
func cpu(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stt) * time.Second / 100
}
