// Switching a company on safely: the approval queue for formal steps and
// catch-up cases, and shadow mode (everything computed and previewable,
// nothing sent).

package dunning

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// ModeStore keeps each company's mode as ops set it.
type ModeStore interface {
	// Get returns the company's mode ("" if never set).
	Get(ctx context.Context, cid int64) (ModeRecord, error)
	Put(ctx context.Context, cid int64, r ModeRecord) error
}

// ModeRecord is a company's mode and who set it.
type ModeRecord struct {
	Mode     string    `json:"mode"`
	Operator string    `json:"operator"`
	At       time.Time `json:"at"`
}

// Mode returns a company's mode: as ops set it, else the policy's.
func (e *Engine) Mode(ctx context.Context, cid int64) (string, error) { return e.mode(ctx, cid) }

// modeTTL is how long a company's mode is taken from memory before it is
// read again (a switch made by another replica shows within it; one made
// here at once).
const modeTTL = 10 * time.Second

type cachedMode struct {
	mode string
	at   time.Time
}

func (e *Engine) mode(ctx context.Context, cid int64) (string, error) {
	if e.Modes != nil {
		if v, ok := e.modes.Load(cid); ok && time.Since(v.(cachedMode).at) < modeTTL {
			return v.(cachedMode).mode, nil
		}
		r, err := e.Modes.Get(ctx, cid)
		if err != nil {
			return "", fmt.Errorf("dunning: mode of company %d: %w", cid, err)
		}
		m := r.Mode
		if m == "" {
			m = e.Policies.For(cid).Mode
		}
		e.modes.Store(cid, cachedMode{m, time.Now()})
		return m, nil
	}
	return e.Policies.For(cid).Mode, nil
}

// SetMode switches a company between live and shadow (audited in the
// mode record). Going live wakes every open case of the company, so that
// what was due in shadow is decided again (and, for formal steps, asked
// for approval) instead of waiting for a timer.
func (e *Engine) SetMode(ctx context.Context, cid int64, mode, operator string) (int, error) {
	if mode != policy.ModeLive && mode != policy.ModeShadow {
		return 0, fmt.Errorf("%w: mode %q: want live or shadow", ErrInvalid, mode)
	}
	if operator == "" {
		return 0, fmt.Errorf("%w: operator is required", ErrInvalid)
	}
	if e.Modes == nil {
		return 0, fmt.Errorf("%w: this deployment keeps no modes", ErrInvalid)
	}
	if err := e.Modes.Put(ctx, cid, ModeRecord{Mode: mode, Operator: operator, At: e.now()}); err != nil {
		return 0, err
	}
	e.modes.Store(cid, cachedMode{mode, time.Now()})
	e.log().Info("company mode set", "company_id", cid, "mode", mode, "operator", operator)
	if mode != policy.ModeLive {
		return 0, nil
	}
	cases, err := e.Cases.List(ctx, cid)
	if err != nil {
		return 0, err
	}
	woken := 0
	for _, c := range cases {
		if c.State == Closed {
			continue
		}
		if _, err := e.run(ctx, cid, c.InvoiceID, runOpts{}); err != nil {
			return woken, err
		}
		woken++
	}
	return woken, nil
}

// shadow records, once per stage, what would have been sent, and waits:
// the case is decided again when the company goes live.
func (e *Engine) shadow(ctx context.Context, c *Case, d Decision) error {
	if slices.Contains(c.Shadow, d.Send.Name) {
		return nil
	}
	_, err := e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
		if !exists || slices.Contains(x.Shadow, d.Send.Name) {
			return false, nil
		}
		x.Shadow, x.WakeAt = append(x.Shadow, d.Send.Name), time.Time{}
		return true, nil
	})
	if err != nil {
		return err
	}
	return e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "shadow", Stage: d.Send.Name,
		Reason: "shadow mode: computed, not sent"})
}

// requestApproval puts a case's due stage in the approval queue (once).
func (e *Engine) requestApproval(ctx context.Context, c *Case, d Decision) error {
	if c.Awaiting != nil && c.Awaiting.Stage == d.Send.Name {
		return nil
	}
	nc, err := e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
		if !exists || (x.Awaiting != nil && x.Awaiting.Stage == d.Send.Name) {
			return false, nil
		}
		x.Awaiting = &Approval{Stage: d.Send.Name, Index: d.Index, Since: e.now(), Reason: d.Reason}
		x.WakeAt = time.Time{}
		return true, nil
	})
	if err != nil || nc == nil {
		return err
	}
	e.log().Info("stage waits for approval", "company_id", c.CompanyID, "invoice_id", c.InvoiceID, "stage", d.Send.Name, "reason", d.Reason)
	return e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "approval_requested", Stage: d.Send.Name, Reason: d.Reason})
}

// Approvals is the approval queue: the cases whose due stage waits for an
// operator (cid 0: every company), oldest first.
func (e *Engine) Approvals(ctx context.Context, cid int64) ([]Case, error) {
	cases, err := e.Cases.List(ctx, cid)
	if err != nil {
		return nil, err
	}
	var out []Case
	for _, c := range cases {
		if c.Awaiting != nil && c.State != Closed {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Awaiting.Since.Before(out[j].Awaiting.Since) })
	return out, nil
}

// Decision of an operator on a queued stage.
const (
	Approve  = "approve"
	Reject   = "reject"
	Postpone = "postpone"
)

// Decide on a queued stage: approve (it is sent in the next send window,
// through the usual checks), reject (the stage is skipped; the case goes
// on with the next one) or postpone (the case pauses until a date, then
// asks again). Operator and reason are audited.
func (e *Engine) DecideApproval(ctx context.Context, cid, id int64, decision string, until rcv.Date, operator, reason string) (*Case, error) {
	if operator == "" {
		return nil, fmt.Errorf("%w: operator is required", ErrInvalid)
	}
	if decision == Postpone {
		if until.IsZero() || until.Before(rcv.DateIn(e.now(), rcv.Rome)) {
			return nil, fmt.Errorf("%w: postpone needs a date from today on", ErrInvalid)
		}
	} else if decision != Approve && decision != Reject {
		return nil, fmt.Errorf("%w: decision %q: want approve, reject or postpone", ErrInvalid, decision)
	}
	var stage string
	var from State
	c, err := e.update(ctx, cid, id, func(x *Case, exists bool) (bool, error) {
		if !exists {
			return false, ErrNoCase
		}
		if x.Awaiting == nil {
			return false, fmt.Errorf("%w: nothing waits for approval on this case", ErrInvalid)
		}
		stage, from = x.Awaiting.Stage, x.State
		switch decision {
		case Approve:
			x.Approved = append(x.Approved, stage)
		case Reject:
			if x.Awaiting.Index >= x.Stage {
				x.Stage = x.Awaiting.Index + 1
			}
		case Postpone:
			x.State, x.Until = Paused, until
		}
		x.Awaiting = nil
		x.WakeAt = e.now()
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.Audit.Append(ctx, cid, id, AuditEntry{At: e.now(), Action: "approval_" + decision, Stage: stage, Operator: operator, Reason: reason}); err != nil {
		return nil, err
	}
	if decision == Postpone {
		if err := e.transition(ctx, c, &Transition{From: from, To: Paused}, operator, "postponed: "+reason); err != nil {
			return nil, err
		}
	}
	if _, err := e.run(ctx, cid, id, runOpts{operator: operator, reason: reason}); err != nil {
		return c, err
	}
	nc, _, err := e.Cases.Get(ctx, cid, id)
	return &nc, err
}

// AwaitsFormalDecision returns the stage waiting for approval on the case
// when it is a formal step (a stage the policy puts behind approval: the
// notice, the hand-off), an admin's decision; "" when nothing waits or it
// is a catch-up reminder, an operator's. The ops API and the console ask.
func (e *Engine) AwaitsFormalDecision(ctx context.Context, cid, id int64) (string, error) {
	c, rev, err := e.Cases.Get(ctx, cid, id)
	if err != nil || rev == 0 || c.Awaiting == nil {
		return "", err
	}
	p := e.Policies.For(cid)
	if i := StageIndex(p, c.Awaiting.Stage); i >= 0 && p.Stages[i].Approval {
		return c.Awaiting.Stage, nil
	}
	return "", nil
}
