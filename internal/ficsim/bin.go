package ficsim

import (
	"fmt"
	"net/http"
	"time"
)

// The bin: FIC keeps deleted issued documents there, from where they can be
// recovered (POST /c/{cid}/bin/issued_documents/{id}/recover) or deleted
// for good (DELETE /c/{cid}/bin/issued_documents/{id}). Which webhook FIC
// sends on a recovery is not documented; the sandbox sends the document
// type's "create" notification (the document reappears), which is the
// assumption a receiver must cope with anyway, and the poller's scans
// reconcile a recovery without any webhook.

// RestoreDocument moves a document back from the bin, as FIC's "recover",
// and returns it in detailed form.
func (s *Server) RestoreDocument(cid, id int64) (Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return Document{}, err
	}
	d, ok := c.bin[id]
	if !ok {
		return Document{}, fmt.Errorf("%w: %d is not in the bin of company %d", ErrNoDocument, id, cid)
	}
	next := d.clone()
	next.UpdatedAt = s.nowLocked()
	delete(c.bin, id)
	c.put(next)
	s.recordLocked(c, id, "restore", next)
	s.notifyLocked(c, next.Type, "create", id)
	return next.snapshot(), nil
}

// PurgeDocument deletes a document from the bin for good.
func (s *Server) PurgeDocument(cid, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return err
	}
	if _, ok := c.bin[id]; !ok {
		return fmt.Errorf("%w: %d is not in the bin of company %d", ErrNoDocument, id, cid)
	}
	delete(c.bin, id)
	return nil
}

// binWriteScope is the scope a bin write needs: the document type's write
// scope (FIC's "a" for all).
func (s *Server) binWriteScope(r *http.Request) []string {
	cid, _ := pathInt(r, "cid")
	id, _ := pathInt(r, "id")
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := "invoice"
	if c, ok := s.comps[cid]; ok {
		if d, ok := c.bin[id]; ok {
			typ = d.Type
		}
	}
	return []string{docScope(typ)[:len(docScope(typ))-2] + ":a"}
}

func (s *Server) handleBinRecover(w http.ResponseWriter, r *http.Request) {
	s.binAction(w, r, func(cid, id int64) error { _, err := s.RestoreDocument(cid, id); return err })
}

func (s *Server) handleBinDelete(w http.ResponseWriter, r *http.Request) {
	s.binAction(w, r, s.PurgeDocument)
}

// binAction runs f on the document of a bin route: 200 with an empty
// object, or 404 when it is not in the bin.
func (s *Server) binAction(w http.ResponseWriter, r *http.Request, f func(cid, id int64) error) {
	cid, _ := pathInt(r, "cid")
	id, ok := pathInt(r, "id")
	if !ok {
		writeError(w, http.StatusBadRequest, "", "document_id must be a positive integer")
		return
	}
	if err := f(cid, id); err != nil {
		writeError(w, http.StatusNotFound, "", "Document not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// HistoryEntry is one change made to a document through the sandbox (admin
// API, bin recovery, scan faults): the ground truth a differential test
// compares the event stream with. State is the document after the change,
// nil when it was deleted.
type HistoryEntry struct {
	Seq   int64     `json:"seq"`
	At    time.Time `json:"at"`
	ID    int64     `json:"id"`
	Op    string    `json:"op"` // create, update, delete, restore
	State *Document `json:"-"`
}

// History returns a company's recorded changes with Seq > after, in order.
// Seeded documents are not part of it (they exist before the sandbox
// serves anything).
func (s *Server) History(cid int64, after int64) ([]HistoryEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	for _, h := range c.history {
		if h.Seq > after {
			out = append(out, h)
		}
	}
	return out, nil
}

// recordLocked appends a change to the company's history. Versions are
// immutable (edits clone), so keeping the pointer keeps that version.
func (s *Server) recordLocked(c *company, id int64, op string, state *Document) {
	s.histSeq++
	c.history = append(c.history, HistoryEntry{Seq: s.histSeq, At: s.nowLocked(), ID: id, Op: op, State: state})
}
