package natsrv_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/nats-io/nats.go"
)

// Waiting for an external NATS that is not up yet ends with the context: a
// stop during start-up does not sit out the minute of connection retries.
func TestOpenStopsWaitingWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = natsrv.Open(ctx, natsrv.OpenConfig{URL: "nats://" + addr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Open returned %v after the context ended", took)
	}
}

// The embedded server (the binaries' default, NATS_URL unset) has a
// password from its first start, in a 0600 file the other local processes
// read; a client without it is refused (issue #15, point 2: the embedded
// server and compose accepted anyone).
func TestEmbeddedServerRequiresItsPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ctx := context.Background()
	c, err := natsrv.Open(ctx, natsrv.OpenConfig{EmbeddedAddr: addr, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	file := filepath.Join(dir, "nats", "password")
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", st, err)
	}
	if nc, err := nats.Connect("nats://" + addr); err == nil {
		nc.Close()
		t.Fatal("a client without the password got in")
	}
	if nc, err := nats.Connect("nats://"+addr, nats.UserInfo(natsrv.EmbeddedUser, "guess")); err == nil {
		nc.Close()
		t.Fatal("a wrong password got in")
	}
	// Another local process (dunning, the CLI) finds the password file.
	other, err := natsrv.Open(ctx, natsrv.OpenConfig{URL: "nats://" + addr, PasswordFile: file})
	if err != nil {
		t.Fatalf("a local process with the password file: %v", err)
	}
	other.Close()
	// The password survives a restart of the embedded server.
	pw, _ := os.ReadFile(file)
	c.Close()
	again, err := natsrv.Open(ctx, natsrv.OpenConfig{EmbeddedAddr: addr, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if pw2, _ := os.ReadFile(file); string(pw2) != string(pw) {
		t.Fatal("the password changed on restart")
	}
}
