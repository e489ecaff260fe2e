package pollerapp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
)

// connect runs the OAuth authorization-code flow (with state and PKCE) on a
// local callback server at FIC_REDIRECT_URL, then stores the token,
// encrypted, with the companies it reaches. browser, if set, opens the URL
// (tests); otherwise the URL is printed for the user to open.
func connect(ctx context.Context, cfg Config, name string, log *slog.Logger, out io.Writer, browser func(string)) error {
	ru, err := url.Parse(cfg.FICRedirectURL)
	if err != nil {
		return fmt.Errorf("FIC_REDIRECT_URL: %w", err)
	}
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-poller-connect"))
	if err != nil {
		return err
	}
	defer nc.Close()
	key, _ := kvstore.ParseSecretKey(cfg.SecretKey)
	tokens, err := kvstore.NewTokens(ctx, nc.JS, key, kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	oauth := fic.NewOAuth(cfg.FICBaseURL, cfg.FICClientID, cfg.FICClientSecret, cfg.FICRedirectURL, scopes(cfg))
	oauth.FormBody = !cfg.FICTokenJSON

	b := make([]byte, 16)
	_, _ = rand.Read(b)
	state := hex.EncodeToString(b)
	verifier := oauth2.GenerateVerifier()
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc(ru.Path, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("state") != state:
			http.Error(w, "state mismatch: start `poller connect` again", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			http.Error(w, "authorization refused", http.StatusBadRequest)
			done <- result{err: fmt.Errorf("authorization refused: %s", q.Get("error"))}
			return
		}
		tok, err := oauth.Exchange(r.Context(), q.Get("code"), verifier)
		if err != nil {
			http.Error(w, "exchange failed", http.StatusBadGateway)
			done <- result{err: err}
			return
		}
		fmt.Fprintln(w, "Incasso is connected to Fatture in Cloud. You can close this window.")
		done <- result{tok: tok}
	})
	ln, err := net.Listen("tcp", ru.Host)
	if err != nil {
		return fmt.Errorf("FIC_REDIRECT_URL: cannot listen on %s: %w", ru.Host, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	authURL := oauth.AuthCodeURL(state, verifier)
	fmt.Fprintf(out, "Open this URL to authorize Incasso on Fatture in Cloud:\n\n  %s\n\nWaiting for the redirect to %s ...\n", authURL, cfg.FICRedirectURL)
	if browser != nil {
		go browser(authURL)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Minute):
		return errors.New("no authorization within 10 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
	if res.err != nil {
		return res.err
	}
	client, err := fic.New(fic.Config{BaseURL: cfg.FICBaseURL, Logger: log}, fic.StaticToken(res.tok.AccessToken))
	if err != nil {
		return err
	}
	comps, err := client.ListUserCompanies(ctx)
	if err != nil {
		return fmt.Errorf("list companies: %w", err)
	}
	if len(comps) == 0 {
		return errors.New("the authorized user has no company")
	}
	conn := kvstore.Connection{Token: res.tok}
	for _, c := range comps {
		conn.Companies = append(conn.Companies, c.ID)
	}
	if name == "" {
		name = strconv.FormatInt(comps[0].ID, 10)
	}
	rev := uint64(0)
	if _, r, err := tokens.Get(ctx, name); err == nil {
		rev = r // re-authorization replaces the connection
	}
	if _, err := tokens.Put(ctx, name, conn, rev); err != nil {
		return err
	}
	fmt.Fprintf(out, "Connection %q stored (token encrypted). Companies:\n", name)
	for _, c := range comps {
		fmt.Fprintf(out, "  %d  %s\n", c.ID, c.Name)
	}
	return nil
}
