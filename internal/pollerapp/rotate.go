package pollerapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/tenant"
)

// rotateKey re-seals every stored connection from INCASSO_SECRET_KEY_OLD to
// INCASSO_SECRET_KEY. Run it once, then restart the pollers with the new key
// (an interrupted run can be repeated).
func rotateKey(ctx context.Context, cfg Config, environ []string, out io.Writer) error {
	var oldRaw string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "INCASSO_SECRET_KEY_OLD="); ok {
			oldRaw = v
		}
	}
	if oldRaw == "" {
		return errors.New("INCASSO_SECRET_KEY_OLD: required (the key the tokens are sealed with now)")
	}
	oldKey, err := kvstore.ParseSecretKey(oldRaw)
	if err != nil {
		return fmt.Errorf("INCASSO_SECRET_KEY_OLD: %w", err)
	}
	newKey, err := kvstore.ParseSecretKey(cfg.SecretKey)
	if err != nil {
		return fmt.Errorf("INCASSO_SECRET_KEY: %w", err)
	}
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-rotate-key"))
	if err != nil {
		return err
	}
	defer nc.Close()
	nw, err := kvstore.NewTokens(ctx, nc.JS, newKey, kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	old, err := nw.Open(oldKey)
	if err != nil {
		return err
	}
	// Each connection is re-sealed under its refresh lock, so that a
	// poller refreshing it right now saves its new token first.
	leases, err := kvstore.OpenLeases(ctx, nc.JS, "rotate-key", kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	n, err := nw.Rekey(ctx, old, func(ctx context.Context, name string) (func(), error) {
		return tenant.LockConnection(ctx, leases, name)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "re-sealed %d connection(s) with the new INCASSO_SECRET_KEY\n", n)
	return nil
}
