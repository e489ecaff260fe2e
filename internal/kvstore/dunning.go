package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/contacts"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/notify"
)

// Dunning buckets.
const (
	CasesBucket   = "incasso_cases"
	ClientsBucket = "incasso_clients"
	OutboxBucket  = "incasso_outbox"
)

func bucket(ctx context.Context, js jetstream.JetStream, name, desc string, c BucketConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1,
		Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas)})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", name, err)
	}
	return kv, nil
}

// getJSON reads a JSON value and its revision (0: absent).
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("kvstore: %s is corrupt: %w", key, err)
	}
	return e.Revision(), nil
}

// putJSON writes with CAS on rev (0: create).
func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		rev, err = kv.Create(ctx, key, b)
	} else {
		rev, err = kv.Update(ctx, key, b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: put %s: %w", key, conflict(err))
	}
	return rev, nil
}

// Cases stores dunning cases under <company>.<invoice>.
type Cases struct{ KV jetstream.KeyValue }

var _ dunning.CaseStore = (*Cases)(nil)

// NewCases opens the bucket.
func NewCases(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Cases, error) {
	kv, err := bucket(ctx, js, CasesBucket, "dunning cases", c)
	return &Cases{KV: kv}, err
}

// Get implements dunning.CaseStore.
func (s *Cases) Get(ctx context.Context, cid, id int64) (dunning.Case, uint64, error) {
	var c dunning.Case
	rev, err := getJSON(ctx, s.KV, snapKey(cid, id), &c)
	return c, rev, err
}

// Put implements dunning.CaseStore.
func (s *Cases) Put(ctx context.Context, c dunning.Case, rev uint64) (uint64, error) {
	return putJSON(ctx, s.KV, snapKey(c.CompanyID, c.InvoiceID), c, rev)
}

// List implements dunning.CaseStore.
func (s *Cases) List(ctx context.Context, cid int64) ([]dunning.Case, error) {
	filter := ">"
	if cid != 0 {
		filter = strconv.FormatInt(cid, 10) + ".*"
	}
	keys, err := listKeys(ctx, s.KV, filter)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list cases: %w", err)
	}
	var out []dunning.Case
	for _, k := range keys {
		var c dunning.Case
		rev, err := getJSON(ctx, s.KV, k, &c)
		if err != nil {
			return nil, fmt.Errorf("kvstore: list cases: %w", err)
		}
		if rev > 0 { // deleted since it was listed
			out = append(out, c)
		}
	}
	return out, nil
}

// Clients is the per-client index of open cases.
type Clients struct{ KV jetstream.KeyValue }

var _ dunning.ClientIndex = (*Clients)(nil)

// NewClients opens the bucket.
func NewClients(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Clients, error) {
	kv, err := bucket(ctx, js, ClientsBucket, "dunning: open cases and last contact per client", c)
	return &Clients{KV: kv}, err
}

func clientKey(cid int64, client string) string {
	return strconv.FormatInt(cid, 10) + "." + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, client)
}

// Get implements dunning.ClientIndex.
func (s *Clients) Get(ctx context.Context, cid int64, client string) (dunning.ClientRecord, uint64, error) {
	var r dunning.ClientRecord
	rev, err := getJSON(ctx, s.KV, clientKey(cid, client), &r)
	return r, rev, err
}

// Put implements dunning.ClientIndex.
func (s *Clients) Put(ctx context.Context, cid int64, client string, r dunning.ClientRecord, rev uint64) (uint64, error) {
	return putJSON(ctx, s.KV, clientKey(cid, client), r, rev)
}

// Outbox is the at-most-once delivery record.
type Outbox struct{ KV jetstream.KeyValue }

var _ dunning.Outbox = (*Outbox)(nil)

// NewOutbox opens the bucket.
func NewOutbox(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Outbox, error) {
	kv, err := bucket(ctx, js, OutboxBucket, "dunning outbox: one record per (invoice, stage, channel)", c)
	return &Outbox{KV: kv}, err
}

// Begin implements dunning.Outbox.
func (o *Outbox) Begin(ctx context.Context, key string, r dunning.OutboxRecord) (dunning.OutboxRecord, error) {
	_, err := putJSON(ctx, o.KV, key, r, 0)
	if err == nil {
		return r, nil
	}
	var prev dunning.OutboxRecord
	rev, gerr := getJSON(ctx, o.KV, key, &prev)
	if gerr != nil {
		return prev, gerr
	}
	if rev > 0 && prev.State == dunning.OutboxRetry {
		if _, err := putJSON(ctx, o.KV, key, r, rev); err != nil {
			return prev, err
		}
		return r, nil
	}
	return prev, err
}

// Complete implements dunning.Outbox.
func (o *Outbox) Complete(ctx context.Context, key string, r dunning.OutboxRecord) error {
	_, err := o.KV.Put(ctx, key, mustJSON(r))
	if err != nil {
		return fmt.Errorf("kvstore: complete outbox %s: %w", key, err)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// ModesBucket keeps each company's dunning mode (live, shadow).
const ModesBucket = "incasso_dunning_modes"

// Modes implements dunning.ModeStore.
type Modes struct{ KV jetstream.KeyValue }

var _ dunning.ModeStore = (*Modes)(nil)

// NewModes opens the bucket.
func NewModes(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Modes, error) {
	kv, err := bucket(ctx, js, ModesBucket, "dunning mode per company (live, shadow), as ops set it", c)
	return &Modes{KV: kv}, err
}

// Get implements dunning.ModeStore.
func (m *Modes) Get(ctx context.Context, cid int64) (dunning.ModeRecord, error) {
	var r dunning.ModeRecord
	_, err := getJSON(ctx, m.KV, strconv.FormatInt(cid, 10), &r)
	return r, err
}

// Put implements dunning.ModeStore.
func (m *Modes) Put(ctx context.Context, cid int64, r dunning.ModeRecord) error {
	if _, err := m.KV.Put(ctx, strconv.FormatInt(cid, 10), mustJSON(r)); err != nil {
		return fmt.Errorf("kvstore: put mode of %d: %w", cid, err)
	}
	return nil
}

// ContactsBucket caches FIC clients' current contacts (see package
// contacts), shared by the poller (which invalidates on FIC's
// entities.clients.update webhook) and dunning (which reads through).
const ContactsBucket = "incasso_fic_clients"

// Contacts implements contacts.Store under <company>.<client>.
type Contacts struct{ KV jetstream.KeyValue }

var _ contacts.Store = (*Contacts)(nil)

// NewContacts opens the bucket.
func NewContacts(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Contacts, error) {
	kv, err := bucket(ctx, js, ContactsBucket, "FIC clients' current contacts, read through by dunning, invalidated by webhook", c)
	return &Contacts{KV: kv}, err
}

func contactKey(cid, id int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10)
}

// Get implements contacts.Store.
func (s *Contacts) Get(ctx context.Context, cid, id int64) (contacts.Entry, error) {
	var e contacts.Entry
	rev, err := getJSON(ctx, s.KV, contactKey(cid, id), &e)
	if err == nil && rev == 0 {
		return e, contacts.ErrNotFound
	}
	return e, err
}

// Put implements contacts.Store.
func (s *Contacts) Put(ctx context.Context, cid int64, e contacts.Entry) error {
	if _, err := s.KV.Put(ctx, contactKey(cid, e.Client.ID), mustJSON(e)); err != nil {
		return fmt.Errorf("kvstore: put contacts of client %d: %w", e.Client.ID, err)
	}
	return nil
}

// Delete implements contacts.Store (absent is not an error).
func (s *Contacts) Delete(ctx context.Context, cid, id int64) error {
	if err := s.KV.Delete(ctx, contactKey(cid, id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("kvstore: delete contacts of client %d: %w", id, err)
	}
	return nil
}

// LettersBucket keeps every letter as it was rendered for its delivery.
const LettersBucket = "incasso_letters"

// Letters implements notify.Archive under <message id>.<channel>.
type Letters struct{ KV jetstream.KeyValue }

var _ notify.Archive = (*Letters)(nil)

// NewLetters opens the bucket.
func NewLetters(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Letters, error) {
	kv, err := bucket(ctx, js, LettersBucket, "letters as sent (subject, text, HTML), by message id and channel", c)
	return &Letters{KV: kv}, err
}

func letterKey(id, ch string) string {
	return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(id) + "." + ch
}

// Put implements notify.Archive.
func (l *Letters) Put(ctx context.Context, x notify.Letter) error {
	if _, err := l.KV.Put(ctx, letterKey(x.MessageID, x.Channel), mustJSON(x)); err != nil {
		return fmt.Errorf("kvstore: letter %s: %w", x.MessageID, err)
	}
	return nil
}

// Get returns a letter (found false when none was kept).
func (l *Letters) Get(ctx context.Context, id, ch string) (notify.Letter, bool, error) {
	var x notify.Letter
	rev, err := getJSON(ctx, l.KV, letterKey(id, ch), &x)
	return x, rev != 0, err
}
