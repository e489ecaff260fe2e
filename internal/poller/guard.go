package poller

import (
	"context"
	"fmt"
	"slices"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// DeleteGuard holds the deletions of a complete scan that would announce
// more than Share of a company's stored documents deleted at once (and at
// least Min of them): that is what a lost scope or a FIC bug looks like (a
// 200 with an empty list and 404s), not a person at work. Held deletions
// raise an alert and wait for Scans more complete scans that agree, or for
// an operator's confirmation (DeletionHold.Confirmed, set by `poller deletions
// confirm`; the next complete scan then announces what it confirms again).
type DeleteGuard struct {
	Share float64 // default 0.2; negative disables the guard
	Min   int     // default 3
	Scans int     // agreeing scans that release a hold; 0: only an operator does
}

func (g DeleteGuard) share() float64 {
	if g.Share == 0 {
		return 0.2
	}
	return g.Share
}

func (g DeleteGuard) min() int {
	if g.Min <= 0 {
		return 3
	}
	return g.Min
}

// Alert is what the poller's sanity checks report for a person to look at.
type Alert struct {
	Kind      string // "deletions_held", "foreign_document"
	CompanyID int64
	Documents []int64
	Detail    string
}

func (p *Poller) alert(ctx context.Context, a Alert) {
	p.log().Error("ops alert: "+a.Detail, "kind", a.Kind, "company_id", a.CompanyID, "documents", len(a.Documents))
	if p.OnAlert != nil {
		p.OnAlert(ctx, a)
	}
}

// guardDeletions decides which of a complete scan's confirmed deletions
// are announced now; the others are held (see DeleteGuard). stored is the
// number of documents the company had when the scan started.
func (p *Poller) guardDeletions(ctx context.Context, cid int64, confirmed []int64, stored int) ([]int64, error) {
	if p.Holds == nil || p.DeleteGuard.share() < 0 {
		return confirmed, nil
	}
	hold, rev, err := p.Holds.Get(ctx, cid)
	if err != nil {
		return nil, err
	}
	var release []int64
	fresh := confirmed
	if rev > 0 {
		agree := intersect(hold.IDs, confirmed)
		fresh = slices.DeleteFunc(slices.Clone(confirmed), func(id int64) bool { _, ok := slices.BinarySearch(hold.IDs, id); return ok })
		if hold.Confirmed || (p.DeleteGuard.Scans > 0 && hold.Agreeing+1 >= p.DeleteGuard.Scans) {
			release = agree
			hold = rcv.DeletionHold{}
		} else {
			hold.IDs, hold.Agreeing = agree, hold.Agreeing+1
		}
	}
	if len(fresh) >= p.DeleteGuard.min() && float64(len(fresh)) > p.DeleteGuard.share()*float64(stored) {
		hold.IDs = slices.Compact(slices.Sorted(slices.Values(append(hold.IDs, fresh...))))
		hold.Agreeing, hold.Stored, hold.HeldAt, hold.Confirmed = 0, stored, p.now(), false
		p.alert(ctx, Alert{Kind: "deletions_held", CompanyID: cid, Documents: hold.IDs,
			Detail: fmt.Sprintf("a scan would delete %d of %d documents; deletions held until confirmed (poller deletions confirm -company %d) or a later scan agrees", len(hold.IDs), stored, cid)})
	} else {
		release = append(release, fresh...)
	}
	switch {
	case len(hold.IDs) > 0:
		if _, err := p.Holds.Put(ctx, cid, hold, rev); err != nil {
			return nil, err
		}
	case rev > 0:
		if err := p.Holds.Delete(ctx, cid, rev); err != nil {
			return nil, err
		}
	}
	slices.Sort(release)
	return release, nil
}

// intersect returns the ids of sorted a that are in b.
func intersect(a, b []int64) []int64 {
	var out []int64
	for _, id := range b {
		if _, ok := slices.BinarySearch(a, id); ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
