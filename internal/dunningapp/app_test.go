package dunningapp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/events/eventstest"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

type box struct {
	mu   sync.Mutex
	n    int
	msgs []string
}

type sess struct{ b *box }

func (b *box) NewSession(*smtp.Conn) (smtp.Session, error) { return sess{b}, nil }
func (sess) Mail(string, *smtp.MailOptions) error          { return nil }
func (sess) Rcpt(string, *smtp.RcptOptions) error          { return nil }
func (s sess) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.n++
	s.b.msgs = append(s.b.msgs, string(b))
	s.b.mu.Unlock()
	return nil
}
func (sess) Reset()        {}
func (sess) Logout() error { return nil }
func (b *box) count() int  { b.mu.Lock(); defer b.mu.Unlock(); return b.n }

// The service end to end: the poller publishes receivables events for a
// seeded ledger, dunning opens cases, its durable timers fire and reminders
// reach a real SMTP server; the ops API and the CLI work and are authenticated.
func TestDunningEndToEnd(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 1, Invoices: 60})
	sim.SetFilesURL(fsrv.URL) // documents carry downloadable PDF links
	cid := sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	mb, smtpPort := startSMTP(t)
	day, now := businessMorning()

	token := "ops-token-0123456789"
	m, logs := runService(t, now, "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+fsrv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN="+token, "DUNNING_GROUP_DELAY=500ms")

	// The poller publishes the ledger.
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	if _, err := p.Scan(ctx, src, cid, nil); err != nil {
		t.Fatal(err)
	}
	// A first sync finds a backlog: late invoices wait in the approval
	// queue instead of going out by themselves.
	base := "http://" + m.OpsAddr
	cliEnv := []string{"DUNNING_OPS_URL=" + base, "DUNNING_OPS_TOKEN=" + token}
	var queue bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		queue.Reset()
		if err := Command(ctx, []string{"approvals", "-company", fmt.Sprint(cid)}, cliEnv, &queue, io.Discard); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(queue.String(), "catch-up") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(queue.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "WAITING SINCE") || !strings.Contains(lines[1], "first_reminder") {
		t.Fatalf("approval queue:\n%s\n%s", queue.String(), logs.String())
	}
	before := mb.count()
	f := strings.Fields(lines[1])
	// The client changed e-mail in FIC after the invoice was issued: the
	// reminder goes to today's address, not the invoice's copy.
	invID, _ := strconv.ParseInt(f[1], 10, 64)
	var clientID int64
	docs, err := sim.Documents(cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if d.ID == invID {
			clientID = d.Client.ID
		}
	}
	newEmail := "amministrazione.nuova@example.it"
	if _, err := sim.UpdateClient(cid, clientID, ficsim.ClientUpdate{Email: &newEmail}); err != nil {
		t.Fatalf("update client %d of invoice %d: %v", clientID, invID, err)
	}
	var approved bytes.Buffer
	if err := Command(ctx, []string{"approve", f[0], f[1], "-operator", "maria", "-reason", "backlog checked"}, cliEnv, &approved, io.Discard); err != nil || !strings.Contains(approved.String(), "approved") {
		t.Fatalf("approve: %v\n%s", err, approved.String())
	}
	for mb.count() == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if mb.count() == before {
		t.Fatalf("no reminder reached the SMTP server after the approval\n%s", logs.String())
	}
	// The letter says who the creditor is (FIC's company name and VAT
	// number) and how to pay (the IBAN of its bank account in FIC).
	mb.mu.Lock()
	letter := strings.Join(mb.msgs, "\n")
	mb.mu.Unlock()
	company, _ := fic.New(fic.Config{BaseURL: fsrv.URL}, fic.StaticToken(sim.Token()))
	cos, err := company.ListUserCompanies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	iban := ficsim.IBANOf(cid)
	for _, w := range []string{cos[0].Name, string(cos[0].VATNumber), iban[:4] + " " + iban[4:8], "Saldo fattura n. ", "To: <" + newEmail + ">",
		"Content-Type: application/pdf", `filename="Fattura`} {
		if !strings.Contains(strings.ReplaceAll(letter, "=\r\n", ""), w) {
			t.Errorf("letter lacks %q:\n%.3000s", w, letter)
		}
	}
	// Let every due case fire: wait until the count is stable for 1 s.
	sent := mb.count()
	for stable := time.Now(); time.Since(stable) < time.Second && time.Now().Before(deadline.Add(10*time.Second)); {
		time.Sleep(100 * time.Millisecond)
		if n := mb.count(); n != sent {
			sent, stable = n, time.Now()
		}
	}

	// Ops API: authentication.
	for tok, want := range map[string]int{"": 401, "wrong-token": 403, token: 200} {
		req, _ := http.NewRequest("GET", base+"/v1/cases", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
	// CLI commands through the API.
	var out bytes.Buffer
	if err := Command(ctx, []string{"cases", "-company", fmt.Sprint(cid)}, cliEnv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "NEXT STAGE") || !strings.Contains(out.String(), "NEXT ACTION") || strings.Count(out.String(), "\n") < 2 {
		t.Fatalf("cases table:\n%s", out.String())
	}
	checkCasesTable(t, out.String())
	var cids, ids string
	for _, line := range strings.Split(out.String(), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && strings.Contains(line, "active") {
			cids, ids = f[0], f[1]
			break
		}
	}
	if ids == "" {
		t.Fatalf("no active case:\n%s", out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"show", cids, ids}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "opened") {
		t.Errorf("show: %v\n%s", err, out.String())
	}
	checkShow(t, out.String())
	if err := Command(ctx, []string{"pause", cids, ids, "-until", "2020-01-01", "-operator", "maria"}, cliEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("pause in the past: %v", err)
	}
	if err := Command(ctx, []string{"remind", cids, ids}, cliEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("remind without operator: %v", err)
	}
	if err := Command(ctx, []string{"pause", cids, ids, "-until", day.AddDays(30).String(), "-operator", "maria", "-reason", "on holiday"}, cliEnv, io.Discard, io.Discard); err != nil {
		t.Errorf("pause: %v", err)
	}
	for _, step := range [][]string{
		{"resume", cids, ids, "-operator", "maria"},
		{"dispute", cids, ids, "-operator", "maria", "-reason", "contested amount"},
		{"resume", cids, ids, "-operator", "maria", "-reason", "settled the dispute"},
		{"promise", cids, ids, "-until", day.AddDays(10).String(), "-operator", "maria", "-reason", "promised by phone"},
	} {
		if err := Command(ctx, step, cliEnv, io.Discard, io.Discard); err != nil {
			t.Errorf("%v: %v", step, err)
		}
	}
	out.Reset()
	if err := Command(ctx, []string{"show", cids, ids}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "disputed") || !strings.Contains(out.String(), "promised") || !strings.Contains(out.String(), "maria") {
		t.Errorf("timeline after ops:\n%s", out.String())
	}
	checkShow(t, out.String())
	// Remind now, by an operator: the freshness check and the outbox apply.
	if err := Command(ctx, []string{"resume", cids, ids, "-operator", "maria"}, cliEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Command(ctx, []string{"remind", cids, ids, "-stage", "second_reminder", "-operator", "maria", "-reason", "client asked for a copy"}, cliEnv, &out, io.Discard); err != nil {
		t.Fatalf("remind: %v", err)
	}
	if !regexp.MustCompile(`sent\s+second_reminder\s+by email\s+to \S+@\S+\s+\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\s+message dunning-`).MatchString(out.String()) {
		t.Errorf("remind now does not say what went where:\n%s", out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"remind", cids, ids, "-stage", "second_reminder", "-operator", "maria"}, cliEnv, &out, io.Discard); err != nil {
		t.Fatalf("second remind: %v", err)
	}
	if !strings.Contains(out.String(), "Nothing sent") {
		t.Errorf("the same stage was sent twice on the same channel:\n%s", out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"deadletters"}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "REASON") {
		t.Errorf("deadletters: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"aging", "-company", fmt.Sprint(cid)}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "DSO") {
		t.Errorf("aging: %v\n%s", err, out.String())
	}
	// Without -company: every company, amounts as Italians write them.
	out.Reset()
	if err := Command(ctx, []string{"aging"}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), fmt.Sprint(cid)) || !regexp.MustCompile(`€ \d{1,3}(\.\d{3})*,\d\d`).MatchString(out.String()) {
		t.Errorf("aging of every company: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"preview", "-company", fmt.Sprint(cid), "-date", day.AddDays(7).String()}, cliEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "dry run") {
		t.Errorf("preview: %v\n%s", err, out.String())
	}
	// A stage already due goes out once, on the next send day: a preview
	// of later days does not list it again on each of them.
	seen := map[string]string{}
	for d := 1; d <= 10; d++ {
		out.Reset()
		if err := Command(ctx, []string{"preview", "-date", day.AddDays(d).String()}, cliEnv, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 || !regexp.MustCompile(`^\d\d:\d\d$`).MatchString(f[0]) {
				continue
			}
			key := strings.Join(f[1:len(f)-3], " ") // company, client, invoice, stage
			if prev, ok := seen[key]; ok {
				t.Errorf("preview lists %q on %s and again on %s", key, prev, day.AddDays(d))
			}
			seen[key] = day.AddDays(d).String()
		}
	}
	// Help needs no configuration.
	out.Reset()
	if err := Command(ctx, []string{"-h"}, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: dunning COMMAND") {
		t.Errorf("dunning -h: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := Command(ctx, []string{"remind", "-h"}, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: dunning remind COMPANY INVOICE") {
		t.Errorf("dunning remind -h: %v\n%s", err, out.String())
	}

	if strings.Contains(logs.String(), sim.Token()) || strings.Contains(logs.String(), token) {
		t.Error("a secret appears in the logs")
	}
	checkDunningEvents(t, js)
}

// checkDunningEvents validates every dunning.* event in the stream: a
// documented type, typed data matching docs/schemas/dunning-event.v1.json,
// and the case and detail a subscriber needs.
func checkDunningEvents(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	schema := eventstest.Schema(t, "dunning-event.v1.json")
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	seen := map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || !strings.Contains(m.Subject, ".dunning.") {
			continue
		}
		e, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			t.Fatalf("dunning event %d: %v", seq, err)
		}
		if !slices.Contains(events.AllDunningTypes, e.Type()) || e.DataSchema() != events.DunningDataSchema {
			t.Errorf("event %s: type %s, schema %s", e.ID(), e.Type(), e.DataSchema())
		}
		eventstest.Validate(t, schema, e.Data())
		d, err := events.ParseDunningData(e)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Type() {
		case events.DunningReminderSent, events.DunningEscalated, events.DunningDeliveryFailed:
			if d.Detail.StageName == "" || d.Detail.Channel == "" || d.Detail.InvoicesInMessage < 1 {
				t.Errorf("%s without its delivery: %+v", e.Type(), d.Detail)
			}
		default:
			if d.Detail.From == "" {
				t.Errorf("%s without the state it left: %+v", e.Type(), d.Detail)
			}
		}
		seen[e.Type()]++
	}
	if seen[events.DunningReminderSent] == 0 || seen[events.DunningPaused] == 0 || seen[events.DunningResumed] == 0 {
		t.Errorf("dunning events seen: %v", seen)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(*bytes.Buffer).String()
}

// runService runs the dunning service with env (KEY=VALUE pairs) on the
// clock now until the test ends, and returns it once it has started, with
// its log.
func runService(t *testing.T, now func() time.Time, env ...string) (*Main, *syncWriter) {
	t.Helper()
	cfg, err := ParseConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{w: &bytes.Buffer{}}
	m := &Main{Config: cfg, Log: newLogger(cfg, logs), Now: now, Started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-m.Started
	return m, logs
}

// ledgerPoller returns a poller that publishes the sandbox's documents as
// receivables events on js, and the source it scans.
func ledgerPoller(t *testing.T, js jetstream.JetStream, ficURL, token string, now func() time.Time) (*poller.Poller, *fic.Source) {
	t.Helper()
	ctx := context.Background()
	client, err := fic.New(fic.Config{BaseURL: ficURL, Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, nil)}, fic.StaticToken(token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	snaps, err := kvstore.NewSnapshots(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &poller.Poller{Snapshots: snaps, Publisher: &events.Publisher{JS: js}, Now: now}, &fic.Source{Client: client}
}

// startSMTP runs a real SMTP server (go-smtp) counting what it receives
// until the test ends, and returns it with its port.
func startSMTP(t *testing.T) (*box, int) {
	t.Helper()
	mb := &box{}
	return mb, serveSMTP(t, mb)
}

// serveSMTP runs a real SMTP server (go-smtp) on backend until the test
// ends and returns its port.
func serveSMTP(t *testing.T, backend smtp.Backend) int {
	t.Helper()
	ss := smtp.NewServer(backend)
	ss.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ss.Serve(ln) }()
	t.Cleanup(func() { _ = ss.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// businessMorning is a business clock at 10:00 Rome on the next business
// day (inside the send window), and that day.
func businessMorning() (rcv.Date, func() time.Time) {
	day := rcv.DateIn(time.Now(), rcv.Rome).AddDays(1)
	for day.In(rcv.Rome).Weekday() == time.Saturday || day.In(rcv.Rome).Weekday() == time.Sunday {
		day = day.AddDays(1)
	}
	offset := time.Until(day.In(rcv.Rome).Add(10 * time.Hour))
	return day, func() time.Time { return time.Now().Add(offset) }
}

// checkCasesTable: most overdue first, and a totals line.
func checkCasesTable(t *testing.T, out string) {
	t.Helper()
	if os.Getenv("INCASSO_SHOW_CLI") != "" {
		t.Log("\n" + out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := 1 << 30
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		// DAYS LATE is the field before "€".
		for i := len(f) - 1; i > 0; i-- {
			if f[i] == "€" {
				n, err := strconv.Atoi(f[i-1])
				if err != nil {
					t.Fatalf("days late in %q", l)
				}
				if n > last {
					t.Errorf("cases not sorted by days late: %d after %d", n, last)
				}
				last = n
				break
			}
		}
	}
	if !regexp.MustCompile(`\d+ cases\s+€ [\d.]+,\d\d`).MatchString(lines[len(lines)-1]) {
		t.Errorf("no totals line: %q", lines[len(lines)-1])
	}
}

// checkShow: no <nil>, times in Europe/Rome without nanoseconds, the next
// stage by name, the timeline in order.
func checkShow(t *testing.T, out string) {
	t.Helper()
	if os.Getenv("INCASSO_SHOW_CLI") != "" {
		t.Log("\n" + out)
	}
	if strings.Contains(out, "<nil>") || regexp.MustCompile(`\d{2}:\d{2}:\d{2}\.\d+|T\d\d:\d\d|Z\b`).MatchString(out) {
		t.Errorf("show prints raw values:\n%s", out)
	}
	if regexp.MustCompile(`next stage\s+\d+\s*$`).MatchString(out) || !strings.Contains(out, "amount due") || !strings.Contains(out, "€ ") {
		t.Errorf("show lacks the stage name or the amount:\n%s", out)
	}
	var prev time.Time
	for _, m := range regexp.MustCompile(`(?m)^(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d)`).FindAllStringSubmatch(out, -1) {
		at, _ := time.ParseInLocation("02/01/2006 15:04:05", m[1], rcv.Rome)
		if at.Before(prev) {
			t.Errorf("timeline out of order: %s after %s\n%s", at, prev, out)
		}
		prev = at
	}
}
