package ficsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type ctxKey struct{}

// authInfo is who a request authenticated as.
type authInfo struct {
	token  string
	manual bool
	scopes map[string]bool
}

func authFrom(r *http.Request) *authInfo {
	a, _ := r.Context().Value(ctxKey{}).(*authInfo)
	if a == nil {
		return &authInfo{}
	}
	return a
}

// canAccess: the manual token and every OAuth token reach every company
// (the sandbox's single user owns them all).
func (a *authInfo) canAccess(int64) bool { return a.token != "" }

// hasScope: ":a" implies ":r".
func (a *authInfo) hasScope(scope string) bool {
	if a.manual {
		return true
	}
	if a.scopes[scope] {
		return true
	}
	if base, ok := strings.CutSuffix(scope, ":r"); ok {
		return a.scopes[base+":a"]
	}
	return false
}

func (s *Server) authenticate(r *http.Request) (*authInfo, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, false
	}
	if tok == s.cfg.Token {
		return &authInfo{token: tok, manual: true}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.oauth.access[tok]
	if !ok || !s.nowLocked().Before(at.expires) {
		return nil, false
	}
	return &authInfo{token: tok, scopes: at.scopes}, true
}

// apiMiddleware applies, in FIC's order: authentication (401), company
// access and scopes (403), quotas (429 short-term, 403 + Retry-After
// long-term, RateLimit-* headers), request counting, then injected faults.
func (s *Server) apiMiddleware(endpoint string, scope scopeFunc, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, ok := s.authenticate(r)
		if !ok {
			s.unauthorized(w, r)
			return
		}
		var cid int64
		if r.PathValue("cid") != "" {
			id, ok := pathInt(r, "cid")
			s.mu.Lock()
			_, exists := s.comps[id]
			s.mu.Unlock()
			if !ok || !exists || !auth.canAccess(id) {
				forbidden(w, "You do not have access to this company.")
				return
			}
			cid = id
		}
		if scope != nil {
			need := scope(r)
			okScope := len(need) == 0
			for _, sc := range need {
				if auth.hasScope(sc) {
					okScope = true
				}
			}
			if !okScope {
				forbidden(w, "The access token does not have the required scope: "+strings.Join(need, " or "))
				return
			}
		}
		s.count(cid, endpoint)
		if cid != 0 {
			if !s.consumeQuota(w, cid) {
				return
			}
		}
		if s.injectFault(w, r) {
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, auth)))
	})
}

func (s *Server) count(cid int64, endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stats[cid]
	if m == nil {
		m = map[string]int{}
		s.stats[cid] = m
	}
	m[endpoint]++
}

// Faults are injected into FIC API responses (not OAuth, not /_sim/).
// Ratios are probabilities in [0,1] drawn from the seeded generator.
type Faults struct {
	LatencyMS      int     `json:"latency_ms"`
	ErrorRatio     float64 `json:"error_ratio"`     // 500/502/503
	RateLimitRatio float64 `json:"ratelimit_ratio"` // 429 + Retry-After: 1
	DropRatio      float64 `json:"drop_ratio"`      // connection closed without a response
	MalformedRatio float64 `json:"malformed_ratio"` // 200 with invalid JSON
	TruncateRatio  float64 `json:"truncate_ratio"`  // 200 whose body stops half way
	// DuplicateWebhookRatio delivers a webhook twice (at-least-once).
	DuplicateWebhookRatio float64 `json:"duplicate_webhook_ratio"`
}

func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rnd.Float64() < p
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// injectFault handles the faults that replace the response entirely.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.currentFaults()
	if f.LatencyMS > 0 {
		select {
		case <-time.After(time.Duration(f.LatencyMS) * time.Millisecond):
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case s.roll(f.DropRatio):
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case s.roll(f.RateLimitRatio):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "", "Too Many Attempts.")
		return true
	case s.roll(f.ErrorRatio):
		codes := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
		s.mu.Lock()
		c := codes[s.rnd.IntN(len(codes))]
		s.mu.Unlock()
		writeError(w, c, "", "Internal Server Error")
		return true
	}
	return false
}

// writeAPI writes a 2xx API body, corrupting it when a body fault fires.
func (s *Server) writeAPI(w http.ResponseWriter, _ *http.Request, v any) {
	s.writeAPIBody(w, [][]byte{encodeJSON(v)})
}

// writeAPIBody is writeAPI for a body already encoded, in parts (see
// withData) written one after the other: a page's cached documents are not
// copied into a body of their own first.
func (s *Server) writeAPIBody(w http.ResponseWriter, parts [][]byte) {
	if s.filesURL.Load() != nil { // only then is the lock taken: not on every response
		s.mu.Lock()
		for i := range parts {
			parts[i] = s.absoluteFileURLs(parts[i])
		}
		s.mu.Unlock()
	}
	f := s.currentFaults()
	switch {
	case s.roll(f.MalformedRatio):
		b := string(bytes.Join(parts, nil))
		// Valid JSON framing, wrong types inside: an amount that is not a number.
		bad := strings.Replace(b, `"amount_gross":`, `"amount_gross":"12,50 EUR","x":`, 1)
		if bad == b {
			bad = b[:len(b)/2] + "}]"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(bad))
	case s.roll(f.TruncateRatio):
		b := bytes.Join(parts, nil)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // close the connection mid-body
	default:
		n := 1
		for _, p := range parts {
			n += len(p)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(http.StatusOK)
		for _, p := range parts {
			_, _ = w.Write(p)
		}
		_, _ = w.Write([]byte("\n"))
	}
}

// withData returns, in parts, the JSON object of rest with "data" set to
// the encoded items (an array when array is true, else the single item).
// The items — documents from their cached rendering — are neither copied nor
// encoded (nor validated) again.
func withData(rest map[string]any, items []json.RawMessage, array bool) [][]byte {
	parts := make([][]byte, 0, 2*len(items)+4)
	parts = append(parts, []byte(`{"data":`))
	if array {
		parts = append(parts, []byte("["))
		for i, it := range items {
			if i > 0 {
				parts = append(parts, []byte(","))
			}
			parts = append(parts, it)
		}
		parts = append(parts, []byte("]"))
	} else {
		parts = append(parts, items[0])
	}
	if len(rest) == 0 {
		return append(parts, []byte("}"))
	}
	head := encodeJSON(rest) // {"k":v,...}
	return append(parts, []byte(","), head[1:])
}

// forbidden answers a permission 403 as the spec declares every error
// response: with a Retry-After (so that a client cannot take Retry-After
// alone for a quota).
func forbidden(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "60")
	writeError(w, http.StatusForbidden, "NO_PERMISSION", msg)
}

// unauthorized answers a request without a valid token. FIC's REST routes
// answer {"error":{"message":"Unauthorized."}} (fattureincloud-csharp-sdk
// #103), but a token that is present and refused (expired, revoked) reaches
// the OAuth layer, whose body is OAuth-shaped: {"error":"invalid_token",
// "error_description":…}, error a string, not an object. Clients that decode
// only the first shape lose the reason; the sandbox sends both unless
// Lenient.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok != "" && !s.cfg.Lenient {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error":             "invalid_token",
			"error_description": "The access token provided is expired, revoked, malformed, or invalid for other reasons.",
		})
		return
	}
	writeError(w, http.StatusUnauthorized, "", "Unauthorized.")
}
