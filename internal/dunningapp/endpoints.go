package dunningapp

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/incasso-io/incasso/internal/delivery"
	"github.com/incasso-io/incasso/internal/kvstore"
)

// endpointsAPI is the admin API of HTTP delivery (package delivery):
// platforms' endpoints, their secrets, logs, replays and test events.
type endpointsAPI struct {
	store  *kvstore.Endpoints
	log    *kvstore.DeliveryLog
	m      *delivery.Manager
	check  func(*url.URL) error // the outbound guard
	grace  time.Duration        // a rotated-out secret keeps signing this long
	now    func() time.Time
	logger *slog.Logger
}

func (a *endpointsAPI) routes(route func(pattern, role string, h http.HandlerFunc)) {
	view, admin := kvstore.RoleViewer, kvstore.RoleAdmin
	route("GET /v1/endpoints", view, a.list)
	route("POST /v1/endpoints", admin, a.create)
	route("GET /v1/endpoints/{id}", view, a.get)
	route("PATCH /v1/endpoints/{id}", admin, a.patch)
	route("DELETE /v1/endpoints/{id}", admin, a.delete)
	route("POST /v1/endpoints/{id}/rotate", admin, a.rotate)
	route("GET /v1/endpoints/{id}/deliveries", view, a.deliveries)
	route("POST /v1/endpoints/{id}/replay", admin, a.replay)
	route("POST /v1/endpoints/{id}/test", admin, a.test)
}

// endpointView is an endpoint without its secrets' values.
type endpointView struct {
	delivery.Endpoint
	Secrets []secretView `json:"secrets"`
}

type secretView struct {
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

func viewOf(e delivery.Endpoint) endpointView {
	v := endpointView{Endpoint: e}
	for _, s := range e.Secrets {
		v.Secrets = append(v.Secrets, secretView{Created: s.Created, Expires: s.Expires})
	}
	v.Endpoint.Secrets = nil
	return v
}

func (a *endpointsAPI) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		apiError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, delivery.ErrInvalid):
		apiError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		apiError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func (a *endpointsAPI) list(w http.ResponseWriter, r *http.Request) {
	eps, err := a.store.List(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := []endpointView{}
	for _, e := range eps {
		out = append(out, viewOf(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

type endpointRequest struct {
	URL         *string   `json:"url"`
	Description *string   `json:"description"`
	Companies   *[]int64  `json:"companies"`
	Types       *[]string `json:"types"`
	Mode        *string   `json:"mode"`
	Enabled     *bool     `json:"enabled"`
	Operator    string    `json:"operator"`
}

func (q endpointRequest) apply(e *delivery.Endpoint) {
	if q.URL != nil {
		e.URL = *q.URL
	}
	if q.Description != nil {
		e.Description = clean(*q.Description, 200)
	}
	if q.Companies != nil {
		e.Companies = *q.Companies
	}
	if q.Types != nil {
		e.Types = *q.Types
	}
	if q.Mode != nil {
		e.Mode = *q.Mode
	}
	if q.Enabled != nil {
		e.Disabled = !*q.Enabled
		if *q.Enabled {
			e.DisabledReason, e.FailingSince = "", time.Time{}
		}
	}
}

// create registers an endpoint and answers its signing secret, once.
func (a *endpointsAPI) create(w http.ResponseWriter, r *http.Request) {
	var q endpointRequest
	if !decodeStrict(w, r, &q) {
		return
	}
	if q.URL == nil {
		apiError(w, http.StatusUnprocessableEntity, "url is required")
		return
	}
	now := a.now()
	e := delivery.Endpoint{ID: delivery.NewID(), CreatedAt: now.UTC(), CreatedBy: actor(r, q.Operator)}
	q.apply(&e)
	if err := e.Validate(a.check); err != nil {
		a.fail(w, err)
		return
	}
	secret := e.Rotate(now, 0)
	if err := a.store.Create(r.Context(), e); err != nil {
		a.fail(w, err)
		return
	}
	a.logger.Info("endpoint created", "endpoint", e.ID, "by", e.CreatedBy, "types", e.Types, "companies", e.Companies)
	writeJSON(w, http.StatusCreated, map[string]any{"endpoint": viewOf(e), "secret": secret,
		"note": "the secret is shown only now: verify the webhook-signature header with it (docs/webhooks.md)"})
}

func (a *endpointsAPI) get(w http.ResponseWriter, r *http.Request) {
	e, err := a.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	out := map[string]any{"endpoint": viewOf(e)}
	if st, ok := a.m.Replays(e.ID); ok {
		out["replay"] = st
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *endpointsAPI) patch(w http.ResponseWriter, r *http.Request) {
	var q endpointRequest
	if !decodeStrict(w, r, &q) {
		return
	}
	e, err := a.store.Update(r.Context(), r.PathValue("id"), func(e *delivery.Endpoint) error {
		q.apply(e)
		if q.Enabled != nil && !*q.Enabled {
			e.DisabledReason = "disabled by " + actor(r, q.Operator)
		}
		return e.Validate(a.check)
	})
	if err != nil {
		a.fail(w, err)
		return
	}
	a.logger.Info("endpoint changed", "endpoint", e.ID, "by", actor(r, q.Operator), "disabled", e.Disabled)
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": viewOf(e)})
}

func (a *endpointsAPI) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.store.Delete(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	a.logger.Info("endpoint deleted", "endpoint", id, "by", actor(r, r.URL.Query().Get("operator")))
	writeJSON(w, http.StatusOK, map[string]any{"deleted": id})
}

// rotate makes a new secret; the old one keeps signing for the grace
// period (default DUNNING_ENDPOINT_SECRET_GRACE) so the platform can switch.
func (a *endpointsAPI) rotate(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Grace    string `json:"grace"`
		Operator string `json:"operator"`
	}
	if r.ContentLength != 0 && !decodeStrict(w, r, &q) {
		return
	}
	grace := a.grace
	if q.Grace != "" {
		d, err := time.ParseDuration(q.Grace)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			apiError(w, http.StatusUnprocessableEntity, "grace: a duration up to 720h")
			return
		}
		grace = d
	}
	var secret string
	e, err := a.store.Update(r.Context(), r.PathValue("id"), func(e *delivery.Endpoint) error {
		secret = e.Rotate(a.now(), grace)
		return nil
	})
	if err != nil {
		a.fail(w, err)
		return
	}
	a.logger.Info("endpoint secret rotated", "endpoint", e.ID, "by", actor(r, q.Operator), "grace", grace)
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": viewOf(e), "secret": secret,
		"note": "the old secret keeps signing until " + a.now().Add(grace).UTC().Format(time.RFC3339)})
}

func (a *endpointsAPI) deliveries(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := a.store.Get(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	limit, ok := queryLimit(w, r, 50)
	if !ok {
		return
	}
	log, err := a.log.Recent(r.Context(), id, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	if log == nil {
		log = []delivery.Attempt{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": log})
}

func (a *endpointsAPI) replay(w http.ResponseWriter, r *http.Request) {
	var q struct {
		FromSeq  uint64 `json:"from_seq"`
		FromTime string `json:"from_time"`
		Operator string `json:"operator"`
	}
	if !decodeStrict(w, r, &q) {
		return
	}
	from := delivery.ReplayFrom{Seq: q.FromSeq}
	if q.FromTime != "" {
		t, err := time.Parse(time.RFC3339, q.FromTime)
		if err != nil {
			apiError(w, http.StatusUnprocessableEntity, "from_time: RFC 3339, e.g. 2026-12-01T08:00:00Z")
			return
		}
		from.Time = t
	}
	st, err := a.m.Replay(r.Context(), r.PathValue("id"), from)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.logger.Info("endpoint replay started", "endpoint", r.PathValue("id"), "by", actor(r, q.Operator), "from_seq", q.FromSeq, "from_time", q.FromTime)
	writeJSON(w, http.StatusAccepted, map[string]any{"replay": st})
}

func (a *endpointsAPI) test(w http.ResponseWriter, r *http.Request) {
	at, err := a.m.SendTest(r.Context(), r.PathValue("id"))
	if errors.Is(err, delivery.ErrNotFound) {
		a.fail(w, err)
		return
	}
	out := map[string]any{"attempt": at, "delivered": err == nil}
	if err != nil {
		out["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}
