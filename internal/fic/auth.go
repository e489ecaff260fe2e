package fic

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultScopes are the OAuth scopes Incasso asks for: read invoices, credit
// notes, clients and settings. Nothing is written to FIC.
var DefaultScopes = []string{
	"entity.clients:r",
	"issued_documents.invoices:r",
	"issued_documents.credit_notes:r",
	"settings:r",
}

// Credentials supply the bearer token for requests. Implementations are safe
// for concurrent use.
type Credentials interface {
	// Token returns a valid access token, refreshing it first if it has
	// expired.
	Token(ctx context.Context) (string, error)
	// Refresh obtains a new access token after FIC answered 401 to a token
	// Token returned. Returns ErrUnauthorized if the credentials cannot be
	// refreshed (manual tokens) and ErrRefreshTokenInvalid if FIC refused the
	// refresh token.
	Refresh(ctx context.Context) (string, error)
}

// StaticToken is a manual token generated in FIC's web app. It never expires
// but can be revoked, so a 401 is final.
type StaticToken string

// Token implements Credentials.
func (s StaticToken) Token(context.Context) (string, error) { return string(s), nil }

// Refresh implements Credentials: a manual token cannot be refreshed.
func (StaticToken) Refresh(context.Context) (string, error) {
	return "", fmt.Errorf("%w: manual token refused (revoked?)", ErrUnauthorized)
}

// TokenStore persists OAuth tokens. Save is called the moment a token is
// issued or refreshed (FIC rotates refresh tokens: the old one stops working),
// before the new access token is used. An error from Save fails the refresh,
// so a token that was not stored is never relied upon.
type TokenStore interface {
	Save(ctx context.Context, tok *oauth2.Token) error
}

// OAuth is a FIC app's OAuth2 Authorization Code configuration.
type OAuth struct {
	Config oauth2.Config
	// FormBody sends token requests form-encoded (RFC 6749) instead of as a
	// JSON body, which is what the official SDKs send. Whether FIC accepts
	// forms is unverified, so JSON is the default.
	FormBody   bool
	HTTPClient *http.Client
}

// NewOAuth builds the configuration against baseURL (FIC's API origin, or
// ficsim's). scopes nil means DefaultScopes.
func NewOAuth(baseURL, clientID, clientSecret, redirectURL string, scopes []string) *OAuth {
	if scopes == nil {
		scopes = DefaultScopes
	}
	base := strings.TrimRight(baseURL, "/")
	return &OAuth{Config: oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   base + "/oauth/authorize",
			TokenURL:  base + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}}
}

// AuthCodeURL returns the URL to send the user to. verifier is a PKCE code
// verifier from oauth2.GenerateVerifier; keep it with state until the
// callback.
func (o *OAuth) AuthCodeURL(state, verifier string) string {
	return o.Config.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange trades an authorization code for a token.
func (o *OAuth) Exchange(ctx context.Context, code, verifier string) (*oauth2.Token, error) {
	tok, err := o.Config.Exchange(o.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("fic: oauth exchange: %w", classifyOAuth(err))
	}
	return tok, nil
}

func (o *OAuth) ctx(ctx context.Context) context.Context {
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	if !o.FormBody {
		cp := *hc
		base := cp.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		cp.Transport = jsonTokenTransport{base: base}
		hc = &cp
	}
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

// classifyOAuth maps token endpoint refusals to ErrRefreshTokenInvalid and
// strips nothing else: oauth2.RetrieveError does not contain the secret.
func classifyOAuth(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		if re.Response != nil && re.Response.StatusCode >= 500 {
			return fmt.Errorf("%w: token endpoint HTTP %d %s", ErrUnavailable, re.Response.StatusCode, msg)
		}
		return fmt.Errorf("%w: %s", ErrRefreshTokenInvalid, msg)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// jsonTokenTransport re-encodes x/oauth2's form-encoded token requests as the
// JSON body FIC's SDKs send.
type jsonTokenTransport struct{ base http.RoundTripper }

func (t jsonTokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return t.base.RoundTrip(r)
	}
	raw, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(form))
	for k := range form {
		m[k] = form.Get(k)
	}
	body, _ := json.Marshal(m)
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Set("Content-Type", "application/json")
	r2.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return t.base.RoundTrip(r2)
}

// OAuthCredentials are one connection's OAuth tokens. They refresh when the
// access token expires (or after a 401) and hand every new token to the
// store before using it.
type OAuthCredentials struct {
	oauth *OAuth
	store TokenStore
	now   func() time.Time
	mu    sync.Mutex
	tok   *oauth2.Token
}

// Credentials returns credentials starting from tok. store may be nil.
func (o *OAuth) Credentials(tok *oauth2.Token, store TokenStore) *OAuthCredentials {
	return &OAuthCredentials{oauth: o, store: store, now: time.Now, tok: tok}
}

// Token implements Credentials.
func (c *OAuthCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && c.tok.AccessToken != "" && (c.tok.Expiry.IsZero() || c.tok.Expiry.After(c.now().Add(time.Minute))) {
		return c.tok.AccessToken, nil
	}
	return c.refreshLocked(ctx)
}

// Refresh implements Credentials.
func (c *OAuthCredentials) Refresh(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

// Current returns a copy of the current token (for persistence).
func (c *OAuthCredentials) Current() *oauth2.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == nil {
		return nil
	}
	cp := *c.tok
	return &cp
}

func (c *OAuthCredentials) refreshLocked(ctx context.Context) (string, error) {
	if c.tok == nil || c.tok.RefreshToken == "" {
		return "", fmt.Errorf("%w: no refresh token", ErrUnauthorized)
	}
	// An expired copy forces x/oauth2 to call the token endpoint.
	src := c.oauth.Config.TokenSource(c.oauth.ctx(ctx), &oauth2.Token{RefreshToken: c.tok.RefreshToken})
	nt, err := src.Token()
	if err != nil {
		return "", fmt.Errorf("fic: refresh token: %w", classifyOAuth(err))
	}
	if c.store != nil {
		if err := c.store.Save(ctx, nt); err != nil {
			return "", fmt.Errorf("fic: save refreshed token: %w", err)
		}
	}
	c.tok = nt
	return nt.AccessToken, nil
}

// AuthorizeAutoApproved runs the whole authorization-code flow (state and
// PKCE included) against a server that approves without a user, such as
// ficsim: it requests the authorization URL, reads the redirect instead of
// following it, checks the state and exchanges the code. For sandboxes,
// demos and load runs; real FIC needs a person (see `poller connect`).
func (o *OAuth) AuthorizeAutoApproved(ctx context.Context) (*oauth2.Token, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	state := hex.EncodeToString(b)
	verifier := oauth2.GenerateVerifier()
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.AuthCodeURL(state, verifier), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fic: authorize: %w", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("fic: authorize: HTTP %d without a redirect", resp.StatusCode)
	}
	if loc.Query().Get("state") != state {
		return nil, errors.New("fic: authorize: state mismatch in the redirect")
	}
	return o.Exchange(ctx, loc.Query().Get("code"), verifier)
}
