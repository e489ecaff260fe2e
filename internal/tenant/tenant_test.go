package tenant_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/tenant"
)

// Two replicas hit a 401 at the same time: exactly one refresh reaches FIC
// (a second one would be refused, refresh tokens rotate) and both end up
// with the new token.
func TestConcurrentRefreshAcrossReplicas(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 5})
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	tokens, _ := kvstore.NewTokens(ctx, js, make([]byte, 32), kvstore.BucketConfig{})
	o := fic.NewOAuth(srv.URL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil)
	tok := ficsimtest.Authorize(t, srv.URL) // authorize once
	if _, err := tokens.Put(ctx, "c1", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		t.Fatal(err)
	}
	var creds []*tenant.Credentials
	for _, owner := range []string{"a", "b", "c"} {
		l, _ := kvstore.NewLeases(ctx, js, owner, 5*time.Second, kvstore.BucketConfig{})
		creds = append(creds, &tenant.Credentials{OAuth: o, Store: tokens, Lock: l, Key: "c1"})
	}
	for _, c := range creds {
		if got, err := c.Token(ctx); err != nil || got != tok.AccessToken {
			t.Fatalf("initial token: %v", err)
		}
	}
	sim.RevokeToken(tok.AccessToken) // access token dead; its refresh pair too in ficsim, so re-authorize a refresh-only token
	tok2 := ficsimtest.Authorize(t, srv.URL)
	_, rev, _ := tokens.Get(ctx, "c1")
	stale := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(time.Hour)}
	if _, err := tokens.Put(ctx, "c1", kvstore.Connection{Token: stale, Companies: sim.CompanyIDs()}, rev); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, len(creds))
	errs := make([]error, len(creds))
	for i, c := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Refresh(ctx)
		}()
	}
	wg.Wait()
	for i := range creds {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Errorf("replicas disagree on the token")
		}
	}
	stored, _, _ := tokens.Get(ctx, "c1")
	if stored.Token.AccessToken != results[0] || stored.Token.RefreshToken == tok2.RefreshToken {
		t.Error("rotated token not stored")
	}
	c, _ := fic.New(fic.Config{BaseURL: srv.URL}, creds[1])
	if _, err := c.ListBinIssuedDocuments(ctx, sim.CompanyIDs()[0]); err != nil {
		t.Errorf("request with the shared token: %v", err)
	}
}

// blockingStore holds the refresh's save until released, as a refresh in
// flight between FIC's answer and its save.
type blockingStore struct {
	tenant.Store
	inSave  chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingStore) Put(ctx context.Context, key string, c kvstore.Connection, rev uint64) (uint64, error) {
	b.once.Do(func() { close(b.inSave); <-b.release })
	return b.Store.Put(ctx, key, c, rev)
}

// A key rotation that runs while a refresh is between FIC's answer and its
// save waits for the save (issue #15: the re-seal made the save lose its
// compare-and-set; FIC had rotated the refresh token already, and the
// connection was dead for good).
func TestKeyRotationDuringARefreshLosesNothing(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 3})
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	newKey[0] = 1
	tokens, _ := kvstore.NewTokens(ctx, js, oldKey, kvstore.BucketConfig{})
	tok := ficsimtest.Authorize(t, srv.URL)
	if _, err := tokens.Put(ctx, "c1", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		t.Fatal(err)
	}
	leases, _ := kvstore.NewLeases(ctx, js, "poller", 5*time.Second, kvstore.BucketConfig{})
	bs := &blockingStore{Store: tokens, inSave: make(chan struct{}), release: make(chan struct{})}
	o := fic.NewOAuth(srv.URL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil)
	creds := &tenant.Credentials{OAuth: o, Store: bs, Lock: leases, Key: "c1"}
	if _, err := creds.Token(ctx); err != nil { // in use: the refresh below is after a 401
		t.Fatal(err)
	}
	refreshed := make(chan error, 1)
	go func() { _, err := creds.Refresh(ctx); refreshed <- err }()
	<-bs.inSave // FIC has rotated the token; the save has not happened

	nw, _ := tokens.Open(newKey)
	rotLeases, _ := kvstore.OpenLeases(ctx, js, "rotate-key", kvstore.BucketConfig{})
	rotated := make(chan error, 1)
	go func() {
		_, err := nw.Rekey(ctx, tokens, func(ctx context.Context, name string) (func(), error) {
			return tenant.LockConnection(ctx, rotLeases, name)
		})
		rotated <- err
	}()
	select {
	case err := <-rotated:
		t.Fatalf("the rotation did not wait for the refresh in flight: %v", err)
	case <-time.After(700 * time.Millisecond):
	}
	close(bs.release)
	if err := <-refreshed; err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if err := <-rotated; err != nil {
		t.Fatalf("rotation: %v", err)
	}
	// The connection, under the new key, holds the refreshed token: it
	// refreshes again at FIC (the first token's refresh token is dead).
	after := &tenant.Credentials{OAuth: o, Store: nw, Lock: leases, Key: "c1"}
	if _, err := after.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := after.Refresh(ctx); err != nil {
		t.Fatalf("refresh after the rotation: %v (the refreshed token was lost)", err)
	}
}

// failingStore refuses writes while on (NATS unreachable).
type failingStore struct {
	tenant.Store
	on bool
}

func (f *failingStore) Put(ctx context.Context, key string, c kvstore.Connection, rev uint64) (uint64, error) {
	if f.on {
		return 0, errors.New("nats: no responders available for request")
	}
	return f.Store.Put(ctx, key, c, rev)
}

// A refresh whose save fails (NATS down) still works and keeps the new
// token in the spool; after a restart the token is saved from there
// (issue #15: the token FIC had rotated was lost with the failed save).
func TestRefreshedTokenSurvivesAnOutageAndARestart(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 3})
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	tokens, _ := kvstore.NewTokens(ctx, js, make([]byte, 32), kvstore.BucketConfig{})
	tok := ficsimtest.Authorize(t, srv.URL)
	if _, err := tokens.Put(ctx, "c1", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		t.Fatal(err)
	}
	leases, _ := kvstore.NewLeases(ctx, js, "poller", 5*time.Second, kvstore.BucketConfig{})
	o := fic.NewOAuth(srv.URL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil)
	spool := &tenant.DirSpool{Dir: t.TempDir(), Sealer: tokens}
	down := &failingStore{Store: tokens, on: true}
	old := tenant.SaveTimeout
	tenant.SaveTimeout = 500 * time.Millisecond
	t.Cleanup(func() { tenant.SaveTimeout = old })
	creds := &tenant.Credentials{OAuth: o, Store: down, Lock: leases, Key: "c1", Spool: spool}
	if _, err := creds.Token(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, err := creds.Refresh(ctx)
	if err != nil || fresh == tok.AccessToken {
		t.Fatalf("refresh with NATS down: %q, %v", fresh, err)
	}
	if spooled, _ := spool.Get("c1"); spooled == nil || spooled.AccessToken != fresh {
		t.Fatal("the refreshed token is not in the spool")
	}
	// "Restart": new credentials, NATS back.
	restarted := &tenant.Credentials{OAuth: o, Store: tokens, Lock: leases, Key: "c1", Spool: spool}
	got, err := restarted.Token(ctx)
	if err != nil || got != fresh {
		t.Fatalf("after the restart: %q, %v; want the spooled token", got, err)
	}
	if conn, _, _ := tokens.Get(ctx, "c1"); conn.Token.AccessToken != fresh {
		t.Fatal("the spooled token was not saved")
	}
	if spooled, _ := spool.Get("c1"); spooled != nil {
		t.Fatal("the spool was not emptied")
	}
	if _, err := restarted.Refresh(ctx); err != nil {
		t.Fatalf("the connection is dead: %v", err)
	}
}
