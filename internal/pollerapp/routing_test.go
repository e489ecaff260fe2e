package pollerapp

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/inbox"
	"github.com/incasso-io/incasso/internal/natstest"
)

var webhookSeq atomic.Int64

// sendWebhook posts a genuine (signed) FIC notification about ids of
// company cid to a poller's listener, with a new notification id.
func sendWebhook(t *testing.T, key *ecdsa.PrivateKey, addr string, cid int64, ids []int64) int {
	t.Helper()
	return postWebhook(t, key, addr, cid, fmt.Sprintf("%d:%d", time.Now().UnixNano(), webhookSeq.Add(1)), ids)
}

// postWebhook posts notification id about ids of company cid, its JWT
// signed with key, to the poller listening on addr.
func postWebhook(t *testing.T, key *ecdsa.PrivateKey, addr string, cid int64, id string, ids []int64) int {
	t.Helper()
	return postWebhookType(t, key, addr, cid, id, fic.EventInvoiceUpdate, ids)
}

// postWebhookType is postWebhook for a notification of type typ.
func postWebhookType(t *testing.T, key *ecdsa.PrivateKey, addr string, cid int64, id, typ string, ids []int64) int {
	t.Helper()
	sink := "http://" + addr + "/webhooks/fic"
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"jti": id, "iss": "https://api-v2.fattureincloud.it",
		"sub": fmt.Sprintf("company:%d", cid), "aud": []string{sink}, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "aid": "ficsim-app"}).SignedString(key)
	list := make([]string, len(ids))
	for i, x := range ids {
		list[i] = fmt.Sprint(x)
	}
	req, _ := http.NewRequest("POST", sink, strings.NewReader(`{"data":{"ids":[`+strings.Join(list, ",")+`]}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range map[string]string{"ce-id": id, "ce-source": "https://api-v2.fattureincloud.it", "ce-specversion": "1.0",
		"ce-type": typ, "ce-subject": fmt.Sprintf("company:%d", cid), "ce-time": time.Now().UTC().Format(time.RFC3339)} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Two manual-token pollers, one company each, on one NATS: a webhook may
// reach either listener (one load balancer in front of both) and is
// handled by the poller of its company; none is dropped as "not ours"
// (issue #12, repro 3: 4,744 of 5,000 were).
func TestManualPollersShareOneNATSWithoutDroppingWebhooks(t *testing.T) {
	priv, pub := webhookKey(t)
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 8, Companies: 2, Invoices: 20, WebhookKey: priv, Quotas: ficsim.QuotaConfig{Off: true}})
	ns, _, js := natstest.MustRunJetStream(t)
	cids := sim.CompanyIDs()
	var pollers []*Main
	for i, cid := range cids {
		pollers = append(pollers, startPoller(t, envMap{
			"FIC_BASE_URL": fsrv.URL, "FIC_ACCESS_TOKEN": sim.Token(), "FIC_COMPANY_ID": fmt.Sprint(cid),
			"NATS_URL": ns.ClientURL(), "POLLER_HTTP_ADDR": "127.0.0.1:0", "FIC_WEBHOOK_PUBLIC_KEY": pub,
			"POLLER_MIN_INTERVAL": "1h", "POLLER_LEASE_TTL": "3s", "POLLER_INSTANCE_ID": fmt.Sprint("p", i),
			"FIC_CLIENT_LIMITS_DISABLED": "true",
		}, &lockedBuf{}))
	}
	docs := map[int64][]int64{}
	for _, cid := range cids {
		ds, _ := sim.Documents(cid)
		for _, d := range ds {
			docs[cid] = append(docs[cid], d.ID)
		}
	}
	waitFor(t, "initial syncs", 30*time.Second, func() bool {
		ev := streamEvents(t, js)
		return len(ev["invoice.created"])+len(ev["credit_note.created"]) == len(docs[cids[0]])+len(docs[cids[1]])
	})
	// A storm of notifications about existing documents, each sent to the
	// listener of the other company's poller.
	const storm = 1000
	for i := 0; i < storm; i++ {
		cid := cids[i%2]
		other := pollers[(i+1)%2]
		ds := docs[cid]
		if code := sendWebhook(t, priv, other.HTTPAddr, cid, []int64{ds[i%len(ds)]}); code != http.StatusOK {
			t.Fatalf("webhook %d: HTTP %d", i, code)
		}
	}
	// New invoices announced the same way appear at once, not at the next
	// scan an hour later.
	var created []int64
	for i := 0; i < 10; i++ {
		cid := cids[i%2]
		m, err := sim.CreateDocument(cid, ficsim.NewDocument{})
		if err != nil {
			t.Fatal(err)
		}
		id := m.ID
		created = append(created, id)
		if code := sendWebhook(t, priv, pollers[(i+1)%2].HTTPAddr, cid, []int64{id}); code != http.StatusOK {
			t.Fatalf("webhook: HTTP %d", code)
		}
	}
	waitFor(t, "the new invoices", 30*time.Second, func() bool {
		seen := map[int64]bool{}
		for _, d := range streamEvents(t, js)["invoice.created"] {
			seen[d.Document.ID] = true
		}
		for _, id := range created {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	// Every notification was handled and acknowledged by its company's poller.
	waitFor(t, "the webhook consumers to drain", 30*time.Second, func() bool {
		for _, cid := range cids {
			c, err := js.Consumer(context.Background(), inbox.StreamName, fmt.Sprint("poller-webhooks-", cid))
			if err != nil {
				return false
			}
			info, err := c.Info(context.Background())
			if err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
				return false
			}
		}
		return true
	})
	st, _ := js.Stream(context.Background(), inbox.StreamName)
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 0 {
		t.Errorf("%d notifications left in the stream", info.State.Msgs)
	}
}
