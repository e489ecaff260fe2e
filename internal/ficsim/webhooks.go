package ficsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type subscription struct {
	ID         string
	Sink       string
	Verified   bool
	Types      []string
	Mapping    string // binary | structured
	Method     string // header | query
	Attempts   int    // verification attempts
	FirstError time.Time
}

func (sub *subscription) render() map[string]any {
	return map[string]any{
		"id": sub.ID, "sink": sub.Sink, "verified": sub.Verified, "types": sub.Types,
		"config": map[string]any{"mapping": sub.Mapping}, "verification_method": sub.Method,
	}
}

// Delivery is one webhook delivery attempt, recorded for tests and demos.
type Delivery struct {
	Subscription string    `json:"subscription"`
	CompanyID    int64     `json:"company_id"`
	EventID      string    `json:"event_id"`
	Type         string    `json:"type"`
	IDs          []int64   `json:"ids"`
	Attempt      int       `json:"attempt"`
	Status       int       `json:"status"` // 0: network error
	At           time.Time `json:"at"`
}

type webhooks struct {
	s      *Server
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seq    int
	log    []Delivery
	queues map[string]chan notification // per subscription, FIFO
}

type notification struct {
	cid int64
	sub string
	typ string
	ids []int64
	id  string
	at  time.Time
	dup bool
}

func newWebhooks(s *Server) *webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	return &webhooks{s: s, ctx: ctx, cancel: cancel, queues: map[string]chan notification{},
		client: &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.cfg.WebhookRootCAs, MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // 3xx is a non-retryable failure, not followed
			}}}
}

func (wh *webhooks) close() {
	wh.cancel()
	wh.wg.Wait()
}

// Deliveries returns the delivery log.
func (s *Server) Deliveries() []Delivery {
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	return slices.Clone(s.wh.log)
}

func (wh *webhooks) record(d Delivery) {
	wh.mu.Lock()
	wh.log = append(wh.log, d)
	if len(wh.log) > 100000 {
		wh.log = wh.log[len(wh.log)-50000:]
	}
	wh.mu.Unlock()
}

func (wh *webhooks) nextEventID() string {
	wh.mu.Lock()
	wh.seq++
	n := wh.seq
	wh.mu.Unlock()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%d:%s-%s-%s-%s-%s", n, h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// sign makes the Authorization JWT FIC attaches to every webhook request.
// Its iat/exp are wall-clock time even when the sandbox clock is shifted
// (the shift is for business data; receivers check JWTs against real time).
func (wh *webhooks) sign(jti, subject, sink string, _ time.Time) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": wh.s.cfg.Issuer, "sub": subject, "aud": []string{sink},
		"iat": now.Unix(), "exp": now.Add(3 * time.Hour).Unix(), "aid": wh.s.cfg.AppID,
	}
	if jti != "" {
		// FIC defines jti as the message's CloudEvents id: a verification
		// request has none, so its token carries none (what FIC really
		// puts there is not documented; the receiver must cope).
		claims["jti"] = jti
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(wh.s.cfg.WebhookKey)
	if err != nil {
		panic(err) // a valid P-256 key cannot fail to sign
	}
	return tok
}

// docEventType maps a document type and action to FIC's webhook type.
func docEventType(docType, action string) string {
	fam := "invoices"
	if docType == "credit_note" {
		fam = "credit_notes"
	}
	return "it.fattureincloud.webhooks.issued_documents." + fam + "." + action
}

// notify enqueues a change for every verified subscription of the company
// that covers the type. Called with s.mu held.
func (s *Server) notifyLocked(c *company, docType, action string, ids ...int64) {
	s.notifyTypeLocked(c, docEventType(docType, action), ids...)
}

// notifyTypeLocked enqueues a notification of type typ. Called with s.mu held.
func (s *Server) notifyTypeLocked(c *company, typ string, ids ...int64) {
	for _, sub := range c.subs {
		if !sub.Verified || !slices.Contains(sub.Types, typ) {
			continue
		}
		n := notification{cid: c.ID, sub: sub.ID, typ: typ, ids: ids, id: s.wh.nextEventID(), at: s.nowLocked()}
		s.wh.enqueue(n)
		if s.faults.DuplicateWebhookRatio > 0 && s.rnd.Float64() < s.faults.DuplicateWebhookRatio {
			n.dup = true
			s.wh.enqueue(n)
		}
	}
}

func (wh *webhooks) enqueue(n notification) {
	wh.mu.Lock()
	q, ok := wh.queues[n.sub]
	if !ok {
		q = make(chan notification, 65536)
		wh.queues[n.sub] = q
		wh.wg.Add(1)
		go wh.worker(q)
	}
	wh.mu.Unlock()
	select {
	case q <- n:
	default: // queue full: FIC would drop too; record it
		wh.record(Delivery{Subscription: n.sub, CompanyID: n.cid, EventID: n.id, Type: n.typ, IDs: n.ids, Status: -1, At: time.Now()})
	}
}

func (wh *webhooks) worker(q chan notification) {
	defer wh.wg.Done()
	for {
		select {
		case <-wh.ctx.Done():
			return
		case n := <-q:
			wh.deliver(n)
		}
	}
}

// deliver POSTs one notification: 4 attempts in total on 5xx and network
// errors at doubling intervals; 410 deletes the subscription; anything else
// non-2xx drops the notification.
func (wh *webhooks) deliver(n notification) {
	s := wh.s
	wait := s.cfg.WebhookRetryBase
	for attempt := 1; attempt <= 4; attempt++ {
		s.mu.Lock()
		c := s.comps[n.cid]
		sub, ok := c.subs[n.sub]
		var sink, mapping string
		if ok {
			sink, mapping = sub.Sink, sub.Mapping
		}
		now := s.nowLocked()
		s.mu.Unlock()
		if !ok {
			return
		}
		status := wh.post(n, sink, mapping, now)
		wh.record(Delivery{Subscription: n.sub, CompanyID: n.cid, EventID: n.id, Type: n.typ, IDs: n.ids, Attempt: attempt, Status: status, At: time.Now()})
		switch {
		case status >= 200 && status < 300 || status == 102:
			s.mu.Lock()
			if sub, ok := c.subs[n.sub]; ok {
				sub.FirstError = time.Time{}
			}
			s.mu.Unlock()
			return
		case status == http.StatusGone:
			s.mu.Lock()
			delete(c.subs, n.sub)
			s.mu.Unlock()
			return
		case status == 0 || status >= 500:
			if attempt == 4 {
				wh.markError(c, n.sub)
				return
			}
			select {
			case <-time.After(wait):
			case <-wh.ctx.Done():
				return
			}
			wait *= 2
		default:
			wh.markError(c, n.sub)
			return
		}
	}
}

func (wh *webhooks) markError(c *company, sid string) {
	s := wh.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := c.subs[sid]
	if !ok {
		return
	}
	now := s.nowLocked()
	if sub.FirstError.IsZero() {
		sub.FirstError = now
	} else if now.After(sub.FirstError.Add(10 * 24 * time.Hour)) {
		delete(c.subs, sid) // expired: FIC deletes at the first error after 10 days
	}
}

func (wh *webhooks) post(n notification, sink, mapping string, now time.Time) int {
	subject := fmt.Sprintf("company:%d", n.cid)
	data := map[string]any{"ids": n.ids}
	var body []byte
	hdr := http.Header{}
	if mapping == "structured" {
		body, _ = json.Marshal(map[string]any{
			"specversion": "1.0", "id": n.id, "source": wh.s.cfg.Issuer, "type": n.typ,
			"time": n.at.UTC().Format(time.RFC3339), "subject": subject, "datacontenttype": "application/json", "data": data,
		})
		hdr.Set("Content-Type", "application/cloudevents+json")
	} else {
		body, _ = json.Marshal(map[string]any{"data": data})
		hdr.Set("Content-Type", "application/json")
		hdr.Set("ce-id", n.id)
		hdr.Set("ce-source", wh.s.cfg.Issuer)
		hdr.Set("ce-specversion", "1.0")
		hdr.Set("ce-type", n.typ)
		hdr.Set("ce-time", n.at.UTC().Format(time.RFC3339))
		hdr.Set("ce-subject", subject)
	}
	hdr.Set("Authorization", "Bearer "+wh.sign(n.id, subject, sink, now))
	hdr.Set("User-Agent", "FattureInCloud/API-WEBHOOK")
	req, err := http.NewRequestWithContext(wh.ctx, http.MethodPost, sink, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header = hdr
	req.Close = true // FIC sends Connection: close
	resp, err := wh.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode
}

// verify runs the handshake: GET the sink with a challenge; the sink must
// answer 200 {"verification": challenge}. On success the subscription is
// verified and receives the welcome event.
func (wh *webhooks) verify(cid int64, sid string) {
	s := wh.s
	s.mu.Lock()
	c := s.comps[cid]
	sub, ok := c.subs[sid]
	if !ok {
		s.mu.Unlock()
		return
	}
	sub.Attempts++
	sink, method := sub.Sink, sub.Method
	now := s.nowLocked()
	s.mu.Unlock()

	challenge := randToken("")
	target := sink
	if method == "query" {
		u, err := url.Parse(sink)
		if err != nil {
			return
		}
		q := u.Query()
		q.Set("x-fic-verification-challenge", challenge)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	req, err := http.NewRequestWithContext(wh.ctx, http.MethodGet, target, nil)
	if err != nil {
		return
	}
	if method != "query" {
		req.Header.Set("x-fic-verification-challenge", challenge)
	}
	req.Header.Set("Authorization", "Bearer "+wh.sign("", fmt.Sprintf("company:%d", cid), sink, now))
	req.Header.Set("User-Agent", "FattureInCloud/API-WEBHOOK")
	resp, err := wh.client.Do(req)
	ok = false
	if err == nil {
		var body struct {
			Verification string `json:"verification"`
		}
		ok = resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body) == nil && body.Verification == challenge
		resp.Body.Close()
	}
	wh.record(Delivery{Subscription: sid, CompanyID: cid, Type: "verification", Status: map[bool]int{true: 200, false: 0}[ok], At: time.Now()})
	if !ok {
		return
	}
	s.mu.Lock()
	sub, exists := c.subs[sid]
	if exists {
		sub.Verified = true
		wh.enqueue(notification{cid: cid, sub: sid, typ: "it.fattureincloud.webhooks.subscriptions.welcome", ids: nil, id: wh.nextEventID(), at: s.nowLocked()})
	}
	s.mu.Unlock()
}
