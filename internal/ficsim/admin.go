package ficsim

import (
	"fmt"
	"time"
)

// DocumentCount returns how many live documents a company has.
func (s *Server) DocumentCount(cid int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.comps[cid]; ok {
		return len(c.docs)
	}
	return 0
}

// Prerender renders every live document's detailed form into its cache,
// as serving it would. A load generator calls it before timing a scan so
// that the sandbox, which shares the machine with what is measured, does
// not charge FIC's own rendering to the poller. It returns how many
// documents were rendered.
func (s *Server) Prerender() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.comps {
		for _, d := range c.docs {
			renderJSON(d, detailedView)
			n++
		}
	}
	return n
}

// InvoiceIDs returns the ids of a company's live invoices, those with an
// installment not paid and those fully paid, ordered by id. Unlike
// Documents it renders nothing, so a load generator picking what to change
// does not hold the server's lock for long.
func (s *Server) InvoiceIDs(cid int64) (open, paid []int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range c.order {
		if d := c.docs[id]; d.Type == "invoice" {
			if d.NextDueDate() != "" {
				open = append(open, id)
			} else {
				paid = append(paid, id)
			}
		}
	}
	return open, paid, nil
}

// Documents returns the ground truth: every live document of a company in
// detailed form, ordered by id.
func (s *Server) Documents(cid int64) ([]Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, err
	}
	out := make([]Document, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.docs[id].snapshot())
	}
	return out, nil
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetScanFault arms a one-shot fault: when page `page` of a list is served,
// "insert" creates a new invoice first, "delete" deletes the first document
// of the listed type first (shifting every later page by one).
func (s *Server) SetScanFault(cid int64, kind string, page int) error {
	if kind != "insert" && kind != "delete" {
		return fmt.Errorf("%w: scan fault %q: want insert or delete", ErrBadRequest, kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return err
	}
	c.scanFaultAt[kind] = page
	return nil
}

func (s *Server) applyScanFault(c *company, typ string, page int) {
	if p, ok := c.scanFaultAt["insert"]; ok && p == page {
		delete(c.scanFaultAt, "insert")
		today := s.nowLocked().In(rome)
		d := s.newInvoice(s.rnd, c, c.Clients[s.rnd.IntN(len(c.Clients))], today, today, false)
		s.recordLocked(c, d.ID, "create", d)
		s.notifyLocked(c, d.Type, "create", d.ID)
	}
	if p, ok := c.scanFaultAt["delete"]; ok && p == page {
		delete(c.scanFaultAt, "delete")
		for _, id := range c.order {
			if d := c.docs[id]; d.Type == typ {
				c.remove(id)
				c.bin[id] = d
				s.recordLocked(c, id, "delete", nil)
				s.notifyLocked(c, d.Type, "delete", id)
				break
			}
		}
	}
}

// SetQuotas replaces the quota configuration and resets the counters.
func (s *Server) SetQuotas(q QuotaConfig) {
	q.setDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.qcfg = q
	for _, c := range s.comps {
		c.quota = &quotaState{}
	}
}

// Stats returns request counts per company and endpoint.
func (s *Server) Stats() map[int64]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int64]map[string]int, len(s.stats))
	for c, m := range s.stats {
		cp := make(map[string]int, len(m))
		for k, v := range m {
			cp[k] = v
		}
		out[c] = cp
	}
	return out
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = map[int64]map[string]int{}
	s.mu.Unlock()
}

// Advance moves the sandbox clock forward (negative moves it back).
func (s *Server) Advance(d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
	return s.nowLocked()
}
