// The admin HTTP API under /_sim/ (a prefix FIC does not use).

package ficsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
)

// ---- HTTP admin API under /_sim/ ----

func (s *Server) adminRoutes(mux *http.ServeMux) {
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if r.ContentLength == 0 {
			return true
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			writeError(w, http.StatusBadRequest, "", "invalid JSON body: "+err.Error())
			return false
		}
		return true
	}
	ids := func(w http.ResponseWriter, r *http.Request) (int64, int64, bool) {
		cid, ok1 := pathInt(r, "cid")
		id, ok2 := pathInt(r, "id")
		if !ok1 || (r.PathValue("id") != "" && !ok2) {
			writeError(w, http.StatusBadRequest, "", "company and document ids must be positive integers")
			return 0, 0, false
		}
		return cid, id, true
	}

	mux.HandleFunc("GET /_sim/companies", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var out []map[string]any
		for _, id := range s.ids {
			c := s.comps[id]
			out = append(out, map[string]any{"id": id, "name": c.Name, "vat_number": c.VATNumber, "documents": len(c.docs), "bin": len(c.bin), "clients": len(c.Clients)})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"data": out, "token": s.cfg.Token})
	})
	mux.HandleFunc("GET /_sim/companies/{cid}/documents", func(w http.ResponseWriter, r *http.Request) {
		if cid, _, ok := ids(w, r); ok {
			v, err := s.Documents(cid)
			out := make([]map[string]any, len(v))
			for i := range v {
				out[i] = renderDetailed(&v[i])
			}
			reply(w, out, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents", func(w http.ResponseWriter, r *http.Request) {
		var nd NewDocument
		if cid, _, ok := ids(w, r); ok && decode(w, r, &nd) {
			v, err := s.CreateDocument(cid, nd)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("PATCH /_sim/companies/{cid}/clients/{id}", func(w http.ResponseWriter, r *http.Request) {
		var u ClientUpdate
		if cid, id, ok := ids(w, r); ok && decode(w, r, &u) {
			cl, err := s.UpdateClient(cid, id, u)
			if err != nil {
				reply(w, nil, err)
				return
			}
			reply(w, renderEntity(cl, true), nil)
		}
	})
	mux.HandleFunc("PATCH /_sim/companies/{cid}/documents/{id}", func(w http.ResponseWriter, r *http.Request) {
		var u DocumentUpdate
		if cid, id, ok := ids(w, r); ok && decode(w, r, &u) {
			v, err := s.UpdateDocument(cid, id, u)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("DELETE /_sim/companies/{cid}/documents/{id}", func(w http.ResponseWriter, r *http.Request) {
		if cid, id, ok := ids(w, r); ok {
			reply(w, map[string]any{"deleted": id}, s.DeleteDocument(cid, id))
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/restore", func(w http.ResponseWriter, r *http.Request) {
		if cid, id, ok := ids(w, r); ok {
			v, err := s.RestoreDocument(cid, id)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("GET /_sim/companies/{cid}/history", func(w http.ResponseWriter, r *http.Request) {
		cid, _, ok := ids(w, r)
		if !ok {
			return
		}
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		h, err := s.History(cid, after)
		if err != nil {
			adminErr(w, err)
			return
		}
		out := make([]map[string]any, len(h))
		for i, e := range h {
			out[i] = map[string]any{"seq": e.Seq, "at": e.At.UTC(), "id": e.ID, "op": e.Op}
			if e.State != nil {
				out[i]["state"] = renderDetailed(e.State)
			}
		}
		reply(w, out, nil)
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/pay", func(w http.ResponseWriter, r *http.Request) {
		var ps PaymentSpec
		if cid, id, ok := ids(w, r); ok && decode(w, r, &ps) {
			v, err := s.Pay(cid, id, ps)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/reverse", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Installment *int `json:"installment"`
		}
		if cid, id, ok := ids(w, r); ok && decode(w, r, &body) {
			v, err := s.Reverse(cid, id, body.Installment)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/due_date", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Installment int    `json:"installment"`
			DueDate     string `json:"due_date"`
		}
		if cid, id, ok := ids(w, r); ok && decode(w, r, &body) {
			v, err := s.SetDueDate(cid, id, body.Installment, body.DueDate)
			replyDoc(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/scan_fault", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Kind string `json:"kind"`
			Page int    `json:"page"`
		}
		if cid, _, ok := ids(w, r); ok && decode(w, r, &body) {
			reply(w, body, s.SetScanFault(cid, body.Kind, body.Page))
		}
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"data": s.currentFaults()})
	})
	mux.HandleFunc("PUT /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if decode(w, r, &f) {
			for _, p := range []float64{f.ErrorRatio, f.RateLimitRatio, f.DropRatio, f.MalformedRatio, f.TruncateRatio, f.DuplicateWebhookRatio} {
				if p < 0 || p > 1 {
					writeError(w, http.StatusBadRequest, "", "ratios must be within [0,1]")
					return
				}
			}
			s.SetFaults(f)
			writeJSON(w, http.StatusOK, map[string]any{"data": f})
		}
	})
	mux.HandleFunc("PUT /_sim/quotas", func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Off              bool `json:"off"`
			Hourly           int  `json:"hourly"`
			Monthly          int  `json:"monthly"`
			ShortTerm        int  `json:"short_term"`
			HourlyWindowSecs int  `json:"hourly_window_seconds"`
			ShortWindowSecs  int  `json:"short_window_seconds"`
		}
		if decode(w, r, &q) {
			qc := QuotaConfig{Off: q.Off, Hourly: q.Hourly, Monthly: q.Monthly, ShortTerm: q.ShortTerm,
				HourlyWindow: time.Duration(q.HourlyWindowSecs) * time.Second, ShortWindow: time.Duration(q.ShortWindowSecs) * time.Second}
			s.SetQuotas(qc)
			writeJSON(w, http.StatusOK, map[string]any{"data": q})
		}
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		st := s.Stats()
		out := map[string]map[string]int{}
		total := 0
		for c, m := range st {
			out[strconv.FormatInt(c, 10)] = m
			for _, n := range m {
				total += n
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": out, "total": total})
	})
	mux.HandleFunc("DELETE /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"now": s.now().UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("POST /_sim/clock", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Advance string `json:"advance"`
		}
		if !decode(w, r, &body) {
			return
		}
		d, err := time.ParseDuration(body.Advance)
		if err != nil {
			writeError(w, http.StatusBadRequest, "", "advance: want a Go duration like 24h")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"now": s.Advance(d).UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("POST /_sim/tokens/revoke", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Token string `json:"token"`
		}
		if !decode(w, r, &body) {
			return
		}
		if !s.RevokeToken(body.Token) {
			writeError(w, http.StatusNotFound, "", "unknown token")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/webhooks/deliveries", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"data": s.Deliveries()})
	})
	mux.HandleFunc("GET /_sim/webhook_key", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.WebhookPublicKeyPEM()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"pem": p, "base64": base64.StdEncoding.EncodeToString([]byte(p))})
	})
}

// WebhookPublicKeyPEM returns the webhook verification key as PEM.
func (s *Server) WebhookPublicKeyPEM() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.cfg.WebhookKey.PublicKey)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// replyDoc answers with a document in FIC's detailed form, or the error.
func replyDoc(w http.ResponseWriter, d Document, err error) {
	if err != nil {
		reply(w, nil, err)
		return
	}
	reply(w, renderDetailed(&d), nil)
}

// reply answers {"data": v}, or the error.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		adminErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": v})
}

// adminErr answers 404 for an unknown company or document, else 400.
func adminErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNoCompany), errors.Is(err, ErrNoDocument), errors.Is(err, ErrNoClient):
		writeError(w, http.StatusNotFound, "", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "", err.Error())
	}
}
