package webhooksub_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/webhooksub"
)

// sink answers FIC's verification challenge once refusals reach 0.
func sink(t *testing.T, key *fic.Verifier, refusals *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, ok := fic.Challenge(r)
		if !ok {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if refusals.Add(-1) >= 0 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		if _, err := key.VerifyHandshake(r.Context(), r.Header.Get("Authorization")); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fic.WriteChallenge(w, ch)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The subscription is looked after, not created once (issue #16): missing
// or deleted by FIC, it is created; the public URL changed, it is moved
// with a PUT instead of a second subscription; unverified, FIC is asked
// to verify it again within its limits.
func TestReconcileKeepsTheSubscriptionWorking(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 3, WebhookRetryBase: time.Millisecond, AllowHTTPSinks: true})
	cid := sim.CompanyIDs()[0]
	api, err := fic.New(fic.Config{BaseURL: srv.URL, RetryBase: time.Millisecond, Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, nil)}, fic.StaticToken(sim.Token()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var refusals atomic.Int32
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	r := &webhooksub.Reconciler{Now: func() time.Time { return now }}
	v := &fic.Verifier{Key: sim.WebhookPublicKey()}
	a, b := sink(t, v, &refusals), sink(t, v, &refusals)
	eventually := func(want webhooksub.State, sinkURL string) webhooksub.Result {
		t.Helper()
		var res webhooksub.Result
		for i := 0; i < 50; i++ {
			if res = r.Reconcile(ctx, api, cid, sinkURL); res.State == want {
				return res
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("state %s (%v), want %s", res.State, res.Err, want)
		return res
	}
	first := r.Reconcile(ctx, api, cid, a.URL)
	if first.Action != "created" || first.Err != nil {
		t.Fatalf("first: %+v", first)
	}
	eventually(webhooksub.Verified, a.URL)
	if again := r.Reconcile(ctx, api, cid, a.URL); again.Action != "" || again.ID != first.ID {
		t.Fatalf("nothing to do: %+v", again)
	}
	// The public URL changed: the same subscription, moved.
	moved := r.Reconcile(ctx, api, cid, b.URL)
	if moved.Action != "moved" || moved.ID != first.ID {
		t.Fatalf("moved: %+v", moved)
	}
	if subs, _ := api.ListSubscriptions(ctx, cid); len(subs) != 1 || subs[0].Sink != b.URL {
		t.Fatalf("subscriptions after the move: %+v", subs)
	}
	eventually(webhooksub.Verified, b.URL)
	// An earlier version subscribed to fewer types: brought up to date.
	if _, _, err := api.ModifySubscription(ctx, cid, fic.Subscription{ID: first.ID, Sink: b.URL, Types: fic.ReceivablesEventTypes[:6]}); err != nil {
		t.Fatal(err)
	}
	if up := r.Reconcile(ctx, api, cid, b.URL); up.Action != "moved" {
		t.Fatalf("types: %+v", up)
	}
	if subs, _ := api.ListSubscriptions(ctx, cid); len(subs) != 1 || len(subs[0].Types) != len(fic.SubscribedEventTypes) {
		t.Fatalf("subscription types: %+v", subs)
	}
	eventually(webhooksub.Verified, b.URL)
	// FIC deleted it (ten days of failures): created again.
	if err := api.DeleteSubscription(ctx, cid, first.ID); err != nil {
		t.Fatal(err)
	}
	// The sink refuses the first verifications: the subscription stays
	// unverified until FIC is asked again, once per 10 minutes, 5 times.
	refusals.Store(1000)
	re := r.Reconcile(ctx, api, cid, b.URL)
	if re.Action != "created" || re.State != webhooksub.Unverified {
		t.Fatalf("recreated: %+v", re)
	}
	asked := 0
	for i := 0; i < 12; i++ {
		res := r.Reconcile(ctx, api, cid, b.URL)
		if res.Action == "verify_requested" {
			asked++
		}
		now = now.Add(6 * time.Minute) // every other look may ask
		if res.State == webhooksub.GaveUp {
			break
		}
	}
	if asked != webhooksub.MaxVerifyTries {
		t.Fatalf("%d verification requests, want FIC's limit of %d", asked, webhooksub.MaxVerifyTries)
	}
	if res := r.Reconcile(ctx, api, cid, b.URL); res.State != webhooksub.GaveUp || res.Err == nil {
		t.Fatalf("after %d tries: %+v", webhooksub.MaxVerifyTries, res)
	}
}

// dropsClients is FIC for a token without entity.clients:r: it keeps every
// type but the clients' one, with a warning.
type dropsClients struct {
	sub      fic.Subscription
	modified int
}

func (d *dropsClients) keep(s fic.Subscription) fic.Subscription {
	var kept []string
	for _, t := range s.Types {
		if t != fic.EventClientUpdate {
			kept = append(kept, t)
		}
	}
	s.Types, s.Verified = kept, true
	if s.ID == "" {
		s.ID = "sub-1"
	}
	return s
}
func (d *dropsClients) ListSubscriptions(context.Context, int64) ([]fic.Subscription, error) {
	if d.sub.ID == "" {
		return nil, nil
	}
	return []fic.Subscription{d.sub}, nil
}
func (d *dropsClients) CreateSubscription(_ context.Context, _ int64, s fic.Subscription) (fic.Subscription, fic.Warnings, error) {
	d.sub = d.keep(s)
	return d.sub, fic.Warnings{"The '" + fic.EventClientUpdate + "' event needs the entity.clients:r scope"}, nil
}
func (d *dropsClients) ModifySubscription(_ context.Context, _ int64, s fic.Subscription) (fic.Subscription, fic.Warnings, error) {
	d.modified++
	d.sub = d.keep(s)
	return d.sub, nil, nil
}
func (d *dropsClients) VerifySubscription(context.Context, int64, string, string) error { return nil }

// A type FIC refuses (a scope the token lacks) is not asked for again at
// every check: without this, each reconciliation would PUT the
// subscription forever.
func TestDroppedTypeIsNotAskedForever(t *testing.T) {
	api := &dropsClients{}
	r := &webhooksub.Reconciler{}
	ctx := context.Background()
	if res := r.Reconcile(ctx, api, 1, "https://incasso.example/webhooks"); res.Action != "created" {
		t.Fatalf("first: %+v", res)
	}
	for i := 0; i < 3; i++ {
		if res := r.Reconcile(ctx, api, 1, "https://incasso.example/webhooks"); res.State != webhooksub.Verified || res.Action != "" {
			t.Fatalf("check %d: %+v", i, res)
		}
	}
	if api.modified != 0 {
		t.Errorf("%d PUTs for a type FIC refuses", api.modified)
	}
}
