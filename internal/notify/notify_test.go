package notify_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/safehttp"
)

func msg(lang, tpl string, interest bool) dunning.Message {
	inv := rcv.Invoice{CompanyID: 1, ID: 2, Kind: rcv.KindInvoice, Number: "42/A", Date: rcv.MustDate("2026-09-01"),
		Client:       rcv.Client{Name: "Rossi & Figli S.r.l.", Email: "a@b.it", PEC: "a@pec.it"},
		Installments: []rcv.Installment{{ID: 1, DueDate: rcv.MustDate("2026-10-01"), Amount: decimal.RequireFromString("12345.6"), Status: rcv.NotPaid}}}
	cal, _ := calendar.New("09:00", "18:00")
	demand := dunning.DemandOn(&dunning.Case{Invoice: inv}, rcv.MustDate("2026-10-21"), tpl == "courtesy", cal)
	it := dunning.Item{Invoice: inv, Stage: policy.Stage{Name: "x", Template: tpl, Interest: interest}, DaysOverdue: 20, Demand: demand}
	if interest {
		it.Interest, it.Compensation = decimal.RequireFromString("77.1"), decimal.NewFromInt(40)
	}
	return dunning.Message{CompanyID: 1, Client: inv.Client, Template: tpl, Language: lang, Items: []dunning.Item{it}, Platform: "coll", MessageID: "dunning-abc"}
}

func TestEuroItalianStyle(t *testing.T) {
	for in, want := range map[string]string{"0": "0,00", "1234567.891": "1.234.567,89", "-40": "-40,00", "999.5": "999,50"} {
		if got := notify.Euro(decimal.RequireFromString(in)); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// A receiver can verify the hand-off with the Standard Webhooks library,
// using the secret it was given before (as whsec_ + base64) or a whsec_
// secret; during the migration the legacy Incasso-Signature verifies too.
func TestHandoffSignatureVerifiableByReceiver(t *testing.T) {
	secret := []byte("platform-secret-0123456789")
	std, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(secret))
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			w.WriteHeader(503) // retried
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := std.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := notify.Verify(secret, r.Header.Get(notify.TimestampHeader), r.Header.Get(notify.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "legacy: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Content-Type") != "application/cloudevents+json" {
			http.Error(w, "not a structured cloudevent", 400)
			return
		}
		got.Store(body)
		w.WriteHeader(202)
	}))
	defer srv.Close()
	wh := &notify.Webhook{Platforms: map[string]notify.Platform{"coll": {URL: srv.URL, Secret: secret}}, Backoff: 10 * time.Millisecond, HTTPClient: local(t, srv.URL), LegacySignature: true}
	if err := wh.Send(context.Background(), msg("it", "handoff", true)); err != nil {
		t.Fatal(err)
	}
	var ce struct {
		Type string `json:"type"`
		Data struct {
			Total    string `json:"total_due"`
			Invoices []any  `json:"invoices"`
			Client   struct {
				PEC string `json:"PEC"`
			} `json:"client"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got.Load().([]byte), &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Type != "dunning.escalated" || ce.Data.Total != "12462.70" || len(ce.Data.Invoices) != 1 {
		t.Errorf("dossier: %+v", ce)
	}
	// A tampered body or an old timestamp fails verification.
	body := got.Load().([]byte)
	ts := time.Now().Unix()
	sig := notify.Sign(secret, ts, body)
	if notify.Verify(secret, itoa(ts), sig, append(body, ' '), time.Now(), time.Minute) == nil {
		t.Error("tampered body verified")
	}
	if notify.Verify(secret, itoa(ts-3600), notify.Sign(secret, ts-3600, body), body, time.Now(), 5*time.Minute) == nil {
		t.Error("an hour-old signature verified")
	}
	// Refused by the platform: permanent.
	bad := &notify.Webhook{Platforms: map[string]notify.Platform{"coll": {URL: srv.URL + "/nope", Secret: []byte("wrong")}}, Backoff: time.Millisecond, HTTPClient: local(t, srv.URL)}
	if err := bad.Send(context.Background(), msg("it", "handoff", true)); err == nil {
		t.Error("refused hand-off reported as sent")
	}
	if notify.AllowedHost("https://evil.example/x", []string{"platform.example"}) || !notify.AllowedHost("https://platform.example/h", []string{"platform.example"}) {
		t.Error("host allow-list")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// local is the outbound guard letting a test reach one loopback server.
func local(t *testing.T, raw string) *http.Client {
	t.Helper()
	u, _ := url.Parse(raw)
	port, _ := strconv.Atoi(u.Port())
	return safehttp.Policy{AllowHTTP: true, Ports: []int{port}, AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.Client()
}

// The hand-off does not follow a redirect off the platform's origin: the
// dossier and its signature never reach the other host, and the send is
// not a success (issue #15: a 307 delivered them to a host outside
// DUNNING_ALLOWED_HOSTS and the hand-off was recorded as done).
func TestHandoffRefusesRedirectsOffThePlatform(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.WriteHeader(202)
	}))
	defer thief.Close()
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer platform.Close()
	u, _ := url.Parse(thief.URL)
	tp, _ := strconv.Atoi(u.Port())
	u, _ = url.Parse(platform.URL)
	pp, _ := strconv.Atoi(u.Port())
	// Even with both ports allowed and loopback reachable, the redirect
	// changes the origin.
	hc := safehttp.Policy{AllowHTTP: true, Ports: []int{pp, tp}, AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}.Client()
	wh := &notify.Webhook{Platforms: map[string]notify.Platform{"coll": {URL: platform.URL, Secret: []byte("platform-secret-0123456789")}}, Backoff: time.Millisecond, HTTPClient: hc}
	err := wh.Send(context.Background(), msg("it", "handoff", true))
	if !errors.Is(err, dunning.ErrUndeliverable) {
		t.Fatalf("Send through a 307 to another host: %v, want undeliverable", err)
	}
	if stolen.Load() != 0 {
		t.Fatal("the dossier reached the other host")
	}
	// The default client refuses a platform on this machine outright.
	def := &notify.Webhook{Platforms: map[string]notify.Platform{"coll": {URL: platform.URL, Secret: []byte("platform-secret-0123456789")}}, Backoff: time.Millisecond}
	if err := def.Send(context.Background(), msg("it", "handoff", true)); !errors.Is(err, dunning.ErrUndeliverable) {
		t.Fatalf("default client to a loopback platform: %v", err)
	}
}

// With the migration done (no legacy headers) and a whsec_ platform
// secret, the hand-off carries only the Standard Webhooks headers, and
// webhook-id is the CloudEvent id.
func TestHandoffStandardWebhooksOnly(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	std, _ := standardwebhooks.NewWebhook(secret)
	var hdr atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := std.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ce struct{ ID string }
		_ = json.Unmarshal(body, &ce)
		if ce.ID != r.Header.Get("webhook-id") {
			http.Error(w, "webhook-id is not the event id", 400)
			return
		}
		hdr.Store(r.Header.Clone())
		w.WriteHeader(202)
	}))
	defer srv.Close()
	wh := &notify.Webhook{Platforms: map[string]notify.Platform{"coll": {URL: srv.URL, Secret: []byte(secret)}}, Retries: 1, Backoff: time.Millisecond, HTTPClient: local(t, srv.URL)}
	if err := wh.Send(context.Background(), msg("it", "handoff", true)); err != nil {
		t.Fatal(err)
	}
	if h := hdr.Load().(http.Header); h.Get(notify.SignatureHeader) != "" || h.Get(notify.TimestampHeader) != "" {
		t.Errorf("legacy headers sent: %v", h)
	}
}
