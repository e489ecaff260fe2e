package fic

import (
	"context"
	"time"
)

// SharedBudget is one request budget per company shared by every Incasso
// process that talks to FIC (poller replicas, dunning): FIC counts the
// short-term and hourly quotas per company (and app), not per process, so
// each process limiting itself would let N processes send N times the
// limit. kvstore.QuotaBudget implements it over a JetStream KV bucket.
//
// Reserve grants up to n requests for the company at now, counted against
// every process's; it also takes this process's latest reading of FIC's
// RateLimit-* headers (seen), so that requests FIC counted and Incasso did
// not (the web app, another integration) shrink what is left for everyone.
// granted 0 means "not now": retryAt says when to ask again. pausedUntil,
// when in the future, means FIC answered quota exhausted to some process.
type SharedBudget interface {
	Reserve(ctx context.Context, companyID int64, n int, now time.Time, seen Quota) (granted int, retryAt, pausedUntil time.Time, err error)
	// Pause tells every process that FIC paused the company until t.
	Pause(ctx context.Context, companyID int64, until time.Time) error
}

// SharedReserveBlock is the most requests a process reserves at once: one
// replicated write per block, not per request. A process starts with
// blocks of 1 and doubles while it spends whole blocks quickly (a scan), so
// sporadic requests (a webhook's GET) do not hold budget they will not use.
// Reserved requests not sent within ReservationLife are given up (they were
// counted when reserved, so spending them later could overrun a window).
const SharedReserveBlock = 10

// ReservationLife bounds how long reserved requests stay usable.
const ReservationLife = 20 * time.Second

// WithShared makes the tracker reserve every request from b as well as
// from its own limiters; onError is told when b cannot be reached (the
// request then goes by this process's limiters alone: a NATS outage must
// not stop FIC traffic that the local limits already bound).
func (qs *Quotas) WithShared(b SharedBudget, onError func(companyID int64, err error)) *Quotas {
	qs.shared, qs.sharedErr = b, onError
	return qs
}

// reserveShared takes one request from the company's reservation, asking
// the shared budget for a block when it is empty. Called without qs.mu.
func (qs *Quotas) reserveShared(ctx context.Context, companyID int64, c *companyQuota) error {
	for {
		now := qs.now()
		qs.mu.Lock()
		if c.reserved > 0 && now.Before(c.reservedUntil) {
			c.reserved--
			qs.mu.Unlock()
			return nil
		}
		seen := c.q
		if c.reserved == 0 && !c.reservedAt.IsZero() && now.Sub(c.reservedAt) < ReservationLife {
			c.block = min(max(1, c.block*2), SharedReserveBlock) // the last block went quickly
		} else {
			c.block = 1
		}
		block := c.block
		qs.mu.Unlock()
		granted, retryAt, paused, err := qs.shared.Reserve(ctx, companyID, block, now, seen)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if qs.sharedErr != nil {
				qs.sharedErr(companyID, err)
			}
			return nil
		}
		if paused.After(now) {
			qs.pause(companyID, paused)
			return &QuotaError{
				APIError:  &APIError{Status: 403, Message: "paused: another Incasso process found the quota exhausted", RetryAfter: paused.Sub(now), kind: ErrQuotaExhausted},
				CompanyID: companyID, ResetAt: paused,
			}
		}
		if granted > 0 {
			qs.mu.Lock()
			c.reserved, c.reservedAt, c.reservedUntil = granted-1, now, now.Add(ReservationLife)
			qs.mu.Unlock()
			return nil
		}
		wait := retryAt.Sub(now)
		if wait <= 0 {
			wait = 100 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
