package dunningapp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/tenant"
)

// ficClients gives each company the FIC client dunning reads it with: the
// manual token's client for every company, or, in OAuth mode, the client
// of the poller's connection that holds the company (its encrypted
// connection store, and its refresh lease, so that the two services never
// refresh one connection at once).
type ficClients struct {
	static *fic.Client // manual token

	newClient func(fic.Credentials) (*fic.Client, error)
	oauth     *fic.OAuth
	tokens    *kvstore.Tokens
	leases    *kvstore.Leases
	log       *slog.Logger
	dataDir   string

	mu        sync.Mutex
	byConn    map[string]*fic.Client
	byCompany map[int64]*fic.Client
	listed    time.Time
}

// newFICClients builds the directory from the configuration.
func newFICClients(ctx context.Context, cfg Config, js jetstream.JetStream, log *slog.Logger, newClient func(fic.Credentials) (*fic.Client, error)) (*ficClients, error) {
	if cfg.FICAccessToken != "" {
		c, err := newClient(fic.StaticToken(cfg.FICAccessToken))
		return &ficClients{static: c}, err
	}
	key, err := kvstore.ParseSecretKey(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("INCASSO_SECRET_KEY: %w", err)
	}
	bc := kvstore.BucketConfig{Replicas: cfg.Replicas}
	tokens, err := kvstore.NewTokens(ctx, js, key, bc)
	if err != nil {
		return nil, err
	}
	leases, err := kvstore.OpenLeases(ctx, js, "dunning-"+randHex(6), bc)
	if err != nil {
		return nil, err
	}
	oauth := fic.NewOAuth(cfg.FICBaseURL, cfg.FICClientID, cfg.FICClientSecret, cfg.FICRedirectURL, fic.DefaultScopes)
	oauth.FormBody = !cfg.FICTokenJSON
	return &ficClients{newClient: newClient, oauth: oauth, tokens: tokens, leases: leases, log: log, dataDir: cfg.DataDir,
		byConn: map[string]*fic.Client{}, byCompany: map[int64]*fic.Client{}}, nil
}

// client returns the company's client; in OAuth mode an unknown company
// re-reads the connections (at most every 10 s).
func (f *ficClients) client(ctx context.Context, cid int64) (*fic.Client, error) {
	if f.static != nil {
		return f.static, nil
	}
	f.mu.Lock()
	c, ok := f.byCompany[cid]
	stale := time.Since(f.listed) > 10*time.Second
	f.mu.Unlock()
	if ok {
		return c, nil
	}
	if stale {
		if err := f.reload(ctx); err != nil {
			return nil, err
		}
		f.mu.Lock()
		c, ok = f.byCompany[cid]
		f.mu.Unlock()
		if ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("company %d has no FIC connection (connect it with `poller connect`)", cid)
}

func (f *ficClients) reload(ctx context.Context) error {
	names, err := f.tokens.Connections(ctx)
	if err != nil {
		return fmt.Errorf("FIC connections: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed = time.Now()
	for _, name := range names {
		conn, _, err := f.tokens.Get(ctx, name)
		if err != nil {
			f.log.Error("FIC connection unusable", "connection", name, "error", err)
			continue
		}
		c, ok := f.byConn[name]
		if !ok {
			if c, err = f.newClient(&tenant.Credentials{OAuth: f.oauth, Store: f.tokens, Lock: f.leases, Key: name, Log: f.log,
				Spool: &tenant.DirSpool{Dir: filepath.Join(f.dataDir, "token-spool"), Sealer: f.tokens}}); err != nil {
				return err
			}
			f.byConn[name] = c
		}
		for _, cid := range conn.Companies {
			f.byCompany[cid] = c
		}
	}
	return nil
}

// fresh is the freshness source of a company (dunning.Engine.Fresh).
func (f *ficClients) fresh(cid int64) (dunning.Fresh, error) {
	return freshFor{f, cid}, nil
}

type freshFor struct {
	f   *ficClients
	cid int64
}

func (s freshFor) Invoice(ctx context.Context, cid, id int64) (rcv.Invoice, error) {
	c, err := s.f.client(ctx, cid)
	if err != nil {
		return rcv.Invoice{}, err
	}
	return (&fic.Source{Client: c}).Invoice(ctx, cid, id)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pdf downloads an invoice's PDF (dunning.Engine.InvoicePDF).
func (f *ficClients) pdf(ctx context.Context, cid, id int64) ([]byte, error) {
	c, err := f.client(ctx, cid)
	if err != nil {
		return nil, err
	}
	return c.DocumentPDF(ctx, cid, id)
}

// clientRecord reads a client's current record (contacts.Fetch).
func (f *ficClients) clientRecord(ctx context.Context, cid, id int64) (rcv.Client, error) {
	c, err := f.client(ctx, cid)
	if err != nil {
		return rcv.Client{}, err
	}
	return c.GetClient(ctx, cid, id)
}
