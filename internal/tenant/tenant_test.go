package tenant_test

import (
	"context"
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
