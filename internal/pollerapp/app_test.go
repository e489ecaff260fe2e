package pollerapp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/contacts"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/receivables"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type envMap map[string]string

func (e envMap) list() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

// startPoller runs Main until the test ends.
func startPoller(t *testing.T, e envMap, logs io.Writer) *Main {
	t.Helper()
	cfg, err := ParseConfig(e.list())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	cfg.LogFormat = "text"
	m := &Main{Config: cfg, Log: newLogger(cfg, logs), Out: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-m.Started():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("poller did not start")
	}
	return m
}

func webhookKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// streamEvents decodes every stored event.
func streamEvents(t *testing.T, js jetstream.JetStream) map[string][]events.Data {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil
	}
	info, _ := st.Info(ctx)
	out := map[string][]events.Data{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		e, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := events.ParseData(e)
		out[e.Type()] = append(out[e.Type()], d)
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestPollerEndToEndWithWebhooks(t *testing.T) {
	priv, pub := webhookKey(t)
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 5, Companies: 1, Invoices: 120, WebhookKey: priv, WebhookRetryBase: 100 * time.Millisecond, AllowHTTPSinks: true})
	cid := sim.CompanyIDs()[0]
	httpAddr := freeAddr(t)
	var logs lockedBuf
	dataDir := t.TempDir()
	m := startPoller(t, envMap{
		"FIC_BASE_URL": fsrv.URL, "FIC_ACCESS_TOKEN": sim.Token(), "FIC_COMPANY_ID": fmt.Sprint(cid),
		"INCASSO_DATA_DIR": dataDir, "INCASSO_EMBEDDED_NATS_ADDR": "127.0.0.1:0", "POLLER_HTTP_ADDR": httpAddr,
		"POLLER_PUBLIC_URL": "http://" + httpAddr, "POLLER_ALLOW_HTTP_SINK": "true", "POLLER_SUBSCRIPTION_CHECK": "1s", "FIC_WEBHOOK_PUBLIC_KEY": pub, "FIC_WEBHOOK_APP_ID": "ficsim-app",
		"POLLER_MIN_INTERVAL": "1h", "POLLER_LEASE_TTL": "3s",
	}, &logs)
	// The embedded server wants the password it wrote into the data
	// directory.
	pw, err := os.ReadFile(filepath.Join(dataDir, "nats", "password"))
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, strings.Replace(m.NATSURL, "nats://", "nats://"+natsrv.EmbeddedUser+":"+strings.TrimSpace(string(pw))+"@", 1))
	docs, _ := sim.Documents(cid)
	waitFor(t, "initial sync", 20*time.Second, func() bool {
		ev := streamEvents(t, js)
		return len(ev["invoice.created"])+len(ev["credit_note.created"]) == len(docs)
	})
	waitFor(t, "verified subscription", 10*time.Second, func() bool {
		for _, d := range sim.Deliveries() {
			if d.Type == "verification" && d.Status == 200 {
				return true
			}
		}
		return false
	})
	// A payment reaches the stream through the webhook, with one GET.
	var open int64
	for _, d := range docs {
		if d.Type == "invoice" && d.Open() {
			open = d.ID
			break
		}
	}
	sim.ResetStats()
	if _, err := sim.Pay(cid, open, ficsim.PaymentSpec{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "payment event", 10*time.Second, func() bool {
		ev := streamEvents(t, js)
		for _, typ := range []string{"invoice.paid", "invoice.partially_paid"} {
			for _, d := range ev[typ] {
				if d.Document.ID == open {
					return true
				}
			}
		}
		return false
	})
	if st := sim.Stats()[cid]; st["get_issued_document"] != 1 || st["list_issued_documents"] != 0 {
		t.Errorf("FIC requests for one change: %v", st)
	}

	// Forged and replayed webhooks publish nothing.
	before := len(streamEvents(t, js)["invoice.updated"])
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	send := func(key *ecdsa.PrivateKey, id string) int {
		return postWebhook(t, key, httpAddr, cid, id, []int64{open})
	}
	sim.ResetStats()
	if code := send(forger, "1:forged"); code != http.StatusUnauthorized {
		t.Errorf("forged webhook: %d", code)
	}
	if code := send(priv, "2:genuine"); code != http.StatusOK {
		t.Errorf("genuine webhook: %d", code)
	}
	waitFor(t, "genuine webhook fetch", 5*time.Second, func() bool { return sim.Stats()[cid]["get_issued_document"] == 1 })
	if code := send(priv, "2:genuine"); code != http.StatusOK {
		t.Errorf("replayed webhook: %d", code)
	}
	time.Sleep(300 * time.Millisecond)
	if n := sim.Stats()[cid]["get_issued_document"]; n != 1 {
		t.Errorf("replay caused a fetch: %d GETs", n)
	}
	if after := len(streamEvents(t, js)["invoice.updated"]); after != before {
		t.Errorf("forged/replayed webhooks published %d events", after-before)
	}

	// A notification about something other than issued documents (a
	// client updated) is accepted and never fetched as a document, even
	// when its id is also a document's.
	sim.ResetStats()
	if code := postWebhookType(t, priv, httpAddr, cid, "3:client", "it.fattureincloud.webhooks.entities.clients.update", []int64{open}); code != http.StatusOK {
		t.Errorf("client notification: %d", code)
	}
	time.Sleep(300 * time.Millisecond)
	if n := sim.Stats()[cid]["get_issued_document"]; n != 0 {
		t.Errorf("a client notification fetched %d documents", n)
	}
	// A client edited in FIC: the subscription covers entities.clients.update
	// and the poller drops the cached contacts, with no FIC request, so
	// the next reminder reads today's e-mail and PEC.
	store, err := kvstore.NewContacts(context.Background(), js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl := docs[0].Client
	if err := store.Put(context.Background(), cid, contacts.Entry{Client: receivables.Client{ID: cl.ID, Email: cl.Email}, FetchedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sim.ResetStats()
	email := "nuova@example.it"
	if _, err := sim.UpdateClient(cid, cl.ID, ficsim.ClientUpdate{Email: &email}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cached contacts dropped on entities.clients.update", 10*time.Second, func() bool {
		_, err := store.Get(context.Background(), cid, cl.ID)
		return errors.Is(err, contacts.ErrNotFound)
	})
	if n := len(sim.Stats()[cid]); n != 0 {
		t.Errorf("a client update cost FIC requests: %v", sim.Stats()[cid])
	}
	// The subscription's health is in /readyz's detail and the metrics.
	waitFor(t, "subscription health", 10*time.Second, func() bool {
		_, body := get(t, "http://"+httpAddr+"/readyz")
		_, metrics := get(t, "http://"+httpAddr+"/metrics")
		return strings.Contains(body, fmt.Sprintf("webhook subscription of company %d: verified", cid)) &&
			strings.Contains(metrics, fmt.Sprintf(`incasso_poller_webhook_subscription{company_id="%d",state="verified"} 1`, cid))
	})
	// Observability endpoints.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "incasso_events_published_total"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %.200s", path, resp.StatusCode, b)
		}
	}
	if strings.Contains(logs.String(), sim.Token()) {
		t.Error("the FIC token appears in the logs")
	}
}

func TestOAuthConnectStoresEncryptedTokenAndRuns(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 2, Companies: 2, Invoices: 30})
	ns, _, js := natstest.MustRunJetStream(t)
	e := envMap{
		"FIC_BASE_URL": fsrv.URL, "FIC_CLIENT_ID": "ficsim-client", "FIC_CLIENT_SECRET": "ficsim-secret",
		"FIC_REDIRECT_URL": "http://" + freeAddr(t) + "/oauth/callback", "INCASSO_SECRET_KEY": strings.Repeat("ab", 32),
		"NATS_URL": ns.ClientURL(), "POLLER_HTTP_ADDR": "127.0.0.1:0", "POLLER_MIN_INTERVAL": "1h", "POLLER_LEASE_TTL": "3s",
	}
	cfg, err := ParseConfig(e.list())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(true); err != nil {
		t.Fatal(err)
	}
	var out lockedBuf
	browser := func(u string) { // the user clicks "authorize"
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
	}
	if err := connect(context.Background(), cfg, "", newLogger(cfg, io.Discard), &out, browser); err != nil {
		t.Fatalf("connect: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprint(sim.CompanyIDs()[1])) {
		t.Errorf("connect output: %s", out.String())
	}
	// At rest the token is sealed: the KV bytes do not contain it.
	kv, _ := js.KeyValue(context.Background(), kvstore.TokensBucket)
	entry, err := kv.Get(context.Background(), fmt.Sprint(sim.CompanyIDs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(entry.Value(), []byte("a/")) || bytes.Contains(entry.Value(), []byte("r/")) || json.Valid(entry.Value()) {
		t.Error("token stored in clear")
	}
	var logs lockedBuf
	m := startPoller(t, e, &logs)
	total := 0
	for _, cid := range sim.CompanyIDs() {
		d, _ := sim.Documents(cid)
		total += len(d)
	}
	waitFor(t, "sync of both companies", 20*time.Second, func() bool {
		ev := streamEvents(t, js)
		return len(ev["invoice.created"])+len(ev["credit_note.created"]) == total
	})
	if len(m.Owned()) != 2 {
		t.Errorf("owned %v", m.Owned())
	}
	if strings.Contains(logs.String(), "a/") && strings.Contains(logs.String(), "Bearer") {
		t.Error("token in logs")
	}
}

func TestTwoReplicasShareCompaniesAndTakeOver(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 3, Companies: 1, Invoices: 20})
	ns, _, _ := natstest.MustRunJetStream(t)
	cid := sim.CompanyIDs()[0]
	base := envMap{"FIC_BASE_URL": fsrv.URL, "FIC_ACCESS_TOKEN": sim.Token(), "FIC_COMPANY_ID": fmt.Sprint(cid),
		"NATS_URL": ns.ClientURL(), "POLLER_HTTP_ADDR": "127.0.0.1:0", "POLLER_MIN_INTERVAL": "1h", "POLLER_LEASE_TTL": "3s"}
	mk := func(id string) (*Main, context.CancelFunc, chan error) {
		e := envMap{}
		for k, v := range base {
			e[k] = v
		}
		e["POLLER_INSTANCE_ID"] = id
		cfg, _ := ParseConfig(e.list())
		m := &Main{Config: cfg, Log: newLogger(cfg, io.Discard)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		<-m.Started()
		return m, cancel, done
	}
	a, cancelA, doneA := mk("a")
	b, cancelB, doneB := mk("b")
	waitFor(t, "one owner", 10*time.Second, func() bool { return len(a.Owned())+len(b.Owned()) == 1 })
	for i := 0; i < 20; i++ { // never both
		if len(a.Owned())+len(b.Owned()) > 1 {
			t.Fatal("two replicas poll the same company")
		}
		time.Sleep(50 * time.Millisecond)
	}
	other, cancelOwner, doneOwner := b, cancelA, doneA
	if len(b.Owned()) == 1 {
		other, cancelOwner, doneOwner = a, cancelB, doneB
	}
	cancelOwner() // graceful stop releases the lease
	<-doneOwner
	waitFor(t, "takeover", 5*time.Second, func() bool { return len(other.Owned()) == 1 })
	if other == a {
		cancelA()
		<-doneA
	} else {
		cancelB()
		<-doneB
	}
}
