package dunningapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/audit"
	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/console"
	"github.com/incasso-io/incasso/internal/contacts"
	"github.com/incasso-io/incasso/internal/delivery"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/interest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/lifecycle"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/settle"
	"github.com/incasso-io/incasso/internal/timers"
)

// DLQStream keeps the events dunning gave up on, with the reason.
const DLQStream = "INCASSO_DLQ"

// Main is the dunning process.
type Main struct {
	Config  Config
	Log     *slog.Logger
	Out     io.Writer
	Now     func() time.Time
	OpsAddr string // actual, once started
	Started chan struct{}
	// Limits of the ops API listener (zero: lifecycle's defaults, with
	// DUNNING_OPS_MAX_CONNS).
	Limits lifecycle.Limits
}

func (m *Main) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// outcomes publishes dunning.* CloudEvents on incasso.events.<cid>.dunning.<type>.
type outcomes struct{ pub *events.Publisher }

func (o outcomes) Publish(ctx context.Context, x dunning.Outcome) error {
	c := x.Case
	d := events.DunningData{CompanyID: x.CompanyID, InvoiceID: x.InvoiceID, State: string(c.State), Stage: c.Stage,
		ClosedReason: c.ClosedReason, Document: events.DocumentData(&c.Invoice, rcv.DateIn(x.At, rcv.Rome))}
	if t := x.Transition; t != nil {
		d.Detail.From, d.Detail.Reason, d.Detail.Operator = string(t.From), t.Reason, t.Operator
	}
	if dl := x.Delivery; dl != nil {
		d.Detail.StageName, d.Detail.Channel, d.Detail.MessageID, d.Detail.InvoicesInMessage, d.Detail.Error =
			dl.Stage, dl.Channel, dl.MessageID, dl.InvoicesInMessage, dl.Error
		d.Detail.PossiblySent = dl.PossiblySent
		if dl.Dossier != nil {
			b, err := json.Marshal(dl.Dossier)
			if err != nil {
				return fmt.Errorf("dunning: encode the dossier of %d/%d: %w", x.CompanyID, x.InvoiceID, err)
			}
			d.Detail.Dossier = b
		}
	}
	subj, e, err := events.BuildDunning(x.Type, events.ID(x.CompanyID, x.InvoiceID, x.Type, x.Key), x.At, d)
	if err != nil {
		return err
	}
	return o.pub.PublishEvent(ctx, subj, e)
}

// Run wires everything and blocks until ctx ends, then drains.
func (m *Main) Run(ctx context.Context) error {
	cfg, log := m.Config, m.Log
	if m.Out == nil {
		m.Out = io.Discard
	}
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-dunning"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js := nc.JS
	bc := kvstore.BucketConfig{Replicas: cfg.Replicas}
	var (
		cases        *kvstore.Cases
		order        *kvstore.Order
		clients      *kvstore.Clients
		outbox       *kvstore.Outbox
		aud          *audit.Stream
		sched        *timers.Scheduler
		modes        *kvstore.Modes
		ledger       *kvstore.Snapshots // the poller's: every document, for the reports
		operators    *kvstore.Operators
		contactStore *kvstore.Contacts
		endpoints    *kvstore.Endpoints
		deliveryLog  *kvstore.DeliveryLog
		sessions     *kvstore.Sessions
		archive      *kvstore.Letters
	)
	err = natsrv.Retry(ctx, func(ctx context.Context) error {
		if _, err := events.EnsureStream(ctx, js, events.StreamConfig{Replicas: cfg.Replicas}); err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: DLQStream, Subjects: []string{"incasso.dlq.>"},
			Storage: jetstream.FileStorage, Replicas: max(1, cfg.Replicas), Description: "messages given up on, with the reason"}); err != nil {
			return fmt.Errorf("dlq stream: %w", err)
		}
		var err error
		if order, err = kvstore.NewOrder(ctx, js, bc); err != nil {
			return err
		}
		if cases, err = kvstore.NewCases(ctx, js, bc); err != nil {
			return err
		}
		if clients, err = kvstore.NewClients(ctx, js, bc); err != nil {
			return err
		}
		if outbox, err = kvstore.NewOutbox(ctx, js, bc); err != nil {
			return err
		}
		if modes, err = kvstore.NewModes(ctx, js, bc); err != nil {
			return err
		}
		if ledger, err = kvstore.NewSnapshots(ctx, js, bc); err != nil {
			return err
		}
		if operators, err = kvstore.NewOperators(ctx, js, bc); err != nil {
			return err
		}
		if contactStore, err = kvstore.NewContacts(ctx, js, bc); err != nil {
			return err
		}
		if endpoints, err = kvstore.NewEndpoints(ctx, js, bc); err != nil {
			return err
		}
		if deliveryLog, err = kvstore.NewDeliveryLog(ctx, js, bc); err != nil {
			return err
		}
		if sessions, err = kvstore.NewSessions(ctx, js, cfg.ConsoleSession, bc); err != nil {
			return err
		}
		if archive, err = kvstore.NewLetters(ctx, js, bc); err != nil {
			return err
		}
		if aud, err = audit.New(ctx, js, cfg.Replicas); err != nil {
			return err
		}
		sched, err = timers.NewWith(ctx, js, timers.Config{Stream: "INCASSO_DUNNING_TIMERS", Subject: "incasso.dunning.timers", Consumer: "dunning-timers", Replicas: cfg.Replicas})
		return err
	})
	if err != nil {
		return err
	}
	sched.Clock = m.Now
	pols := policy.Default()
	if cfg.PolicyFile != "" {
		if pols, err = policy.Load(cfg.PolicyFile); err != nil {
			return err
		}
	}
	letters, err := notify.NewRenderer(cfg.TemplatesDir)
	if err != nil {
		return fmt.Errorf("letter templates: %w", err)
	}
	rates := interest.Default()
	if cfg.RatesFile != "" {
		f, err := os.Open(cfg.RatesFile)
		if err != nil {
			return fmt.Errorf("DUNNING_INTEREST_RATES_FILE: %w", err)
		}
		rates, err = interest.Parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("DUNNING_INTEREST_RATES_FILE: %w", err)
		}
	}
	cal, err := calendar.New(pols.Default.WindowStart, pols.Default.WindowEnd)
	if err != nil {
		return err
	}
	// Its bucket is created like the others: retried while JetStream is
	// not ready (a cluster still electing), not fatal at once.
	var quotas *fic.Quotas
	if err := natsrv.Retry(ctx, func(ctx context.Context) (err error) {
		quotas, err = kvstore.SharedQuotas(ctx, js, cfg.FICLimits, kvstore.BucketConfig{Replicas: cfg.Replicas}, log)
		return err
	}); err != nil {
		return err
	}
	ficDir, err := newFICClients(ctx, cfg, js, log, func(creds fic.Credentials) (*fic.Client, error) {
		return fic.New(fic.Config{BaseURL: cfg.FICBaseURL, Logger: log, Quotas: quotas}, creds)
	})
	if err != nil {
		return err
	}
	senders := map[policy.Channel]dunning.Sender{
		policy.Email: &notify.Email{Renderer: letters, Archive: archive, Config: notify.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUser, Password: cfg.SMTPPassword, From: cfg.SMTPFrom, TLS: cfg.SMTPTLS}},
	}
	if cfg.PECHost != "" {
		senders[policy.PEC] = &notify.Email{PEC: true, Renderer: letters, Archive: archive, Config: notify.SMTPConfig{Host: cfg.PECHost, Port: cfg.PECPort, Username: cfg.PECUser, Password: cfg.PECPassword, From: cfg.PECFrom, TLS: cfg.PECTLS}}
	} else {
		log.Warn("PEC_SMTP_HOST unset: formal notices go through SMTP_HOST to the client's PEC address")
		senders[policy.PEC] = &notify.Email{PEC: true, Renderer: letters, Archive: archive, Config: notify.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUser, Password: cfg.SMTPPassword, From: cfg.SMTPFrom, TLS: cfg.SMTPTLS}}
	}
	if cfg.PlatformURL != "" {
		pu, _ := url.Parse(cfg.PlatformURL) // validated
		senders[policy.Webhook] = &notify.Webhook{Platforms: map[string]notify.Platform{pols.Default.Platform: {URL: cfg.PlatformURL, Secret: []byte(cfg.PlatformSecret)}},
			HTTPClient: cfg.outbound(pu).Client(), LegacySignature: cfg.PlatformLegacySignature}
	}
	// Handlers run under the work context: a stop signal lets what they
	// started (a send and its outbox record) finish within the grace period.
	work, cancelWork := lifecycle.WorkContext(ctx, cfg.StopGrace)
	defer cancelWork()
	pub := &events.Publisher{JS: js}
	eng := &dunning.Engine{Cases: cases, Clients: clients, Outbox: outbox, Audit: aud, Outcomes: outcomes{pub}, Wakeups: sched,
		Fresh: ficDir.fresh, Senders: senders, Policies: pols, Calendar: cal, Rates: rates, Now: m.now, Log: log,
		GroupDelay: cfg.GroupDelay, Modes: modes, Ledger: ledger, InvoicePDF: ficDir.pdf, Creditors: (&creditors{fic: ficDir.client, pols: pols, log: log}).get,
		Contacts: (&contacts.Cache{Store: contactStore, Fetch: ficDir.clientRecord, TTL: cfg.ContactsTTL, Now: m.now, Log: log}).Get}

	// Receivables events (not our own dunning.* ones), one lane per
	// document (ce-source names the company, ce-subject the document; the
	// NATS subject would not do, it carries the event type): one invoice's
	// events in order, other invoices in parallel.
	lanes := newLanes(cfg.Concurrency)
	evConsumer := settle.Consumer{Stream: events.StreamName,
		Config: jetstream.ConsumerConfig{
			Durable: "dunning", FilterSubjects: []string{events.SubjectPrefix + ".*.invoice.>", events.SubjectPrefix + ".*.credit_note.>"},
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: evMaxDeliver, MaxAckPending: 512,
		},
		Policy: settle.Policy{Log: log, DeadLetter: func(ctx context.Context, msg jetstream.Msg, reason string) error {
			dl := &nats.Msg{Subject: "incasso.dlq.dunning." + strings.TrimPrefix(msg.Subject(), events.SubjectPrefix+"."), Header: nats.Header{}, Data: msg.Data()}
			for k, v := range msg.Headers() {
				dl.Header[k] = v
			}
			dl.Header.Del(nats.MsgIdHdr)
			dl.Header.Set("Incasso-Dead-Reason", reason)
			dl.Header.Set("Incasso-Original-Subject", msg.Subject())
			_, err := js.PublishMsg(ctx, dl)
			return err
		}},
		Dispatch: func(msg jetstream.Msg, handle func()) {
			if !lanes.submit(laneKey(msg.Headers()), handle) {
				_ = msg.Nak() // stopping: another replica, or the next start, takes it
			}
		},
	}
	evCC, err := evConsumer.Start(ctx, work, js, natsrv.Retry, func(ctx context.Context, msg jetstream.Msg) error {
		e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			return fmt.Errorf("%w: %v", settle.ErrPermanent, err)
		}
		d, err := events.ParseData(e)
		if err != nil {
			return fmt.Errorf("%w: %v", settle.ErrPermanent, err)
		}
		inv, err := d.Document.Invoice()
		if err != nil {
			return fmt.Errorf("%w: %v", settle.ErrPermanent, err)
		}
		// In document order across replicas: the replica that gets an
		// event before its predecessor was applied hands it back.
		seq, _ := strconv.ParseUint(fmt.Sprint(e.Extensions()[events.SeqExtension]), 10, 64)
		lastChance := false
		if md, err := msg.Metadata(); err == nil {
			lastChance = md.NumDelivered >= evMaxDeliver-1
		}
		known := func(ctx context.Context) (bool, error) {
			_, rev, err := cases.Get(ctx, inv.CompanyID, inv.ID)
			return rev > 0 || inv.Kind != rcv.KindInvoice, err // a credit note's later events change no case
		}
		applied, err := dunning.InOrder(ctx, order, inv.CompanyID, inv.ID, seq, lastChance, known, func() error {
			return eng.HandleEvent(ctx, rcv.EventType(e.Type()), inv)
		})
		switch {
		case errors.Is(err, dunning.ErrNotYet):
			return fmt.Errorf("%w: %w", settle.ErrWaiting, err)
		case err != nil:
			return fmt.Errorf("event %s: %w", e.ID(), err)
		}
		if applied {
			log.Debug("event applied", "id", e.ID(), "type", e.Type(), "docseq", seq, "last_delivery", lastChance)
		} else {
			log.Debug("event already applied: a redelivery", "id", e.ID(), "type", e.Type(), "docseq", seq)
		}
		return nil
	})
	if err != nil {
		lanes.close()
		return fmt.Errorf("events consumer: %w", err)
	}
	stopEvents := func() { // error paths below: no submission after close
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		settle.Drain(sctx, evCC)
		lanes.close()
	}
	tmCC, err := sched.Consume(work, eng.Wake, log)
	if err != nil {
		stopEvents()
		return err
	}

	// Events over HTTP: every enabled endpoint's consumer, pinned to one
	// replica at a time.
	// Its clock is the wall clock, never the demo's business clock: a
	// receiver checks webhook-timestamp against its own.
	deliveries := &delivery.Manager{JS: js, Store: endpoints, Log: deliveryLog, Logger: log,
		Client: func(u *url.URL) *http.Client { return cfg.outbound(u).Client() }, Lanes: cfg.DeliveryConcurrency, AckWait: cfg.DeliveryAckWait}
	api := &opsAPI{eng: eng, token: cfg.OpsToken, ops: operators, now: m.now,
		endpoints: &endpointsAPI{store: endpoints, log: deliveryLog, m: deliveries, grace: cfg.EndpointSecretGrace, now: time.Now, logger: log,
			check: func(u *url.URL) error { return cfg.outbound(u).CheckURL(u) }},
		deadLetters: func(r *http.Request, limit int) ([]map[string]any, error) {
			st, err := js.Stream(r.Context(), DLQStream)
			if err != nil {
				return nil, err
			}
			info, err := st.Info(r.Context())
			if err != nil {
				return nil, err
			}
			out := []map[string]any{}
			for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit; seq-- {
				msg, err := st.GetMsg(r.Context(), seq)
				if err != nil {
					continue
				}
				out = append(out, map[string]any{"seq": seq, "time": msg.Time, "subject": msg.Header.Get("Incasso-Original-Subject"),
					"reason": msg.Header.Get("Incasso-Dead-Reason"), "event_id": msg.Header.Get("ce-id")})
			}
			return out, nil
		}}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api.handler())
	// The console: server-rendered pages for the people who chase invoices.
	con := &console.Console{Engine: eng, Sessions: sessions, Operators: operators, SharedToken: cfg.OpsToken, Letters: letters, Archive: archive, Now: m.now, Log: log}
	mux.Handle("/console/", con.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusSeeOther))
	if cfg.Pprof {
		mux.Handle("GET /debug/pprof/", api.auth(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", api.auth(http.HandlerFunc(pprof.Profile)))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		stopEvents()
		settle.Drain(context.Background(), tmCC)
		return fmt.Errorf("DUNNING_OPS_ADDR %s: %w", cfg.OpsAddr, err)
	}
	m.OpsAddr = ln.Addr().String()
	// The profile endpoint streams for up to its ?seconds: its own write
	// timeout is the handler's business, the others' is 30 s.
	if m.Limits.MaxConns == 0 {
		m.Limits.MaxConns = cfg.OpsMaxConns
	}
	srv := lifecycle.HTTPServer(mux, m.Limits)
	ln = lifecycle.Limit(ln, m.Limits)

	var g lifecycle.Group
	g.Signal(ctx)
	g.Serve("ops API", srv, ln, 10*time.Second)
	stopConsumers := make(chan struct{})
	g.Add("consumers", func() error {
		<-stopConsumers
		// No new messages; handlers in flight finish (under the work
		// context) and settle; then the lanes close.
		sctx, cancel := context.WithTimeout(context.Background(), cfg.StopGrace)
		defer cancel()
		settle.Drain(sctx, evCC, tmCC)
		evCC.Stop() // a drain cut short by its deadline (NATS unreachable) must not deliver into closed lanes
		tmCC.Stop()
		lanes.close()
		return nil
	}, func(error) { close(stopConsumers) })
	// A delivery cut by the stop is handed back to the consumer (Nak) and
	// made again by whoever takes the endpoint: it needs no grace period.
	dctx, stopDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDeliveries()
	g.Add("deliveries", func() error { return deliveries.Run(dctx) }, func(error) { stopDeliveries() })
	log.Info("dunning running", "ops", m.OpsAddr, "nats", natsrv.Redact(nc.URL))
	fmt.Fprintf(m.Out, "dunning: ops API on http://%s, NATS %s\n", m.OpsAddr, natsrv.Redact(nc.URL))
	if m.Started != nil {
		close(m.Started)
	}
	return g.Run()
}

// laneKey is the company and document of an event message
// ("/fic/companies/1 invoices/42"), the unit whose events stay in order.
// evMaxDeliver is how many times an event is delivered before it is given
// up on; an event still waiting for its predecessor on its last delivery
// is applied anyway (settle.WaitBackoff makes that 100 s later).
const evMaxDeliver = 10

func laneKey(h nats.Header) string {
	return h.Get("ce-source") + " " + h.Get("ce-subject")
}
