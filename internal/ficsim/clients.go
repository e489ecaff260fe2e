package ficsim

import (
	"fmt"
	"net/http"
	"slices"
)

// The client registry: GET /c/{cid}/entities/clients/{id} answers a client's
// current record, while a document keeps the entity snapshot taken when it
// was issued. UpdateClient changes the record (never the documents) and
// notifies it.fattureincloud.webhooks.entities.clients.update, as FIC does
// when a user edits a client.

// EventClientUpdate is FIC's webhook type for an edited client.
const EventClientUpdate = "it.fattureincloud.webhooks.entities.clients.update"

// ClientUpdate changes a client's contacts; nil fields are kept.
type ClientUpdate struct {
	Name       *string `json:"name,omitempty"`
	Email      *string `json:"email,omitempty"`
	PEC        *string `json:"certified_email,omitempty"`
	Phone      *string `json:"phone,omitempty"`
	Street     *string `json:"address_street,omitempty"`
	PostalCode *string `json:"address_postal_code,omitempty"`
	City       *string `json:"address_city,omitempty"`
	Province   *string `json:"address_province,omitempty"`
}

// ClientOf returns a company's client record.
func (s *Server) ClientOf(cid, id int64) (Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return Client{}, err
	}
	if i := c.clientIndex(id); i >= 0 {
		return c.Clients[i], nil
	}
	return Client{}, fmt.Errorf("%w: client %d in company %d", ErrNoClient, id, cid)
}

// UpdateClient edits a client's record and notifies the subscriptions to
// entities.clients.update. Documents already issued keep their snapshot.
func (s *Server) UpdateClient(cid, id int64, u ClientUpdate) (Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return Client{}, err
	}
	i := c.clientIndex(id)
	if i < 0 {
		return Client{}, fmt.Errorf("%w: client %d in company %d", ErrNoClient, id, cid)
	}
	cl := &c.Clients[i]
	for _, f := range []struct {
		dst *string
		src *string
	}{{&cl.Name, u.Name}, {&cl.Email, u.Email}, {&cl.PEC, u.PEC}, {&cl.Phone, u.Phone}, {&cl.Street, u.Street},
		{&cl.PostalCode, u.PostalCode}, {&cl.City, u.City}, {&cl.Province, u.Province}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	s.notifyTypeLocked(c, EventClientUpdate, id)
	return *cl, nil
}

func (c *company) clientIndex(id int64) int {
	return slices.IndexFunc(c.Clients, func(cl Client) bool { return cl.ID == id })
}

// handleClientGet serves GET /c/{cid}/entities/clients/{id} (scope
// entity.clients:r), in the spec's Client shape.
func (s *Server) handleClientGet(w http.ResponseWriter, r *http.Request) {
	cid, _ := pathInt(r, "cid")
	id, ok := pathInt(r, "id")
	if !ok {
		writeError(w, http.StatusNotFound, "", "Client not found")
		return
	}
	cl, err := s.ClientOf(cid, id)
	if err != nil {
		writeError(w, http.StatusNotFound, "", "Client not found")
		return
	}
	e := renderEntity(cl, true)
	e["contact_person"] = ""
	e["fax"] = ""
	e["notes"] = ""
	s.writeAPI(w, r, map[string]any{"data": e})
}
