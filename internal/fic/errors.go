package fic

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on. Every error returned by the client wraps
// at most one of them; test with errors.Is.
var (
	// ErrUnauthorized: the token is missing, invalid, expired or revoked and a
	// refresh did not help (HTTP 401). Re-authorize the connection.
	ErrUnauthorized = errors.New("fic: unauthorized")
	// ErrForbidden: a permanent 403 (missing scope or permission, expired
	// licence). Retrying will not help.
	ErrForbidden = errors.New("fic: forbidden")
	// ErrQuotaExhausted: FIC's hourly or monthly quota is used up (403 with
	// Retry-After). The *QuotaError carries the reset time.
	ErrQuotaExhausted = errors.New("fic: quota exhausted")
	// ErrRateLimited: the short-term limit answered 429 and retries ran out.
	ErrRateLimited = errors.New("fic: rate limited")
	// ErrNotFound: the resource does not exist (HTTP 404).
	ErrNotFound = errors.New("fic: not found")
	// ErrInvalidRequest: FIC refused the request as invalid (400, 405, 409, 422).
	ErrInvalidRequest = errors.New("fic: invalid request")
	// ErrUnavailable: 5xx or network failures persisted through all retries.
	ErrUnavailable = errors.New("fic: unavailable")
	// ErrMalformed: FIC answered 2xx with a body Incasso cannot decode.
	ErrMalformed = errors.New("fic: malformed response")
	// ErrRefreshTokenInvalid: the refresh token was refused (revoked or
	// rotated away). The connection needs a new authorization.
	ErrRefreshTokenInvalid = errors.New("fic: refresh token invalid")
)

// APIError is a non-2xx answer from FIC. It carries what FIC said and where,
// never the request's token.
type APIError struct {
	Method     string
	Path       string // request path with query, e.g. /c/1/issued_documents?page=2
	Status     int
	Code       string // FIC error.code when present, e.g. NO_PERMISSION
	Message    string // FIC error.message or error_description
	RetryAfter time.Duration
	kind       error
}

func (e *APIError) Error() string {
	msg := e.Message
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	return fmt.Sprintf("fic: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, msg)
}

// Unwrap exposes the sentinel that classifies the error.
func (e *APIError) Unwrap() error { return e.kind }

// QuotaError is returned when FIC's long-term quota (hourly or monthly) is
// exhausted: HTTP 403 with Retry-After. It wraps ErrQuotaExhausted.
type QuotaError struct {
	*APIError
	CompanyID int64
	ResetAt   time.Time // when FIC said requests may resume
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%s (quota of company %d resets at %s)", e.APIError.Error(), e.CompanyID, e.ResetAt.UTC().Format(time.RFC3339))
}

// Unwrap exposes ErrQuotaExhausted.
func (e *QuotaError) Unwrap() error { return ErrQuotaExhausted }
