// Package inbox receives Fatture in Cloud webhooks and stores them durably
// before answering: the HTTP handler answers FIC's verification handshake,
// verifies the ES256 JWT, checks that it belongs to this notification
// (jti = ce-id, sub = ce-subject), and publishes the ids to a JetStream
// stream on incasso.webhooks.<company_id> with Nats-Msg-Id = the
// notification id. Only then does it reply 200.
//
// Routing by company: the stream keeps a notification while any consumer
// interested in its company has not acknowledged it (interest retention).
// A poller with a manual token consumes its own company's subject (durable
// poller-webhooks-<company_id>, shared by its replicas); pollers on the
// OAuth connection store consume every company (durable
// poller-webhooks-all) and acknowledge without work the notifications of
// companies they cannot serve, which reach whoever serves them through that
// poller's own consumer. No poller drops another's notification. A
// notification is acknowledged only once its documents are handled (see
// Queue).
//
// Replays and FIC's at-least-once redeliveries carry the same id, so the
// stream's duplicate window (longer than the JWT's 3-hour lifetime) drops
// them: a replayed request is acknowledged and publishes nothing; after the
// JWT expires it is refused.
package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/settle"
)

// StreamName is the webhook inbox stream.
const StreamName = "INCASSO_WEBHOOKS"

const subjectPrefix = "incasso.webhooks."

// legacyStream is the work-queue stream of earlier versions (one consumer
// shared by every poller, which dropped the notifications of companies it
// did not serve). Migrate moves what it still holds and deletes it.
const (
	legacyStream  = "INCASSO_INBOX"
	legacyPrefix  = "incasso.inbox."
	consumerIdle  = 7 * 24 * time.Hour // a durable nobody pulls from for this long is removed
	consumerWait  = time.Minute
	maxAckPending = 20000
)

// Subject is the subject of a company's notifications.
func Subject(cid int64) string { return subjectPrefix + strconv.FormatInt(cid, 10) }

// Notification is what the inbox stores per webhook.
type Notification struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CompanyID  int64     `json:"company_id"`
	IDs        []int64   `json:"ids"`
	Time       time.Time `json:"time"`
	ReceivedAt time.Time `json:"received_at"`
}

// Ensure creates or updates the inbox stream. After Subscribe, call
// Migrate to move what an earlier version's stream holds.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamName, Description: "FIC webhook notifications awaiting a fetch, by company",
		Subjects: []string{subjectPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: max(1, replicas),
		Retention: jetstream.InterestPolicy, Duplicates: 4 * time.Hour, MaxAge: 7 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("inbox: ensure stream: %w", err)
	}
	return nil
}

// Migrate re-publishes what the legacy stream holds (same message ids, so
// two pollers migrating at once store each notification once) and deletes
// it. Consumers must exist first, or interest retention drops the copies:
// callers run it after Subscribe.
func Migrate(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, legacyStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbox: legacy stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("inbox: legacy stream: %w", err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("inbox: read legacy notification %d: %w", seq, err)
		}
		out := &nats.Msg{Subject: subjectPrefix + strings.TrimPrefix(m.Subject, legacyPrefix), Header: m.Header, Data: m.Data}
		if _, err := js.PublishMsg(ctx, out); err != nil {
			return fmt.Errorf("inbox: move legacy notification %d: %w", seq, err)
		}
	}
	if err := js.DeleteStream(ctx, legacyStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("inbox: delete legacy stream: %w", err)
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
	// Contacts, if set, drops the cached contacts of the clients an
	// entities.clients.update names (package contacts), so the next
	// reminder reads them again from FIC.
	Contacts interface {
		Invalidate(ctx context.Context, cid int64, clientIDs ...int64) error
	}
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
		if _, err := h.Verifier.VerifyHandshake(r.Context(), r.Header.Get("Authorization")); err != nil {
			h.Log.Warn("webhook subscription verification refused: FIC will not send to this sink until it is verified", "error", err)
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
	if n.Type == fic.EventClientUpdate && h.Contacts != nil {
		if err := h.Contacts.Invalidate(r.Context(), n.CompanyID, n.IDs...); err != nil {
			// Not applied: FIC retries on 5xx.
			h.Log.Error("client update not applied", "event_id", n.ID, "company_id", n.CompanyID, "error", err)
			h.observe("error", 0)
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		h.observe("accepted", 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	if n.Type == fic.EventWelcome || !slices.Contains(fic.ReceivablesEventTypes, n.Type) {
		// Not about issued documents (the welcome, or a type subscribed for
		// something else): its ids are not documents' and must never be
		// fetched as such.
		h.observe("accepted", 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	body, _ := json.Marshal(Notification{ID: n.ID, Type: n.Type, CompanyID: n.CompanyID, IDs: n.IDs, Time: n.Time, ReceivedAt: now})
	msg := &nats.Msg{Subject: Subject(n.CompanyID), Data: body, Header: nats.Header{}}
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

// Scope is what a poller serves: the companies of its manual token, or
// (Companies empty) every company of the OAuth connection store, of which
// Serves tells the ones it can fetch.
type Scope struct {
	Companies []int64
	Serves    func(ctx context.Context, cid int64) bool
}

// Subscribe feeds q with the notifications of scope from durable consumers
// shared by the replicas of the same scope. Unreadable messages are
// terminated; notifications of companies the scope cannot serve are
// acknowledged without work (see the package doc).
func Subscribe(ctx context.Context, js jetstream.JetStream, scope Scope, q *Queue, log *slog.Logger) ([]jetstream.ConsumeContext, error) {
	type spec struct{ durable, filter string }
	var specs []spec
	if len(scope.Companies) == 0 {
		specs = append(specs, spec{"poller-webhooks-all", subjectPrefix + ">"})
	}
	for _, cid := range scope.Companies {
		specs = append(specs, spec{"poller-webhooks-" + strconv.FormatInt(cid, 10), Subject(cid)})
	}
	var ccs []jetstream.ConsumeContext
	for _, sp := range specs {
		c := settle.Consumer{Stream: StreamName, Policy: settle.Policy{Log: log},
			Config: jetstream.ConsumerConfig{Durable: sp.durable, FilterSubject: sp.filter, AckPolicy: jetstream.AckExplicitPolicy,
				AckWait: consumerWait, MaxAckPending: maxAckPending, InactiveThreshold: consumerIdle}}
		cc, err := c.Start(ctx, ctx, js, natsrv.Retry, func(_ context.Context, m jetstream.Msg) error {
			var n Notification
			if err := json.Unmarshal(m.Data(), &n); err != nil || n.CompanyID <= 0 {
				return fmt.Errorf("%w: unreadable webhook notification (%v)", settle.ErrPermanent, err)
			}
			if scope.Serves != nil && !scope.Serves(ctx, n.CompanyID) {
				return nil // not served here: whoever serves it has its own copy
			}
			q.Add(m, n.CompanyID, n.IDs)
			return settle.ErrHandedOff // the queue acks it once handled
		})
		if err != nil {
			return ccs, fmt.Errorf("inbox: %w", err)
		}
		ccs = append(ccs, cc)
	}
	return ccs, nil
}
