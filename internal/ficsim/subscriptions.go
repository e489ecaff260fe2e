// The webhook subscription endpoints of the FIC API (create, list, get,
// modify, delete, verify), with FIC's validation rules.

package ficsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

type subRequest struct {
	Data struct {
		Sink               string   `json:"sink"`
		Types              []string `json:"types"`
		VerificationMethod string   `json:"verification_method"`
		Config             *struct {
			Mapping string `json:"mapping"`
		} `json:"config"`
	} `json:"data"`
}

func readSubRequest(w http.ResponseWriter, r *http.Request) (subRequest, bool) {
	var req subRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeValidation(w, "data", "The request body is not valid JSON.")
		return req, false
	}
	return req, true
}

// validateSub checks sink, mapping and method, and returns the types kept
// and warnings for the dropped ones.
func (s *Server) validateSub(w http.ResponseWriter, r *http.Request, c *company, req subRequest, self string) ([]string, []string, bool) {
	u, err := url.Parse(req.Data.Sink)
	if err != nil || u.Host == "" || (u.Scheme != "https" && (!s.cfg.AllowHTTPSinks || u.Scheme != "http")) {
		writeValidation(w, "data.sink", "The sink must be a valid HTTPS URL.")
		return nil, nil, false
	}
	if req.Data.Config != nil && req.Data.Config.Mapping != "" && req.Data.Config.Mapping != "binary" && req.Data.Config.Mapping != "structured" {
		writeValidation(w, "data.config.mapping", "The selected mapping is invalid.")
		return nil, nil, false
	}
	if m := req.Data.VerificationMethod; m != "" && m != "header" && m != "query" {
		writeValidation(w, "data.verification_method", "The selected verification method is invalid.")
		return nil, nil, false
	}
	auth := authFrom(r)
	var types, warnings []string
	for _, t := range expandTypes(req.Data.Types) {
		fam := strings.TrimPrefix(t, "it.fattureincloud.webhooks.")
		if !strings.HasPrefix(t, "it.fattureincloud.webhooks.") || strings.Count(fam, ".") < 1 {
			warnings = append(warnings, fmt.Sprintf("The '%s' event type is not valid", t))
			continue
		}
		if scope := typeScope(fam); scope != "" && !auth.hasScope(scope) {
			warnings = append(warnings, fmt.Sprintf("The '%s' event needs the %s scope", t, scope))
			continue
		}
		dup := false
		for _, other := range c.subs {
			if other.ID != self && slices.Contains(other.Types, t) {
				dup = true
			}
		}
		if dup || slices.Contains(types, t) {
			warnings = append(warnings, fmt.Sprintf("The '%s' event is already registered for this application", t))
			continue
		}
		types = append(types, t)
	}
	if len(types) == 0 {
		writeValidation(w, "data.types", "No valid event type to subscribe to.")
		return nil, nil, false
	}
	return types, warnings, true
}

// expandTypes expands group types (…all.create) into concrete types.
func expandTypes(in []string) []string {
	var out []string
	for _, t := range in {
		rest, ok := strings.CutPrefix(t, "it.fattureincloud.webhooks.issued_documents.all.")
		if !ok {
			out = append(out, t)
			continue
		}
		for _, f := range []string{"invoices", "quotes", "proformas", "receipts", "delivery_notes", "credit_notes", "orders", "work_reports", "supplier_orders", "self_supplier_invoices", "self_own_invoices"} {
			out = append(out, "it.fattureincloud.webhooks.issued_documents."+f+"."+rest)
		}
	}
	return out
}

func typeScope(fam string) string {
	parts := strings.Split(fam, ".")
	switch {
	case parts[0] == "issued_documents" && len(parts) >= 3:
		switch parts[1] {
		case "e_invoices":
			return "issued_documents.invoices:r"
		case "self_supplier_invoices", "self_own_invoices":
			return "issued_documents.self_invoices:r"
		}
		return "issued_documents." + parts[1] + ":r"
	case parts[0] == "entities" && len(parts) >= 3:
		return "entity." + parts[1] + ":r"
	}
	return ""
}

func (s *Server) handleSubCreate(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	req, ok := readSubRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.comps[cid]
	types, warnings, ok := s.validateSub(w, r, c, req, "")
	if !ok {
		s.mu.Unlock()
		return
	}
	s.nextSub++
	sub := &subscription{ID: fmt.Sprintf("SUB%d", s.nextSub), Sink: req.Data.Sink, Types: types, Mapping: "binary", Method: "header"}
	if req.Data.Config != nil && req.Data.Config.Mapping != "" {
		sub.Mapping = req.Data.Config.Mapping
	}
	if req.Data.VerificationMethod != "" {
		sub.Method = req.Data.VerificationMethod
	}
	c.subs[sub.ID] = sub
	out := sub.render()
	s.mu.Unlock()
	go s.wh.verify(cid, sub.ID)
	if warnings == nil {
		warnings = []string{}
	}
	s.writeAPI(w, r, map[string]any{"data": out, "warnings": warnings})
}

func (s *Server) handleSubList(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	s.mu.Lock()
	c := s.comps[cid]
	ids := make([]string, 0, len(c.subs))
	for id := range c.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	data := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		data = append(data, c.subs[id].render())
	}
	s.mu.Unlock()
	s.writeAPI(w, r, map[string]any{"data": data})
}

func (s *Server) lookupSub(w http.ResponseWriter, r *http.Request) (*company, *subscription, bool) {
	cid, _ := pathInt(r, "cid")
	c := s.comps[cid]
	sub, ok := c.subs[r.PathValue("sid")]
	if !ok {
		writeError(w, http.StatusNotFound, "", "Subscription not found")
	}
	return c, sub, ok
}

func (s *Server) handleSubGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, sub, ok := s.lookupSub(w, r)
	var out map[string]any
	if ok {
		out = sub.render()
	}
	s.mu.Unlock()
	if ok {
		s.writeAPI(w, r, map[string]any{"data": out})
	}
}

func (s *Server) handleSubModify(w http.ResponseWriter, r *http.Request) {
	req, ok := readSubRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c, sub, ok := s.lookupSub(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	if req.Data.Sink == "" {
		req.Data.Sink = sub.Sink
	}
	if len(req.Data.Types) == 0 {
		req.Data.Types = sub.Types
	}
	types, warnings, ok := s.validateSub(w, r, c, req, sub.ID)
	if !ok {
		s.mu.Unlock()
		return
	}
	reverify := req.Data.Sink != sub.Sink
	sub.Sink, sub.Types = req.Data.Sink, types
	if req.Data.Config != nil && req.Data.Config.Mapping != "" {
		sub.Mapping = req.Data.Config.Mapping
	}
	if req.Data.VerificationMethod != "" {
		sub.Method = req.Data.VerificationMethod
	}
	if reverify {
		sub.Verified, sub.Attempts = false, 0
	}
	out := sub.render()
	cid := c.ID
	s.mu.Unlock()
	if reverify {
		go s.wh.verify(cid, sub.ID)
	}
	if warnings == nil {
		warnings = []string{}
	}
	s.writeAPI(w, r, map[string]any{"data": out, "warnings": warnings})
}

func (s *Server) handleSubDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, sub, ok := s.lookupSub(w, r)
	if ok {
		delete(c.subs, sub.ID)
	}
	s.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) handleSubVerify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Data struct {
			VerificationMethod string `json:"verification_method"`
		} `json:"data"`
	}
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req)
	s.mu.Lock()
	c, sub, ok := s.lookupSub(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	if sub.Attempts >= 5 {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "", "Verification attempts exhausted for this subscription.")
		return
	}
	if m := req.Data.VerificationMethod; m == "header" || m == "query" {
		sub.Method = m
	}
	cid, sid := c.ID, sub.ID
	s.mu.Unlock()
	go s.wh.verify(cid, sid)
	w.WriteHeader(http.StatusOK)
}
