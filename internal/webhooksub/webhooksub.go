// Package webhooksub keeps a company's FIC webhook subscription working:
// FIC allows one subscription per app, type and company, verifies it once
// and deletes it after ten days of failed deliveries, so creating it once
// at start-up is not enough. Reconcile, run at start and periodically,
// creates the subscription when it is missing (never made, or deleted by
// FIC), moves it to the current sink and types with a PUT when the public
// URL or the types Incasso needs changed, and asks FIC to verify it again
// while it is unverified (at most MaxVerifyTries times, one per
// VerifyEvery, as FIC allows).
package webhooksub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
)

// FIC's limits on verification requests.
const (
	MaxVerifyTries = 5
	VerifyEvery    = 10 * time.Minute
)

// API is the part of the FIC client Reconcile uses.
type API interface {
	ListSubscriptions(ctx context.Context, cid int64) ([]fic.Subscription, error)
	CreateSubscription(ctx context.Context, cid int64, s fic.Subscription) (fic.Subscription, fic.Warnings, error)
	ModifySubscription(ctx context.Context, cid int64, s fic.Subscription) (fic.Subscription, fic.Warnings, error)
	VerifySubscription(ctx context.Context, cid int64, id, method string) error
}

// State of a company's subscription after a reconciliation.
type State string

// States.
const (
	Verified   State = "verified"
	Unverified State = "unverified" // verification asked, not confirmed yet
	GaveUp     State = "unverified_gave_up"
	Failed     State = "error" // FIC could not be asked
)

// Result is what Reconcile found and did.
type Result struct {
	State  State
	ID     string
	Action string // "", "created", "moved", "verify_requested"
	Err    error
}

// Reconciler remembers the verification requests it made per
// subscription (FIC allows MaxVerifyTries).
type Reconciler struct {
	Types []string // default fic.SubscribedEventTypes
	Now   func() time.Time

	mu      sync.Mutex
	tries   map[string][]time.Time
	dropped map[int64][]string // per company, types FIC refused (e.g. a scope the token lacks)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ours reports whether a subscription is the one of these types (FIC
// allows one per app, type and company: any overlap is ours).
func ours(s fic.Subscription, types []string) bool {
	for _, t := range s.Types {
		if slices.Contains(types, t) {
			return true
		}
	}
	return false
}

// Reconcile brings company cid's subscription to sink.
func (r *Reconciler) Reconcile(ctx context.Context, api API, cid int64, sink string) Result {
	types := r.Types
	if len(types) == 0 {
		types = fic.SubscribedEventTypes
	}
	r.mu.Lock()
	if d := r.dropped[cid]; len(d) > 0 {
		// FIC dropped these on the last create or move (it answers with a
		// warning): asking again at every check would PUT forever.
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return slices.Contains(d, t) })
	}
	r.mu.Unlock()
	subs, err := api.ListSubscriptions(ctx, cid)
	if err != nil {
		return Result{State: Failed, Err: fmt.Errorf("list subscriptions: %w", err)}
	}
	i := slices.IndexFunc(subs, func(s fic.Subscription) bool { return ours(s, types) })
	if i < 0 {
		s, _, err := api.CreateSubscription(ctx, cid, fic.Subscription{Sink: sink, Types: types})
		if err != nil {
			return Result{State: Failed, Err: fmt.Errorf("create subscription: %w", err)}
		}
		r.noteDropped(cid, types, s.Types)
		return Result{State: stateOf(s), ID: s.ID, Action: "created"}
	}
	sub := subs[i]
	if sub.Sink != sink || !sameTypes(sub.Types, types) {
		// The public URL changed, or an earlier version subscribed to
		// other types: one PUT (FIC re-verifies a moved sink).
		moved := sub
		moved.Sink, moved.Types = sink, types
		s, _, err := api.ModifySubscription(ctx, cid, moved)
		if err != nil {
			return Result{State: Failed, ID: sub.ID, Err: fmt.Errorf("move subscription %s to %s: %w", sub.ID, sink, err)}
		}
		r.forget(sub.ID)
		r.noteDropped(cid, types, s.Types)
		return Result{State: stateOf(s), ID: s.ID, Action: "moved"}
	}
	if sub.Verified {
		r.forget(sub.ID)
		return Result{State: Verified, ID: sub.ID}
	}
	switch r.mayVerify(sub.ID) {
	case tooMany:
		return Result{State: GaveUp, ID: sub.ID, Err: fmt.Errorf("subscription %s still unverified after %d verification requests: check that %s answers FIC's challenge", sub.ID, MaxVerifyTries, sink)}
	case tooSoon:
		return Result{State: Unverified, ID: sub.ID}
	}
	if err := api.VerifySubscription(ctx, cid, sub.ID, sub.VerificationMethod); err != nil {
		return Result{State: Unverified, ID: sub.ID, Action: "verify_requested", Err: fmt.Errorf("verify subscription %s: %w", sub.ID, err)}
	}
	return Result{State: Unverified, ID: sub.ID, Action: "verify_requested"}
}

func stateOf(s fic.Subscription) State {
	if s.Verified {
		return Verified
	}
	return Unverified
}

type verdict int

const (
	mayAsk verdict = iota
	tooSoon
	tooMany
)

// mayVerify records a verification request if FIC's limits allow one now.
func (r *Reconciler) mayVerify(id string) verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tries == nil {
		r.tries = map[string][]time.Time{}
	}
	t := r.tries[id]
	now := r.now()
	switch {
	case len(t) >= MaxVerifyTries:
		return tooMany
	case len(t) > 0 && now.Sub(t[len(t)-1]) < VerifyEvery:
		return tooSoon
	}
	r.tries[id] = append(t, now)
	return mayAsk
}

// noteDropped remembers which asked types FIC's answer left out.
func (r *Reconciler) noteDropped(cid int64, asked, got []string) {
	if len(got) == 0 {
		return // an answer without types: nothing learned
	}
	var d []string
	for _, t := range asked {
		if !slices.Contains(got, t) {
			d = append(d, t)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped == nil {
		r.dropped = map[int64][]string{}
	}
	r.dropped[cid] = append(r.dropped[cid], d...)
}

func (r *Reconciler) forget(id string) {
	r.mu.Lock()
	delete(r.tries, id)
	r.mu.Unlock()
}

func sameTypes(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, t := range b {
		if !slices.Contains(a, t) {
			return false
		}
	}
	return true
}
