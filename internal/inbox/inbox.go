// Package inbox receives Fatture in Cloud webhooks and stores them durably
// before answering: the HTTP handler answers FIC's verification handshake,
// verifies the ES256 JWT, checks that it belongs to this notification
// (jti = ce-id, sub = ce-subject), and publishes the ids to a JetStream
// work-queue stream with Nats-Msg-Id = the notification id. Only then does it
// reply 200. A consumer shared by the replicas then fetches each document.
//
// Replays and FIC's at-least-once redeliveries carry the same id, so the
// stream's duplicate window (longer than the JWT's 3-hour lifetime) drops
// them: a replayed request is acknowledged and publishes nothing; after the
// JWT expires it is refused.
package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/settle"
)

// StreamName is the webhook inbox stream.
const StreamName = "INCASSO_INBOX"

const subjectPrefix = "incasso.inbox."

// Notification is what the inbox stores per webhook.
type Notification struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CompanyID  int64     `json:"company_id"`
	IDs        []int64   `json:"ids"`
	Time       time.Time `json:"time"`
	ReceivedAt time.Time `json:"received_at"`
}

// Ensure creates or updates the inbox stream.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamName, Description: "FIC webhook notifications awaiting a fetch",
		Subjects: []string{subjectPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: max(1, replicas),
		Retention: jetstream.WorkQueuePolicy, Duplicates: 4 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("inbox: ensure stream: %w", err)
	}
	return nil
}

// Handler is the /webhooks/fic endpoint.
type Handler struct {
	JS       jetstream.JetStream
	Verifier *fic.Verifier
	Log      *slog.Logger
	Now      func() time.Time
	// Observe, if set, is told the outcome of each request
	// ("verified", "accepted", "duplicate", "refused", "invalid", "error")
	// and the notification's age (webhook lag).
	Observe func(outcome string, lag time.Duration)
}

func (h *Handler) observe(outcome string, lag time.Duration) {
	if h.Observe != nil {
		h.Observe(outcome, lag)
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	switch r.Method {
	case http.MethodGet:
		ch, ok := fic.Challenge(r)
		if !ok {
			http.Error(w, "missing verification challenge", http.StatusBadRequest)
			return
		}
		if _, err := h.Verifier.Verify(r.Context(), r.Header.Get("Authorization")); err != nil {
			h.Log.Warn("webhook verification refused", "error", err)
			h.observe("refused", 0)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.observe("verified", 0)
		fic.WriteChallenge(w, ch)
	case http.MethodPost:
		h.post(w, r, now())
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, now time.Time) {
	claims, err := h.Verifier.Verify(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		h.Log.Warn("webhook refused", "error", err, "remote", r.RemoteAddr)
		h.observe("refused", 0)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	n, err := fic.ParseNotification(r)
	if err != nil {
		h.Log.Warn("webhook payload invalid", "error", err)
		h.observe("invalid", 0)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if claims.ID != n.ID || claims.Subject != "company:"+strconv.FormatInt(n.CompanyID, 10) {
		h.Log.Warn("webhook refused: JWT does not belong to this notification", "event_id", n.ID)
		h.observe("refused", 0)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if n.Type == fic.EventWelcome {
		h.observe("accepted", 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	body, _ := json.Marshal(Notification{ID: n.ID, Type: n.Type, CompanyID: n.CompanyID, IDs: n.IDs, Time: n.Time, ReceivedAt: now})
	msg := &nats.Msg{Subject: subjectPrefix + strconv.FormatInt(n.CompanyID, 10), Data: body, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, n.ID)
	ack, err := h.JS.PublishMsg(r.Context(), msg)
	if err != nil {
		// Not stored: FIC retries on 5xx, so nothing is lost.
		h.Log.Error("webhook not stored", "event_id", n.ID, "company_id", n.CompanyID, "error", err)
		h.observe("error", 0)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	lag := time.Duration(0)
	if !n.Time.IsZero() {
		lag = now.Sub(n.Time)
	}
	w.Header().Set("Content-Type", "application/json")
	if ack.Duplicate {
		h.observe("duplicate", lag)
		_, _ = w.Write([]byte(`{"status":"duplicate"}`))
		return
	}
	h.observe("accepted", lag)
	_, _ = w.Write([]byte(`{"status":"accepted"}`))
}

// Consume runs handler for every stored notification on a durable consumer
// shared by all replicas. Errors are retried with backoff (a quota error
// waits for the reset); after maxDeliver attempts the message is terminated.
func Consume(ctx context.Context, js jetstream.JetStream, handler func(context.Context, Notification) error, retryAfter func(error) (time.Duration, bool), log *slog.Logger) (jetstream.ConsumeContext, error) {
	const maxDeliver = 50
	var cons jetstream.Consumer
	err := natsrv.Retry(ctx, func(ctx context.Context) error {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
			Durable: "poller-inbox", FilterSubject: subjectPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 2 * time.Minute, MaxDeliver: maxDeliver, MaxAckPending: 256,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: consumer: %w", err)
	}
	pol := settle.Policy{MaxDeliver: maxDeliver, Log: log, Backoff: func(n uint64, err error) time.Duration {
		if d, ok := retryAfter(err); ok {
			return d
		}
		return time.Duration(n*n) * time.Second
	}}
	return cons.Consume(func(m jetstream.Msg) {
		var n Notification
		if err := json.Unmarshal(m.Data(), &n); err != nil || n.CompanyID <= 0 {
			pol.Settle(ctx, m, fmt.Errorf("%w: unreadable inbox message: %v", settle.ErrPermanent, err))
			return
		}
		pol.Settle(ctx, m, handler(ctx, n), "event_id", n.ID, "company_id", n.CompanyID)
	})
}
