package pollerapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// deletions lists the deletions the guard holds (action "list") or
// confirms a company's (action "confirm"): the next complete scan of the
// company checks each held document against FIC once more and announces
// the deletions that are still true.
func deletions(ctx context.Context, cfg Config, action string, company int64, out io.Writer) error {
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-deletions"))
	if err != nil {
		return err
	}
	defer nc.Close()
	holds, err := kvstore.NewHolds(ctx, nc.JS, kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	switch action {
	case "", "list":
		all, err := holds.List(ctx)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			fmt.Fprintln(out, "no deletions held")
			return nil
		}
		cids := make([]int64, 0, len(all))
		for cid := range all {
			cids = append(cids, cid)
		}
		slices.Sort(cids)
		fmt.Fprintf(out, "%-12s %8s %8s %-17s %8s %s\n", "COMPANY", "HELD", "OF", "SINCE (ROME)", "AGREEING", "STATUS")
		for _, cid := range cids {
			h := all[cid]
			status := "waiting for confirmation"
			if h.Confirmed {
				status = "confirmed: the next scan announces them"
			}
			fmt.Fprintf(out, "%-12d %8d %8d %-17s %8d %s\n", cid, len(h.IDs), h.Stored, h.HeldAt.In(rcv.Rome).Format("02/01/2006 15:04"), h.Agreeing, status)
		}
		return nil
	case "confirm":
		if company <= 0 {
			return errors.New("deletions confirm: -company is required")
		}
		for range 8 {
			h, rev, err := holds.Get(ctx, company)
			if err != nil {
				return err
			}
			if rev == 0 {
				return fmt.Errorf("no deletions held for company %d", company)
			}
			h.Confirmed = true
			if _, err := holds.Put(ctx, company, h, rev); errors.Is(err, rcv.ErrConflict) {
				time.Sleep(50 * time.Millisecond)
				continue
			} else if err != nil {
				return err
			}
			fmt.Fprintf(out, "confirmed %d held deletion(s) of company %d: the next complete scan checks each against FIC and announces it\n", len(h.IDs), company)
			return nil
		}
		return fmt.Errorf("company %d: %w", company, rcv.ErrConflict)
	default:
		return fmt.Errorf("deletions: unknown action %q (want list or confirm)", action)
	}
}
