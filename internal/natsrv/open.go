package natsrv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is an open connection, and the embedded server behind it if any.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Server *server.Server // nil when connected to an external NATS
	URL    string
}

// Close drains the connection, then stops the embedded server.
func (c *Conn) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
		for i := 0; i < 50 && !c.NC.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c.Server != nil {
		c.Server.Shutdown()
		c.Server.WaitForShutdown()
	}
}

// OpenConfig says where NATS is.
type OpenConfig struct {
	URL   string // NATS_URL; empty starts the embedded server
	Creds string // NATS_CREDS file (external servers)
	// User and Password authenticate to an external server (NATS_USER,
	// NATS_PASSWORD; a password alone is EmbeddedUser's); with neither, a
	// local password file written by an embedded server (PasswordFile) is
	// used when it exists.
	User, Password string
	// PasswordFile is where the embedded server keeps its generated
	// password (default <StoreDir>/password): created on first start with
	// mode 0600, read by the other local processes.
	PasswordFile string
	EmbeddedAddr string // host:port of the embedded server (default 127.0.0.1:4222)
	StoreDir     string // embedded JetStream store
	Name         string // client connection name
}

// PubAckTimeout bounds how long an async publish waits for its
// acknowledgement.
const PubAckTimeout = 30 * time.Second

// Open connects to NATS_URL, or starts the embedded server and connects to
// it. Reconnects forever: a NATS outage pauses work, it does not stop it.
// Waiting for an external server that is not up yet ends with ctx (a stop
// signal during start-up stops at once).
func Open(ctx context.Context, c OpenConfig) (*Conn, error) {
	out := &Conn{URL: c.URL}
	if c.URL == "" {
		addr := c.EmbeddedAddr
		if addr == "" {
			addr = "127.0.0.1:4222"
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("natsrv: embedded address %q: %w", addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsrv: embedded port %q: %w", port, err)
		}
		if p == 0 {
			p = -1
		}
		// Authentication on by default: a generated password, kept in a
		// 0600 file for the other local processes (dunning, the CLI).
		file := c.PasswordFile
		if file == "" {
			file = filepath.Join(c.StoreDir, "password")
		}
		pw, err := EnsurePassword(file)
		if err != nil {
			return nil, err
		}
		s, err := Start(Config{Host: host, Port: p, StoreDir: c.StoreDir, Users: []User{{Name: EmbeddedUser, Password: pw}}})
		if err != nil {
			return nil, err
		}
		out.Server, out.URL = s, s.ClientURL()
		c.User, c.Password = EmbeddedUser, pw
	}
	opts := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.User == "" && c.Password == "" && c.Creds == "" && c.PasswordFile != "" {
		if b, err := os.ReadFile(c.PasswordFile); err == nil {
			c.User, c.Password = EmbeddedUser, strings.TrimSpace(string(b))
		}
	}
	if c.User == "" && c.Password != "" {
		c.User = EmbeddedUser // a password alone is the embedded server's user's
	}
	if c.User != "" || c.Password != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	// An external server may still be starting (compose, Kubernetes): retry
	// for up to a minute before giving up.
	var nc *nats.Conn
	var err error
	for attempt := 0; ; attempt++ {
		nc, err = nats.Connect(out.URL, opts...)
		if err == nil || out.Server != nil || attempt >= 60 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("natsrv: connect %s: %w (last error: %v)", Redact(out.URL), ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		if out.Server != nil {
			out.Server.Shutdown()
		}
		return nil, fmt.Errorf("natsrv: connect %s: %w", Redact(out.URL), err)
	}
	out.NC = nc
	// An acknowledgement lost to a partition or a reconnect would leave an
	// async publish waiting forever (and a scan stuck with it): it fails
	// after PubAckTimeout instead, and the caller retries.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(PubAckTimeout))
	if err != nil {
		out.Close()
		return nil, err
	}
	out.JS = js
	return out, nil
}

// Retry runs a setup step (creating a stream or a bucket) until it succeeds,
// for up to a minute: right after a cluster starts, or while its meta leader
// is being elected, JetStream API calls time out for a while.
func Retry(ctx context.Context, f func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Redact returns a NATS URL list with any password replaced by "xxxxx",
// for logs and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				parts[i] = u.Redacted()
			} else {
				u.User = url.User("xxxxx") // a token as the user part
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

// EmbeddedUser is the user of the embedded server's generated password.
const EmbeddedUser = "incasso"

// EnsurePassword returns the password kept in file, creating the file
// (mode 0600, its directory 0700) with a random one if it does not exist.
func EnsurePassword(file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("natsrv: password file: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(b)
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("natsrv: password file: %w", err)
	}
	return pw, nil
}
