package pollerapp

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/incasso-io/incasso/internal/contacts"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/inbox"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/lifecycle"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/settle"
	"github.com/incasso-io/incasso/internal/tenant"
	"github.com/incasso-io/incasso/internal/timers"
	"github.com/incasso-io/incasso/internal/webhooksub"
)

// Main is the poller process: wired from Config, run until ctx ends.
type Main struct {
	Config Config
	Log    *slog.Logger
	Out    io.Writer // human-readable progress
	// Now is the business clock (nil: real time). The demo and tests use a
	// shifted clock; durable timers are translated to real time.
	Now func() time.Time
	// Limits of the HTTP listener (webhooks, metrics, health; zero:
	// lifecycle's defaults, with POLLER_HTTP_MAX_CONNS).
	Limits lifecycle.Limits

	// Set once running (tests read them).
	HTTPAddr  string
	DebugAddr string // the pprof listener, when POLLER_PPROF is on
	NATSURL   string
	ready     atomic.Bool
	// subStates is each company's webhook subscription state (webhooksub).
	subStates sync.Map
	// storeErr is what JetStream refused at the last publish (nil: the
	// last one was stored).
	storeErr atomic.Pointer[error]
	started  chan struct{}
	once     sync.Once
	runner   atomic.Pointer[poller.Runner]
}

// Owned returns the companies this replica currently reconciles.
func (m *Main) Owned() []int64 {
	if r := m.runner.Load(); r != nil {
		return r.Owned()
	}
	return nil
}

// Started is closed when the HTTP server listens and the pipeline runs.
func (m *Main) Started() <-chan struct{} {
	m.once.Do(func() { m.started = make(chan struct{}) })
	return m.started
}

func (m *Main) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// companySources builds the sources of the companies to reconcile.
type companySources struct {
	mu      sync.Mutex
	clients map[string]*fic.Client // by connection
	byComp  map[int64]*fic.Client
	list    func(ctx context.Context) ([]poller.Company, error)
}

func (cs *companySources) source(cid int64) (*fic.Source, *fic.Client, error) {
	cs.mu.Lock()
	c, ok := cs.byComp[cid]
	cs.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("company %d is not connected", cid)
	}
	return &fic.Source{Client: c}, c, nil
}

// Run starts everything and blocks until ctx is done; then it drains.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	log := m.Log
	if m.Out == nil {
		m.Out = io.Discard
	}
	m.Started()
	if cfg.InstanceID == "" {
		h, _ := os.Hostname()
		cfg.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}

	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-poller "+cfg.InstanceID))
	if err != nil {
		return err
	}
	defer nc.Close()
	m.NATSURL = nc.URL
	if nc.Server != nil {
		log.Info("embedded NATS server with JetStream started", "url", nc.URL, "store", cfg.DataDir+"/nats")
	}
	js := nc.JS
	bc := kvstore.BucketConfig{Replicas: cfg.Replicas}
	var (
		snaps   *kvstore.Snapshots
		sched   *timers.Scheduler
		leases  *kvstore.Leases
		members *kvstore.Partitions
		holds   *kvstore.Holds
		owners  *kvstore.Owners
		batches *kvstore.Batches
		// contactStore is invalidated on entities.clients.update.
		contactStore *kvstore.Contacts
	)
	err = natsrv.Retry(ctx, func(ctx context.Context) error {
		if _, err := events.EnsureStream(ctx, js, events.StreamConfig{Replicas: cfg.Replicas, MaxAge: cfg.EventsMaxAge, Duplicates: cfg.EventsDedup}); err != nil {
			return err
		}
		var err error
		if snaps, err = kvstore.NewSnapshots(ctx, js, bc); err != nil {
			return err
		}
		if sched, err = timers.New(ctx, js, cfg.Replicas); err != nil {
			return err
		}
		if holds, err = kvstore.NewHolds(ctx, js, bc); err != nil {
			return err
		}
		if owners, err = kvstore.NewOwners(ctx, js, bc); err != nil {
			return err
		}
		if batches, err = kvstore.NewBatches(ctx, js, bc); err != nil {
			return err
		}
		if contactStore, err = kvstore.NewContacts(ctx, js, bc); err != nil {
			return err
		}
		if err := inbox.Ensure(ctx, js, cfg.Replicas); err != nil {
			return err
		}
		if leases, err = kvstore.NewLeases(ctx, js, cfg.InstanceID, cfg.LeaseTTL, bc); err != nil {
			return err
		}
		members, err = kvstore.NewPartitions(ctx, js, memberName(cfg.InstanceID), cfg.LeaseTTL, bc)
		return err
	})
	if err != nil {
		return err
	}
	if members.TTL() != members.Configured {
		log.Warn("POLLER_LEASE_TTL differs from the members bucket's TTL: this poller follows the bucket's, as every replica does (to change it: stop the pollers, then nats kv edit "+kvstore.MembersBucket+" --ttl ...)",
			"configured", members.Configured, "bucket", members.TTL())
	}
	if leases.TTL != leases.Configured {
		log.Warn("POLLER_LEASE_TTL differs from the leases bucket's TTL: this poller follows the bucket's, as every replica does (to change it: stop the pollers, then nats kv edit "+kvstore.LeasesBucket+" --ttl ...)",
			"configured", leases.Configured, "bucket", leases.TTL)
	}
	sched.Clock = m.Now

	var runner *poller.Runner
	met := newMetrics(func() float64 {
		if runner == nil {
			return 0
		}
		return float64(len(runner.Owned()))
	})
	httpClient := fic.NewHTTPClient()
	// Its bucket is created like the others: retried while JetStream is
	// not ready (a cluster still electing), not fatal at once.
	var quotas *fic.Quotas
	if err := natsrv.Retry(ctx, func(ctx context.Context) (err error) {
		quotas, err = kvstore.SharedQuotas(ctx, js, cfg.FICLimits, bc, log)
		return err
	}); err != nil {
		return err
	}
	newClient := func(creds fic.Credentials) (*fic.Client, error) {
		return fic.New(fic.Config{BaseURL: cfg.FICBaseURL, HTTPClient: httpClient, Quotas: quotas, Logger: log, OnResponse: met.observeFIC}, creds)
	}
	cs := &companySources{clients: map[string]*fic.Client{}, byComp: map[int64]*fic.Client{}}
	if cfg.Manual() {
		c, err := newClient(fic.StaticToken(cfg.FICAccessToken))
		if err != nil {
			return err
		}
		cs.byComp[cfg.FICCompanyID] = c
	} else {
		key, _ := kvstore.ParseSecretKey(cfg.SecretKey)
		tokens, err := kvstore.NewTokens(ctx, js, key, bc)
		if err != nil {
			return err
		}
		oauth := fic.NewOAuth(cfg.FICBaseURL, cfg.FICClientID, cfg.FICClientSecret, cfg.FICRedirectURL, scopes(cfg))
		oauth.FormBody, oauth.HTTPClient = !cfg.FICTokenJSON, httpClient
		cs.list = func(ctx context.Context) ([]poller.Company, error) {
			conns, err := tokens.Connections(ctx)
			if err != nil {
				return nil, err
			}
			for _, name := range conns {
				cs.mu.Lock()
				_, known := cs.clients[name]
				cs.mu.Unlock()
				conn, _, err := tokens.Get(ctx, name)
				if err != nil {
					log.Error("connection unusable", "connection", name, "error", err)
					continue
				}
				cs.mu.Lock()
				if !known {
					c, err := newClient(&tenant.Credentials{OAuth: oauth, Store: tokens, Lock: leases, Key: name, Log: log,
						Spool: &tenant.DirSpool{Dir: filepath.Join(cfg.DataDir, "token-spool"), Sealer: tokens}})
					if err != nil {
						cs.mu.Unlock()
						return nil, err
					}
					cs.clients[name] = c
				}
				for _, cid := range conn.Companies {
					cs.byComp[cid] = cs.clients[name]
				}
				cs.mu.Unlock()
			}
			return nil, nil
		}
	}
	companies := func(ctx context.Context) ([]poller.Company, error) {
		if cs.list != nil {
			if _, err := cs.list(ctx); err != nil {
				return nil, err
			}
		}
		cs.mu.Lock()
		defer cs.mu.Unlock()
		var out []poller.Company
		for cid, c := range cs.byComp {
			src := &fic.Source{Client: c}
			if cfg.OpenOnly {
				src.Filter = openOnly
			}
			cl := c
			id := cid
			out = append(out, poller.Company{ID: cid, Source: src, Quota: func() poller.QuotaView {
				q := cl.Quota(id)
				if q.HourlyRemaining >= 0 {
					met.quota.WithLabelValues(strconv.FormatInt(id, 10), "hourly").Set(float64(q.HourlyRemaining))
				}
				if q.MonthlyRemaining >= 0 {
					met.quota.WithLabelValues(strconv.FormatInt(id, 10), "monthly").Set(float64(q.MonthlyRemaining))
				}
				return poller.QuotaView{HourlyLimit: q.HourlyLimit, MonthlyRemaining: q.MonthlyRemaining, MonthlyLimit: q.MonthlyLimit}
			}})
		}
		return out, nil
	}

	p := &poller.Poller{
		Snapshots:   snaps,
		Publisher:   &events.Publisher{JS: js, OnPublished: met.observeEvent, OnResult: m.storeResult},
		Timers:      sched,
		Rules:       poller.Rules{DueSoonDays: dueSoon(cfg.DueSoonDays)},
		Now:         m.now,
		Log:         log,
		OpenOnly:    cfg.OpenOnly,
		Holds:       holds,
		Batches:     batches,
		DeleteGuard: poller.DeleteGuard{Share: cfg.DeleteGuardShare, Scans: cfg.DeleteGuardScans},
		OnAlert: func(_ context.Context, a poller.Alert) {
			met.alerts.WithLabelValues(a.Kind).Inc()
			if a.Kind == "deletions_held" {
				met.held.WithLabelValues(strconv.FormatInt(a.CompanyID, 10)).Set(float64(len(a.Documents)))
			}
		},
	}
	if cfg.OwnerCheck {
		p.Owners = owners
	}
	runner = &poller.Runner{
		Poller: p, Members: members, Log: log, Companies: companies, MaxConcurrentScans: cfg.MaxScans,
		Budget: poller.Budget{Share: cfg.ScanShare, HourlyLimit: cfg.FICLimits.Hourly, MonthlyLimit: cfg.FICLimits.Monthly, MinInterval: cfg.MinInterval, MaxInterval: cfg.MaxInterval},
		Progress: func(cid int64, kind rcv.Kind, page, last int) {
			fmt.Fprintf(m.Out, "scan company %d %s page %d/%d\n", cid, kind, page, last)
		},
		OnScan: func(res poller.ScanResult, err error) {
			outcome := "complete"
			switch {
			case err != nil:
				outcome = "failed"
			case !res.Complete:
				outcome = "partial"
			}
			met.scanDuration.WithLabelValues(outcome).Observe(res.Duration.Seconds())
			met.scanDocs.WithLabelValues("seen").Add(float64(res.Documents))
			met.scanDocs.WithLabelValues("deleted").Add(float64(res.Deleted))
			if err == nil && res.Complete {
				met.held.WithLabelValues(strconv.FormatInt(res.CompanyID, 10)).Set(float64(res.Held))
			}
		},
	}

	// Webhooks.
	var key *ecdsa.PublicKey
	if cfg.FICWebhookKey != "" {
		key, _ = fic.ParsePublicKey(cfg.FICWebhookKey)
	} else {
		key, _ = fic.ParsePublicKey(fic.DefaultWebhookKey)
	}
	sink := ""
	if cfg.PublicURL != "" {
		sink = strings.TrimRight(cfg.PublicURL, "/") + "/webhooks/fic"
	} else {
		log.Warn("POLLER_PUBLIC_URL is unset: webhooks are accepted without an audience check and no subscription is created; scans reconcile alone")
	}
	hook := &inbox.Handler{JS: js, Log: log, Observe: met.observeWebhook, Contacts: &contacts.Cache{Store: contactStore},
		Verifier: &fic.Verifier{Key: key, Audience: sink, AppID: cfg.FICWebhookAppID, Leeway: max(cfg.WebhookLeeway, time.Nanosecond)}}

	mux := http.NewServeMux()
	mux.Handle("/webhooks/fic", hook)
	mux.Handle("GET /metrics", promhttp.HandlerFor(met.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.readiness(r.Context(), nc); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
		// Webhooks are an optimisation (scans reconcile without them): their
		// health is detail, not readiness.
		m.subStates.Range(func(k, v any) bool {
			fmt.Fprintf(w, "webhook subscription of company %d: %s\n", k, v)
			return true
		})
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("POLLER_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	m.HTTPAddr = ln.Addr().String()
	if m.Limits.MaxConns == 0 {
		m.Limits.MaxConns = cfg.HTTPMaxConns
	}
	srv := lifecycle.HTTPServer(mux, m.Limits)
	ln = lifecycle.Limit(ln, m.Limits)

	// Handlers run under the work context: what they started when the stop
	// signal arrives finishes within the grace period.
	work, cancelWork := lifecycle.WorkContext(ctx, 20*time.Second)
	defer cancelWork()

	// Consumers: fired timers and webhook notifications.
	timerCC, err := sched.Consume(work, func(ctx context.Context, cid, id int64) error {
		met.timersFired.Inc()
		_, err := p.Fire(ctx, cid, id)
		return err
	}, log)
	if err != nil {
		return err
	}
	// Webhook notifications: held in a fair, coalescing queue until their
	// documents are handled, from consumers routed by company.
	retryAfter := func(err error) (time.Duration, bool) {
		var qe *rcv.QuotaError
		if errors.As(err, &qe) {
			return max(time.Until(qe.ResetAt), time.Second), true
		}
		return 0, false
	}
	linger := cfg.WebhookLinger
	if linger == 0 {
		linger = -1 // off
	}
	queue := &inbox.Queue{Log: log, RetryAfter: retryAfter, Workers: cfg.WebhookWorkers, Linger: linger,
		Refresh: func(ctx context.Context, cid, id int64) error {
			src, _, err := cs.source(cid)
			if err != nil {
				return err
			}
			_, err = p.Refresh(ctx, src, cid, id)
			return err
		},
		RefreshMany: func(ctx context.Context, cid int64, ids []int64) ([]int64, error) {
			src, _, err := cs.source(cid)
			if err != nil {
				return nil, err
			}
			done, _, err := p.RefreshMany(ctx, src, cid, ids)
			return done, err
		},
		OnHandled: func(cid, id int64, waiters int, err error) {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			met.refreshes.WithLabelValues(outcome).Inc()
		},
	}
	scope := inbox.Scope{}
	if cfg.Manual() {
		scope.Companies = []int64{cfg.FICCompanyID}
	} else {
		scope.Serves = func(ctx context.Context, cid int64) bool {
			if _, _, err := cs.source(cid); err == nil {
				return true
			}
			_, _ = companies(ctx) // a connection added since the last listing
			if _, _, err := cs.source(cid); err == nil {
				return true
			}
			met.refreshes.WithLabelValues("unknown_company").Inc()
			return false
		}
	}
	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	defer stopQueue()
	queueDone := make(chan struct{})
	go func() { _ = queue.Run(qctx); close(queueDone) }()
	inboxCCs, err := inbox.Subscribe(ctx, js, scope, queue, log)
	if err != nil {
		return err
	}
	if err := inbox.Migrate(ctx, js); err != nil {
		log.Error("webhook notifications of an earlier version not moved (the next scans reconcile their documents)", "error", err)
	}

	m.runner.Store(runner)
	if sink != "" {
		go m.subscribe(ctx, companies, cs, sink, met)
	}
	var dln net.Listener
	if cfg.Pprof {
		if dln, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return fmt.Errorf("POLLER_DEBUG_ADDR %s: %w", cfg.DebugAddr, err)
		}
		m.DebugAddr = dln.Addr().String()
	}
	m.runner.Store(runner)
	m.ready.Store(true)
	close(m.started)
	log.Info("poller running", "http", m.HTTPAddr, "nats", natsrv.Redact(m.NATSURL), "instance", cfg.InstanceID, "mode", map[bool]string{true: "manual token", false: "oauth"}[cfg.Manual()])
	fmt.Fprintf(m.Out, "poller: http://%s (webhooks at /webhooks/fic, metrics at /metrics), NATS %s\n", m.HTTPAddr, natsrv.Redact(m.NATSURL))

	var g lifecycle.Group
	g.Signal(ctx)
	g.Serve("webhook listener "+m.HTTPAddr, srv, ln, 10*time.Second)
	if dln != nil {
		dbg := http.NewServeMux()
		dbg.HandleFunc("GET /debug/pprof/", pprof.Index)
		dbg.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		g.Serve("debug listener "+m.DebugAddr, lifecycle.HTTPServer(dbg, lifecycle.Limits{Write: 2 * time.Minute, MaxConns: 8}), dln, time.Second)
		log.Warn("profiling on", "debug", m.DebugAddr)
	}
	g.Loop("reconciliation", runner.Run) // releases its leases when stopped
	stopConsumers := make(chan struct{})
	g.Add("consumers", func() error {
		<-stopConsumers
		// Stop taking work, finish what is in flight, then close.
		m.ready.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		settle.Drain(sctx, append(inboxCCs, timerCC)...)
		stopQueue() // in-flight documents finish; unfinished notifications are Nak'ed for another replica
		select {
		case <-queueDone:
		case <-sctx.Done():
		}
		return nil
	}, func(error) { close(stopConsumers) })
	err = g.Run()
	log.Info("poller stopped")
	return err
}

// subscribe makes sure every company has a webhook subscription to sink.
// subscribe reconciles every company's webhook subscription at start and
// then every POLLER_SUBSCRIPTION_CHECK (see webhooksub), and reports each
// state in metrics and /readyz's detail.
func (m *Main) subscribe(ctx context.Context, companies func(context.Context) ([]poller.Company, error), cs *companySources, sink string, met *metrics) {
	rec := &webhooksub.Reconciler{}
	every := m.Config.SubscriptionCheck
	if every <= 0 {
		every = 10 * time.Minute
	}
	last := map[int64]webhooksub.State{}
	held := []int64{-1} // nothing looked at yet
	if r := m.runner.Load(); r != nil {
		select {
		case <-r.Ready(): // its first share of the companies
		case <-ctx.Done():
			return
		}
	}
	for {
		settled := true
		list, err := companies(ctx)
		if err != nil {
			m.Log.Error("cannot list companies to subscribe", "error", err)
		}
		// Each replica looks after the subscriptions of the companies it
		// holds: FIC's requests for subscriptions do not multiply with
		// replicas. Companies that changed hands are looked at again soon.
		now := m.Owned()
		if !slices.Equal(now, held) {
			settled = false
		}
		held = now
		for _, c := range list {
			if _, mine := slices.BinarySearch(held, c.ID); !mine {
				m.subStates.Delete(c.ID)
				continue
			}
			_, client, err := cs.source(c.ID)
			if err != nil {
				continue
			}
			res := rec.Reconcile(ctx, client, c.ID, sink)
			if ctx.Err() != nil {
				return
			}
			id := strconv.FormatInt(c.ID, 10)
			for _, st := range []webhooksub.State{webhooksub.Verified, webhooksub.Unverified, webhooksub.GaveUp, webhooksub.Failed} {
				v := 0.0
				if st == res.State {
					v = 1
				}
				met.subs.WithLabelValues(id, string(st)).Set(v)
			}
			switch {
			case res.Err != nil:
				m.Log.Error("webhook subscription needs attention", "company_id", c.ID, "state", res.State, "subscription", res.ID, "error", res.Err)
			case res.Action != "" || last[c.ID] != res.State:
				m.Log.Info("webhook subscription", "company_id", c.ID, "state", res.State, "action", res.Action, "subscription", res.ID)
			}
			last[c.ID] = res.State
			m.subStates.Store(c.ID, res.State)
			settled = settled && (res.State == webhooksub.Verified || res.State == webhooksub.GaveUp)
		}
		wait := every
		if !settled {
			wait = min(every, time.Minute) // look again soon after a change or a verification request
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// memberName is the instance id as a KV key: what a key cannot hold
// becomes '-'.
func memberName(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '=' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, id)
}

func scopes(cfg Config) []string {
	if len(cfg.FICScopes) > 0 {
		return cfg.FICScopes
	}
	return fic.DefaultScopes
}

func dueSoon(days int) int {
	if days == 0 {
		return -1 // disabled
	}
	return days
}

func (m *Main) storeResult(err error) {
	if err == nil {
		m.storeErr.Store(nil)
		return
	}
	m.storeErr.Store(&err)
}

// readiness is nil when the poller can do its job: started, connected to
// NATS, JetStream answering, and the last events it published stored (a
// full stream or account refuses them: the replica is not ready until it
// stores again).
func (m *Main) readiness(ctx context.Context, nc *natsrv.Conn) error {
	switch {
	case !m.ready.Load():
		return errors.New("starting")
	case !nc.NC.IsConnected():
		return errors.New("NATS disconnected")
	}
	if e := m.storeErr.Load(); e != nil {
		return fmt.Errorf("JetStream refuses events: %v", *e)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := nc.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream unavailable: %v", err)
	}
	return nil
}
